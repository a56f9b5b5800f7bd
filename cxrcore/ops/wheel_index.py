"""The sha256 of every wheel of a pinned version, read from pip's package indexes and find-links locations.

See docs/architecture.md#deployment. ``make lock`` (:mod:`cxrcore.ops.locks`) pins each distribution and lists the
hash of every wheel of that version that can run on the images' platform, so the hash-checked install in any image
finds one. :class:`WheelHashes` reads pip's own configuration (``pip config list``: ``index-url``,
``extra-index-url``, ``find-links``; PyPI when no index is configured), lists each project's files from PEP 691
JSON or PEP 503 HTML pages (or a local folder), keeps the wheels whose tags fit the target, and takes their sha256
from the listing, or downloads and hashes the file when the listing gives none.
"""

from __future__ import annotations

import ast
import hashlib
import html.parser
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from cxrcore.logging import get_logger

__all__ = ["WheelHashes", "WheelIndexError"]

log = get_logger(__name__)

_HTTP_TIMEOUT_S = 120
_DEFAULT_INDEX = "https://pypi.org/simple"


class WheelIndexError(RuntimeError):
    """pip's configuration, and so the indexes to read, cannot be determined."""


def _hash_tags(target_python: str) -> frozenset[Tag]:
    """Tags of every wheel a CPython ``target_python`` Linux x86_64 pip could install (any manylinux glibc level)."""
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(60, 4, -1)] + [
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    ]
    python = tuple(int(part) for part in target_python.split("."))
    interpreter = f"cp{python[0]}{python[1]}"
    return frozenset(cpython_tags(python, [interpreter], platforms)) | frozenset(
        compatible_tags(python, interpreter, platforms)
    )




def _pip_sources() -> tuple[list[str], list[str]]:
    """``(index URLs, find-links locations)`` of pip's configuration (files and ``PIP_*`` variables)."""
    try:
        output = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise WheelIndexError(f"cannot read pip's configuration: {error}") from error
    indexes: list[str] = []
    find_links: list[str] = []
    has_index_url = False
    for line in output.splitlines():
        key, _, raw = line.partition("=")
        option = key.rpartition(".")[2].strip()
        if option not in ("index-url", "extra-index-url", "find-links"):
            continue
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip().strip("'\"")
        for item in str(value).split():
            target = find_links if option == "find-links" else indexes
            if item not in target:
                target.append(item)
        has_index_url = has_index_url or option == "index-url"
    if not has_index_url:
        indexes.insert(0, _DEFAULT_INDEX)
    return indexes, find_links


class _Links(html.parser.HTMLParser):
    """The ``<a href>`` targets of a PEP 503 page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _links_from_html(text: str, base: str) -> list[tuple[str, str | None]]:
    parser = _Links()
    parser.feed(text)
    links = []
    for href in parser.hrefs:
        url = urllib.parse.urljoin(base, href)
        fragment = urllib.parse.urlparse(url).fragment
        match = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", fragment)
        links.append((url.split("#", 1)[0], match.group(1).lower() if match else None))
    return links


def _local_listing(folder: Path) -> list[tuple[str, str | None]]:
    if (folder / "index.html").is_file():
        return _links_from_html((folder / "index.html").read_text(encoding="utf-8"), folder.as_uri() + "/")
    if folder.is_dir():
        return [(path.as_uri(), None) for path in sorted(folder.iterdir()) if path.is_file()]
    return []


def _http_listing(url: str) -> list[tuple[str, str | None]]:
    accept = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            content_type = response.headers.get("Content-Type", "")
            body = response.read().decode("utf-8")
            final_url = response.geturl()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return []
        raise
    if "json" in content_type:
        files = json.loads(body).get("files", [])
        return [
            (urllib.parse.urljoin(final_url, item["url"]), (item.get("hashes") or {}).get("sha256"))
            for item in files
        ]
    return _links_from_html(body, final_url)


def _listing(location: str, name: str | None) -> list[tuple[str, str | None]]:
    """Files (URL, sha256 or None) of an index page (``name`` given) or a find-links location."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme in ("http", "https"):
        url = f"{location.rstrip('/')}/{name}/" if name else location
        return _http_listing(url)
    folder = Path(urllib.request.url2pathname(parsed.path)) if parsed.scheme == "file" else Path(location)
    return _local_listing(folder / name if name else folder)


def _url_sha256(url: str) -> str:
    digest = hashlib.sha256()
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        with open(urllib.request.url2pathname(parsed.path), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class WheelHashes:
    """sha256 of every target-compatible wheel of a pinned version, from pip's indexes and find-links.

    Args:
        target_python: CPython ``major.minor`` of the target (the wheels' tags must fit it, on Linux x86_64).

    Raises:
        WheelIndexError: pip's configuration cannot be read.
    """

    def __init__(self, target_python: str) -> None:
        self.indexes, self.find_links = _pip_sources()
        self.tags = _hash_tags(target_python)
        self._listings: dict[tuple[str, str | None], list[tuple[str, str | None]]] = {}

    def _cached_listing(self, location: str, name: str | None) -> list[tuple[str, str | None]]:
        key = (location, name)
        if key not in self._listings:
            try:
                self._listings[key] = _listing(location, name)
            except (OSError, ValueError, urllib.error.URLError) as error:
                log.warning("lock_index_unreadable", location=location, project=name, error=str(error))
                self._listings[key] = []
        return self._listings[key]

    def of(self, name: str, version: str, chosen: str | None) -> tuple[str, ...]:
        """Every matching wheel's sha256 (``chosen``, the hash of the file pip picked, always among them), sorted."""
        wanted = Version(version)
        hashes: set[str] = {chosen} if chosen else set()
        candidates = [link for index in self.indexes for link in self._cached_listing(index, name)]
        candidates += [link for location in self.find_links for link in self._cached_listing(location, None)]
        for url, sha256 in candidates:
            filename = urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1])
            if not filename.endswith(".whl"):
                continue
            try:
                wheel_name, wheel_version, _, tags = parse_wheel_filename(filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if wheel_name != name or wheel_version != wanted or not (tags & self.tags):
                continue
            hashes.add(sha256.lower() if sha256 else _url_sha256(url))
        return tuple(sorted(hashes))
