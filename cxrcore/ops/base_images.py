"""Pin every Dockerfile's base image by digest: ``make pin-bases`` (``python -m cxrcore.ops.base_images``).

A tag such as ``python:3.11.11-slim-bookworm`` is mutable: the publisher rebuilds it for security updates, so two
builds of one commit can start from different bytes. ``FROM <tag>@sha256:<digest>`` builds from exactly the image
that digest names (the tag stays in the line for readers, tools such as hadolint and the locks, which read the
Python/TensorFlow version from it; Docker ignores a tag next to a digest).

``make pin-bases`` resolves the digest of each ``FROM`` tag that has none through the OCI Distribution API of its
registry (Docker Hub's ``registry-1.docker.io`` for ``python:...`` and ``tensorflow/tensorflow:...``; ``ghcr.io``
and any other host named in the reference): ``GET /v2/<repository>/manifests/<tag>`` accepting the multi-platform
index, with the anonymous bearer token the registry's ``401`` challenge points to. The digest is the sha256 of the
manifest bytes received, computed here and compared with the registry's ``Docker-Content-Digest`` header, so a
proxy or a registry cannot hand back a digest that does not name what it served. ``--update`` re-resolves pinned
lines too (a base refresh: then ``make lock`` and the tests). ``--check`` only reports the unpinned ones (exit 1),
offline. ``--registry-mirror URL`` resolves Docker Hub images through a pull-through mirror (an air-gapped site).

Needs network access to the registry; nothing else in the project does. Tests run it against a loopback
registry speaking the same protocol (``tests/test_base_images.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from cxrcore.logging import get_logger, redact_text
from cxrcore.ops.dockerfile import instructions, split_reference
from cxrcore.ops.images import dockerfile_paths

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "BaseImageError",
    "BaseReference",
    "check_pinned",
    "parse_reference",
    "pin_dockerfiles",
    "resolve_digest",
]

log = get_logger("cxrcore.ops.base_images")

#: What a manifest request accepts, multi-platform indexes first (the digest ``docker pull <tag>`` reports).
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DOCKER_HUB = "registry-1.docker.io"
_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HTTP_TIMEOUT_S = 30.0
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


class BaseImageError(RuntimeError):
    """A base image reference that cannot be parsed or resolved; the message names the file or image."""


@dataclasses.dataclass(frozen=True)
class BaseReference:
    """A ``FROM`` image reference, split.

    Attributes:
        text: The reference as written (``python:3.11.11-slim-bookworm@sha256:...``).
        registry: The registry host (``registry-1.docker.io`` for Docker Hub).
        repository: The repository on that registry (``library/python``).
        tag: The tag (``3.11.11-slim-bookworm``); ``""`` when only a digest is given.
        digest: ``sha256:<hex>`` when pinned, else ``""``.
    """

    text: str
    registry: str
    repository: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        """The reference without its digest (``python:3.11.11-slim-bookworm``)."""
        return self.text.split("@", 1)[0]

    def pinned(self, digest: str) -> str:
        """The reference with ``digest`` (replacing any it had)."""
        return f"{self.name}@{digest}"


def parse_reference(text: str) -> BaseReference:
    """Splits an image reference the way Docker does (Docker Hub default, ``library/`` for official images).

    Args:
        text: ``[host[:port]/]repository[:tag][@sha256:<hex>]``.

    Returns:
        The :class:`BaseReference`.

    Raises:
        BaseImageError: The reference is malformed (bad repository, tag or digest).
    """
    name, _, digest = text.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise BaseImageError(f"not a sha256 digest in the image reference. Received: reference={text!r}")
    repository, tag = split_reference(name)
    if tag and not _TAG.fullmatch(tag):
        raise BaseImageError(f"not a valid tag in the image reference. Received: reference={text!r}")
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, repository
    if registry in _DOCKER_HUB_NAMES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    if not _REPOSITORY.fullmatch(path):
        raise BaseImageError(f"not a valid repository in the image reference. Received: reference={text!r}")
    return BaseReference(text=text, registry=registry, repository=path, tag=tag, digest=digest)


# ------------------------------------------------------------------------------------------- the registry
def _challenge(header: str) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` challenge."""
    scheme, _, parameters = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return {key.lower(): value for key, value in re.findall(r'(\w+)="([^"]*)"', parameters)}


