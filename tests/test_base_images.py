"""Base images pinned by digest (cxrcore.ops.base_images) against a loopback registry speaking the OCI API.

The registry here follows the Distribution spec as Docker Hub serves it: a manifest request without a token gets
``401`` with a ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` challenge, the realm hands out an
anonymous pull token, and the manifest response carries ``Docker-Content-Digest`` (the sha256 of its bytes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cxrcore.ops import base_images
from cxrcore.ops.base_images import BaseImageError, check_pinned, parse_reference, resolve_digest
from cxrcore.ops.images import discover_images

ROOT = Path(__file__).resolve().parents[1]
INDEX = "application/vnd.oci.image.index.v1+json"
TOKEN = "anonymous-pull-token"


def _manifest(tag: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [], "annotations": {"tag": tag}}).encode()


class FakeRegistry:
    """Manifests by ``(repository, tag)``; records every request; can lie about a digest."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.lie_about: set[tuple[str, str]] = set()
        self.requests: list[tuple[str, dict[str, str]]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                registry.requests.append((self.path, dict(self.headers.items())))
                url = urllib.parse.urlparse(self.path)
                if url.path == "/token":
                    query = urllib.parse.parse_qs(url.query)
                    if query.get("service") != ["fake-registry"] or not query.get("scope", [""])[0].endswith(":pull"):
                        return self._send(400, b"{}", "application/json")
                    return self._send(200, json.dumps({"token": TOKEN}).encode(), "application/json")
                parts = url.path.split("/manifests/")
                if len(parts) != 2 or not parts[0].startswith("/v2/"):
                    return self._send(404, b"{}", "application/json")
                repository, tag = parts[0][len("/v2/") :], urllib.parse.unquote(parts[1])
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    realm = f"http://127.0.0.1:{registry.port}/token"
                    challenge = f'Bearer realm="{realm}",service="fake-registry",scope="repository:{repository}:pull"'
                    return self._send(401, b"{}", "application/json", {"WWW-Authenticate": challenge})
                body = registry.manifests.get((repository, tag))
                if body is None:
                    return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json")
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                if (repository, tag) in registry.lie_about:
                    digest = "sha256:" + "0" * 64
                return self._send(200, body, INDEX, {"Docker-Content-Digest": digest})

            def _send(self, status: int, body: bytes, media: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def add(self, repository: str, tag: str) -> str:
        body = _manifest(f"{repository}:{tag}")
        self.manifests[(repository, tag)] = body
        return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.fixture()
def registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("python:3.11.11-slim-bookworm", "registry-1.docker.io", "library/python", "3.11.11-slim-bookworm", ""),
        ("tensorflow/tensorflow:2.21.0-gpu", "registry-1.docker.io", "tensorflow/tensorflow", "2.21.0-gpu", ""),
        ("docker.io/library/python:3.11", "registry-1.docker.io", "library/python", "3.11", ""),
        ("ghcr.io/cxr-gan/base:1@sha256:" + "a" * 64, "ghcr.io", "cxr-gan/base", "1", "sha256:" + "a" * 64),
        ("localhost:5000/mirror/python:3.11", "localhost:5000", "mirror/python", "3.11", ""),
        ("python", "registry-1.docker.io", "library/python", "", ""),
    ],
)
def test_parse_reference(text: str, registry: str, repository: str, tag: str, digest: str) -> None:
    reference = parse_reference(text)
    assert (reference.registry, reference.repository, reference.tag, reference.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert reference.pinned("sha256:" + "b" * 64) == text.split("@")[0] + "@sha256:" + "b" * 64


@pytest.mark.parametrize("text", ["python:3.11@sha256:abc", "python:bad/tag!", "Upper/Case:1", "python@md5:" + "a" * 32])
def test_parse_reference_rejects_malformed_references(text: str) -> None:
    with pytest.raises(BaseImageError, match="Received: reference="):
        parse_reference(text)


def test_resolve_digest_follows_the_token_challenge_and_hashes_the_manifest(registry: FakeRegistry) -> None:
    expected = registry.add("library/python", "3.11.11-slim-bookworm")
    digest = resolve_digest("python:3.11.11-slim-bookworm", registry_url=registry.url)
    assert digest == expected
    paths = [path for path, _ in registry.requests]
    assert paths[0] == "/v2/library/python/manifests/3.11.11-slim-bookworm"  # unauthenticated: 401 challenge
    assert paths[1].startswith("/token?") and "scope=repository%3Alibrary%2Fpython%3Apull" in paths[1]
    headers = registry.requests[2][1]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"].startswith(INDEX)  # the multi-platform index, as `docker pull <tag>` pins


def test_resolve_digest_refuses_a_registry_whose_digest_header_does_not_name_its_bytes(
    registry: FakeRegistry,
) -> None:
    registry.add("tensorflow/tensorflow", "2.21.0-gpu")
    registry.lie_about.add(("tensorflow/tensorflow", "2.21.0-gpu"))
    with pytest.raises(BaseImageError, match="bytes it sent hash to sha256:"):
        resolve_digest("tensorflow/tensorflow:2.21.0-gpu", registry_url=registry.url)


def test_resolve_digest_names_a_missing_tag_and_an_unreachable_registry(registry: FakeRegistry) -> None:
    with pytest.raises(BaseImageError, match=r"python:0\.0-missing: no such tag"):
        resolve_digest("python:0.0-missing", registry_url=registry.url)
    with pytest.raises(BaseImageError, match="no tag to resolve"):
        resolve_digest("python", registry_url=registry.url)
    registry.server.shutdown()
    registry.server.server_close()
    with pytest.raises(BaseImageError, match="cannot reach the registry"):
        resolve_digest("python:3.11", registry_url=registry.url)


def _copy_repository(destination: Path) -> Path:
    for name in ("docker", "cxrcore", "jobs"):
        shutil.copytree(ROOT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, destination / name)
    return destination


def _bases(root: Path) -> dict[str, str]:
    return {name: spec.base_image for name, spec in discover_images(root).items()}


def test_pin_bases_pins_every_from_line_through_a_mirror_and_changes_nothing_else(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    root = _copy_repository(tmp_path / "repo")
    before = _bases(root)
    digests = {}
    for reference in {parse_reference(base) for base in before.values()}:
        digests[reference.name] = registry.add(reference.repository, reference.tag)
    originals = {path: path.read_text() for path in (root / "docker").rglob("Dockerfile")}

    assert base_images.main(["--root", str(root), "--registry-mirror", registry.url]) == 0

    after = _bases(root)
    assert set(after) == set(before)
    for name, base in after.items():
        reference, old = parse_reference(base), parse_reference(before[name])
        assert reference.name == old.name  # the tag stays for readers and the locks
        assert reference.digest == (old.digest or digests[reference.name]), name  # pinned ones are left alone
    for path, text in originals.items():
        old, new = text.splitlines(), path.read_text().splitlines()
        changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
        assert all(a.startswith("FROM ") and b.startswith(a.split("@")[0]) for a, b in changed), changed
    assert check_pinned(root) == []
    assert base_images.main(["--root", str(root), "--check"]) == 0
    # Pinned lines are left alone unless --update, which moves each to what its tag names now.
    requests = len(registry.requests)
    assert base_images.main(["--root", str(root), "--registry-mirror", registry.url]) == 0
    assert len(registry.requests) == requests
    assert base_images.main(["--root", str(root), "--registry-mirror", registry.url, "--update"]) == 0
    for base in _bases(root).values():
        reference = parse_reference(base)
        assert reference.digest == digests[reference.name], base
    # discover_images still reads the TensorFlow version and the Python of each base.
    specs = discover_images(root)
    assert specs["cxr-gan-train"].tensorflow_version == discover_images(ROOT)["cxr-gan-train"].tensorflow_version


def test_pin_bases_writes_nothing_when_one_base_cannot_be_resolved(registry: FakeRegistry, tmp_path: Path) -> None:
    root = _copy_repository(tmp_path / "repo")
    for base in _bases(root).values():
        reference = parse_reference(base)
        registry.add(reference.repository, reference.tag)
    # The last Dockerfile (in the order they are resolved) names a tag the registry does not have.
    last = max((root / "docker").rglob("Dockerfile"))
    (line,) = [line for line in last.read_text().splitlines() if line.startswith("FROM ")]
    last.write_text(last.read_text().replace(line, "FROM python:0.0-missing"))
    originals = {path: path.read_text() for path in (root / "docker").rglob("Dockerfile")}
    assert base_images.main(["--root", str(root), "--registry-mirror", registry.url]) == 1
    assert any("/tensorflow/tensorflow/manifests/" in path for path, _ in registry.requests)  # resolved first
    assert {path: path.read_text() for path in originals} == originals
    assert not list((root / "docker").rglob(".*pin-tmp"))


def test_check_lists_the_unpinned_from_lines_of_the_repository() -> None:
    problems = check_pinned(ROOT)
    specs = discover_images(ROOT)
    unpinned = {name for name, spec in specs.items() if not parse_reference(spec.base_image).digest}
    assert len(problems) == len(unpinned)
    for name in unpinned:
        relative = specs[name].dockerfile.relative_to(ROOT).as_posix()
        assert any(problem.startswith(f"{relative}:") for problem in problems), (name, problems)
    # The python bases carry a digest (README "Docker" says where it was taken from).
    for name in ("cxr-prepare", "cxr-report"):
        assert parse_reference(specs[name].base_image).digest, name