def _open(request: urllib.request.Request, what: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            body = response.read(_MAX_MANIFEST_BYTES + 1)
            return response.status, {key.lower(): value for key, value in response.headers.items()}, body
    except urllib.error.HTTPError as error:
        body = error.read(_MAX_MANIFEST_BYTES + 1) if error.fp is not None else b""
        return error.code, {key.lower(): value for key, value in (error.headers or {}).items()}, body
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise BaseImageError(f"{what}: cannot reach the registry: {redact_text(str(error))}") from error


def _token(challenge: dict[str, str], reference: BaseReference, base_url: str) -> str:
    realm = challenge.get("realm", "")
    parsed = urllib.parse.urlparse(realm)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise BaseImageError(f"{reference.text}: the registry's token realm is not an http(s) URL: {realm!r}")
    if parsed.scheme == "http" and urllib.parse.urlparse(base_url).scheme == "https":
        raise BaseImageError(f"{reference.text}: the registry sends token requests to plain http: {realm!r}")
    query = {"service": challenge.get("service", ""), "scope": f"repository:{reference.repository}:pull"}
    url = f"{realm}{'&' if parsed.query else '?'}{urllib.parse.urlencode({k: v for k, v in query.items() if v})}"
    status, _, body = _open(urllib.request.Request(url), f"{reference.text} (token)")
    if status != 200:
        raise BaseImageError(f"{reference.text}: the registry refused an anonymous pull token (HTTP {status})")
    try:
        payload = json.loads(body)
        token = payload.get("token") or payload.get("access_token")
    except (ValueError, AttributeError) as error:
        raise BaseImageError(f"{reference.text}: the token response is not JSON") from error
    if not isinstance(token, str) or not token:
        raise BaseImageError(f"{reference.text}: the token response holds no token")
    return token


def resolve_digest(reference: str | BaseReference, *, registry_url: str | None = None) -> str:
    """The digest a tag names now, verified against the manifest bytes the registry served.

    Args:
        reference: An image reference with a tag (a digest in it is ignored: the tag is resolved afresh).
        registry_url: Base URL of the registry to ask instead of ``https://<registry host>`` (a pull-through
            mirror of Docker Hub, or a test registry).

    Returns:
        ``sha256:<hex>`` of the manifest (the multi-platform index where the image has one).

    Raises:
        BaseImageError: No tag, the registry is unreachable or refuses, the tag does not exist, the manifest is
            too large, or the registry's ``Docker-Content-Digest`` differs from the bytes it sent.
    """
    parsed = parse_reference(reference) if isinstance(reference, str) else reference
    if not parsed.tag:
        raise BaseImageError(f"{parsed.text}: no tag to resolve (write FROM <image>:<tag>)")
    base_url = (registry_url or f"https://{parsed.registry}").rstrip("/")
    url = f"{base_url}/v2/{parsed.repository}/manifests/{urllib.parse.quote(parsed.tag, safe='')}"
    headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
    status, response_headers, body = _open(urllib.request.Request(url, headers=headers), parsed.text)
    if status == 401:
        challenge = _challenge(response_headers.get("www-authenticate", ""))
        if not challenge:
            raise BaseImageError(f"{parsed.text}: the registry wants credentials this tool does not have (HTTP 401)")
        headers["Authorization"] = f"Bearer {_token(challenge, parsed, base_url)}"
        status, response_headers, body = _open(urllib.request.Request(url, headers=headers), parsed.text)
    if status == 404:
        raise BaseImageError(f"{parsed.text}: no such tag on {parsed.registry} ({parsed.repository})")
    if status != 200:
        raise BaseImageError(f"{parsed.text}: the registry answered HTTP {status}")
    if len(body) > _MAX_MANIFEST_BYTES:
        raise BaseImageError(f"{parsed.text}: the manifest is larger than {_MAX_MANIFEST_BYTES} bytes")
    media_type = response_headers.get("content-type", "").split(";", 1)[0].strip()
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise BaseImageError(f"{parsed.text}: the registry answered a {media_type or 'untyped'} body, not a manifest")
    digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
    announced = response_headers.get("docker-content-digest", "").strip()
    if announced and announced != digest:
        raise BaseImageError(
            f"{parsed.text}: the registry says the manifest is {announced}, but the bytes it sent hash to {digest}"
        )
    return digest


# ------------------------------------------------------------------------------------------ Dockerfiles
def _from_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, image reference)`` of every ``FROM`` that names an image (not ``scratch`` or a stage)."""
    text = path.read_text(encoding="utf-8")
    stages: set[str] = set()
    found: list[tuple[int, str]] = []
    for line, instruction, arguments in instructions(text):
        if instruction != "FROM":
            continue
        words = [word for word in arguments.split() if not word.startswith("--")]
        if not words:
            continue
        image = words[0]
        if len(words) >= 3 and words[1].lower() == "as":
            stages.add(words[2].lower())
        if image.lower() == "scratch" or image.lower() in stages or "$" in image:
            continue
        found.append((line, image))
    return found


def check_pinned(root: Path) -> list[str]:
    """Every ``FROM`` under ``root/docker`` without a digest, as ``"<file>:<line>: <reference>"`` (offline)."""
    root = Path(root).resolve()
    problems = []
    for path in dockerfile_paths(root):
        for line, image in _from_lines(path):
            if not parse_reference(image).digest:
                problems.append(f"{path.relative_to(root).as_posix()}:{line}: {image} is not pinned by digest")
    return problems


def pin_dockerfiles(
    root: Path,
    *,
    update: bool = False,
    resolver: Callable[[BaseReference], str] | None = None,
) -> list[tuple[str, str, str]]:
    """Rewrites each unpinned (or, with ``update``, every) ``FROM`` to ``<tag>@<digest>``.

    Every reference is resolved before any file is written, so a failure leaves every Dockerfile as it was.

    Args:
        root: The repository root.
        update: Re-resolve references that already carry a digest.
        resolver: Maps a reference to its digest (default :func:`resolve_digest`).

    Returns:
        ``(file, old reference, new reference)`` for every line changed.

    Raises:
        BaseImageError: A reference cannot be resolved (nothing is written then).
    """
    root = Path(root).resolve()
    resolve = resolver or resolve_digest
    resolved: dict[str, str] = {}
    plans: list[tuple[Path, int, str, str]] = []
    for path in dockerfile_paths(root):
        for line, image in _from_lines(path):
            reference = parse_reference(image)
            if reference.digest and not update:
                continue
            if reference.name not in resolved:
                resolved[reference.name] = resolve(reference)
                log.info("base_image_resolved", image=reference.name, digest=resolved[reference.name])
            new = reference.pinned(resolved[reference.name])
            if new != image:
                plans.append((path, line, image, new))
    by_file: dict[Path, list[tuple[int, str, str]]] = {}
    for path, line, old, new in plans:
        by_file.setdefault(path, []).append((line, old, new))
    changes = []
    for path, edits in by_file.items():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for line, old, new in edits:
            # `instructions` numbers lines from 1; FROM never spans continuation lines in our Dockerfiles, and a
            # reference that is not on its line is refused rather than guessed.
            text = lines[line - 1]
            pattern = re.compile(rf"(?<=\s){re.escape(old)}(?=\s|$)")
            if not pattern.search(text):
                raise BaseImageError(f"{path.relative_to(root).as_posix()}:{line}: cannot find {old} on the FROM line")
            lines[line - 1] = pattern.sub(new, text, count=1)
            changes.append((path.relative_to(root).as_posix(), old, new))
        temporary = path.with_name(f".{path.name}.pin-tmp")
        temporary.write_text("".join(lines), encoding="utf-8")
        temporary.replace(path)
    return changes


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cxrcore.ops.base_images [--check | --update] [--registry-mirror URL] [--root DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m cxrcore.ops.base_images", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="List FROM lines without a digest (offline); exit 1 if any.")
    mode.add_argument("--update", action="store_true", help="Re-resolve pinned lines too (a base image refresh).")
    parser.add_argument("--registry-mirror", default=None, help="Resolve Docker Hub images through this registry URL.")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: the current dir)")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_pinned(args.root)
        for problem in problems:
            print(problem)
        print(f"base images: {'all pinned' if not problems else f'{len(problems)} not pinned (make pin-bases)'}")
        return 1 if problems else 0

    def resolver(reference: BaseReference) -> str:
        mirror = args.registry_mirror if reference.registry == DOCKER_HUB else None
        return resolve_digest(reference, registry_url=mirror)

    try:
        changes = pin_dockerfiles(args.root, update=args.update, resolver=resolver)
    except BaseImageError as error:
        print(f"pin-bases: {error}; no Dockerfile was changed", file=sys.stderr)
        return 1
    for file, old, new in changes:
        print(f"{file}: {old} -> {new}")
    print(f"pin-bases: {len(changes)} FROM line(s) changed; run `make lock` and the tests if a base moved")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
