"""The images' dependency locks, generated from ``pyproject.toml`` by one command: ``make lock``.

``make lock`` runs ``python -m cxrcore.ops.locks``, which writes:

* ``docker/requirements/base.txt``: the core ``[project] dependencies`` (the ``cxr-prepare`` image);
* ``docker/requirements/report.txt``: the core dependencies plus the ``report`` extra (``cxr-report``);
* ``docker/requirements/tf.txt``: the TensorFlow images (``cxr-gan-train``, ``cxr-synthesize``,
  ``cxr-train-classifier``). They are built ``FROM tensorflow/tensorflow:<version>-gpu``, which already ships
  TensorFlow, so this lock is the core dependencies (plus any non-TensorFlow requirement of the ``tf`` extra)
  resolved **together with** ``tensorflow==<version>`` (the version is read from the Dockerfiles' ``FROM`` tag,
  and must satisfy the ``tf`` extra), and TensorFlow itself is left out: the image keeps the base's GPU build,
  every package TensorFlow depends on is pinned at a version consistent with it, and ``pip check`` is clean.

Every lock pins each distribution with ``==`` and lists the sha256 of every wheel of that version that can run
on the target (pip's hash-checking mode; the Dockerfiles install with ``--require-hashes --only-binary=:all:``).
The target is the images' platform: CPython 3.11 on Linux x86_64, binary wheels only, manylinux wheels for
glibc <= 2.35 (the python:3.11-slim-bookworm base has 2.36, the TensorFlow GPU base Ubuntu's 2.35); wheels for a
newer glibc are hashed too but never chosen by the resolver.

How: pip resolves (``pip install --dry-run --ignore-installed --report`` with ``--platform``/``--python-version``
for the target, through pip's own index configuration), then the hashes of every target-compatible wheel of each
pinned version are read from the same indexes (PEP 691 JSON or PEP 503 HTML pages, find-links folders:
:mod:`cxrcore.ops.wheel_index`); the hash of the file pip chose is always among them. pip evaluates environment
markers for the interpreter that runs it, so ``make lock`` refuses to run anywhere but CPython 3.11 on Linux
x86_64 (the dev venv and CI, or ``docker run python:3.11-slim-bookworm``). It needs the package index; nothing
else here does.

Each lock starts with a header written by the generator; its ``inputs-sha256`` is a hash of what the lock was
generated from (the ``requires-python``, ``dependencies`` and used extras of ``pyproject.toml``, the TensorFlow
version, the target). :func:`check_locks` verifies offline that every lock is current and complete (``make test``
runs it in ``tests/test_locks.py``), so a ``pyproject.toml`` edit or a ``FROM`` tag bump without ``make lock``
fails with a message naming the command.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from cxrcore.logging import get_logger
from cxrcore.ops.images import ImageEnvError, ImageSpec, base_kind, discover_images, image_python_version
from cxrcore.ops.wheel_index import WheelHashes, WheelIndexError

__all__ = [
    "LOCKS",
    "LOCK_COMMAND",
    "TARGET_MARKERS",
    "TARGET_PYTHON",
    "LockError",
    "LockFile",
    "LockSpec",
    "Pin",
    "check_locks",
    "inputs_digest",
    "lock_requirements",
    "main",
    "parse_lock",
    "write_locks",
]

log = get_logger("cxrcore.ops.locks")

#: The one command that regenerates every lock.
LOCK_COMMAND = "make lock"
#: CPython major.minor every image runs (python:3.11 bases; the TensorFlow GPU base ships 3.11 too).
TARGET_PYTHON = "3.11"
#: Environment markers of the images' platform, for evaluating ``pyproject.toml`` requirements.
TARGET_MARKERS: dict[str, str] = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": TARGET_PYTHON,
    "python_full_version": f"{TARGET_PYTHON}.0",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
#: Newest glibc every image has (Ubuntu 22.04 under the TensorFlow GPU base; Debian 12 has 2.36).
TARGET_GLIBC_MINOR = 35
#: Distributions a TensorFlow base image provides (never pinned in a TensorFlow lock).
TENSORFLOW_DISTRIBUTIONS = frozenset({"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel"})

_FORMAT = 1
_HEADER_LINE = re.compile(r"#\s*(?P<key>[a-z][a-z0-9-]*):\s*(?P<value>.*?)\s*$")
_PIN_LINE = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==(?P<version>[^\s\\;]+)"
    r"(?P<hashes>(?:\s+--hash=sha256:[0-9a-f]{64})+)"
)
_PIP_TIMEOUT_S = 1800


class LockError(RuntimeError):
    """A lock cannot be generated or read; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class LockSpec:
    """One generated lock.

    Attributes:
        name: Short name (``base``, ``report``, ``tf``), also written in the header.
        path: The lock file, relative to the repository root.
        extras: ``pyproject.toml`` extras installed on top of the core dependencies.
        tensorflow: Whether the images installing it are built on a TensorFlow base: the lock is resolved with
            that TensorFlow version and leaves TensorFlow out.
    """

    name: str
    path: str
    extras: tuple[str, ...] = ()
    tensorflow: bool = False


#: Every lock ``make lock`` writes. Which image installs which is read from the Dockerfiles.
LOCKS: tuple[LockSpec, ...] = (
    LockSpec("base", "docker/requirements/base.txt"),
    LockSpec("report", "docker/requirements/report.txt", extras=("report",)),
    LockSpec("tf", "docker/requirements/tf.txt", tensorflow=True),
)


@dataclasses.dataclass(frozen=True)
class Pin:
    """One pinned distribution of a lock: canonical name, exact version and its allowed sha256 hashes."""

    name: str
    version: str
    hashes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class LockFile:
    """A parsed lock: its header fields (``key: value`` comments before the first pin) and its pins by name."""

    path: Path
    header: dict[str, str]
    pins: dict[str, Pin]


# ------------------------------------------------------------------------------------------------ inputs


def _project(root: Path) -> dict[str, Any]:
    """The ``[project]`` table of ``root/pyproject.toml``."""
    path = root / "pyproject.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise LockError(f"cannot read {path}: {error}") from error


def _requirements(texts: Sequence[str], where: str) -> list[Requirement]:
    requirements = []
    for text in texts:
        try:
            requirements.append(Requirement(text))
        except InvalidRequirement as error:
            raise LockError(f"pyproject.toml {where}: invalid requirement {text!r}: {error}") from error
    return requirements


def _applies(requirement: Requirement) -> bool:
    return requirement.marker is None or requirement.marker.evaluate(TARGET_MARKERS)


def lock_requirements(spec: LockSpec, project: dict[str, Any]) -> tuple[list[Requirement], list[Requirement]]:
    """What an image installing ``spec`` needs, split into what the lock pins and what its base provides.

    Args:
        spec: The lock.
        project: The ``[project]`` table of ``pyproject.toml``.

    Returns:
        ``(pinned, provided)``: the requirements (markers evaluated for the target) the lock must pin, and, for a
        TensorFlow lock, the ``tf`` extra's TensorFlow requirements the base image's TensorFlow must satisfy.

    Raises:
        LockError: An extra is not defined, or a requirement is invalid.
    """
    extras_table = project.get("optional-dependencies", {})
    pinned = _requirements(project.get("dependencies", []), "[project] dependencies")
    provided: list[Requirement] = []
    for extra in spec.extras:
        if extra not in extras_table:
            raise LockError(f"pyproject.toml defines no extra {extra!r} (lock {spec.name})")
        pinned += _requirements(extras_table[extra], f"extra {extra!r}")
    if spec.tensorflow:
        if "tf" not in extras_table:
            raise LockError("pyproject.toml defines no extra 'tf' (the TensorFlow lock follows it)")
        for requirement in _requirements(extras_table["tf"], "extra 'tf'"):
            if canonicalize_name(requirement.name) in TENSORFLOW_DISTRIBUTIONS:
                provided.append(requirement)
            else:
                pinned.append(requirement)
    return [item for item in pinned if _applies(item)], [item for item in provided if _applies(item)]


def inputs_digest(spec: LockSpec, project: dict[str, Any], tensorflow_version: str | None) -> str:
    """The sha256 of everything a lock is generated from (written in its header as ``inputs-sha256``).

    Args:
        spec: The lock.
        project: The ``[project]`` table of ``pyproject.toml``.
        tensorflow_version: The TensorFlow of the images' base (TensorFlow locks), else None.

    Returns:
        A hex digest; reordering or reformatting requirements does not change it.
    """
    extras_table = project.get("optional-dependencies", {})
    used_extras = [*spec.extras, *(["tf"] if spec.tensorflow else [])]

    def normalized(texts: Sequence[str]) -> list[str]:
        return sorted(str(requirement) for requirement in _requirements(texts, "inputs"))

    material = {
        "format": _FORMAT,
        "lock": spec.name,
        "requires-python": project.get("requires-python"),
        "dependencies": normalized(project.get("dependencies", [])),
        "extras": {extra: normalized(extras_table.get(extra, [])) for extra in used_extras},
        "tensorflow": tensorflow_version if spec.tensorflow else None,
        "target": {"python": TARGET_PYTHON, "glibc": f"2.{TARGET_GLIBC_MINOR}", "machine": "x86_64"},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _users(spec: LockSpec, images: dict[str, ImageSpec], root: Path) -> list[ImageSpec]:
    path = (root / spec.path).resolve()
    return [image for image in images.values() if path in {item.resolve() for item in image.requirements}]


def _tensorflow_version(spec: LockSpec, users: list[ImageSpec]) -> tuple[str | None, list[str]]:
    """The TensorFlow version of a TensorFlow lock's images (all must agree), with problems."""
    if not spec.tensorflow:
        return None, []
    versions = {image.name: image.tensorflow_version for image in users}
    problems = [
        f"image {name} installs {spec.path} but its base is not tensorflow/tensorflow:<version>-gpu"
        for name, version in versions.items()
        if version is None
    ]
    distinct = sorted({version for version in versions.values() if version})
    if len(distinct) > 1:
        problems.append(
            f"the images installing {spec.path} are built on different TensorFlow versions "
            f"({', '.join(f'{name}: {version}' for name, version in sorted(versions.items()))}): one lock needs one"
        )
    return (distinct[0] if distinct else None), problems


# ------------------------------------------------------------------------------------------- lock files


def parse_lock(text: str, path: Path) -> LockFile:
    """Parses a lock: ``# key: value`` header lines, then ``name==version --hash=sha256:...`` entries.

    Args:
        text: The lock's content.
        path: Its path (for messages).

    Returns:
        The parsed lock.

    Raises:
        LockError: A line is not an exact, hashed pin, or a distribution is pinned twice.
    """
    header: dict[str, str] = {}
    pins: dict[str, Pin] = {}
    logical: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    in_header = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buffer:
            if not line:
                continue
            if line.startswith("#"):
                match = _HEADER_LINE.fullmatch(line)
                if in_header and match:
                    header[match.group("key")] = match.group("value")
                continue
            start = number
            in_header = False
        if line.endswith("\\"):
            buffer.append(line[:-1])
            continue
        buffer.append(line)
        logical.append((start, " ".join(buffer)))
        buffer = []
    if buffer:
        logical.append((start, " ".join(buffer)))
    for number, line in logical:
        match = _PIN_LINE.fullmatch(line.strip())
        if not match:
            raise LockError(
                f"{path}:{number}: expected 'name==version --hash=sha256:<64 hex>...'. Received: {line.strip()!r}"
            )
        name = canonicalize_name(match.group("name"))
        if name in pins:
            raise LockError(f"{path}:{number}: {name} is pinned twice")
        hashes = tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", match.group("hashes")))
        pins[name] = Pin(name, match.group("version"), hashes)
    return LockFile(path, header, pins)


def _render(
    spec: LockSpec,
    users: list[ImageSpec],
    pinned: list[Requirement],
    tensorflow_version: str | None,
    digest: str,
    pins: list[Pin],
) -> str:
    lines = [
        f"# Generated by `{LOCK_COMMAND}` (python -m cxrcore.ops.locks) from pyproject.toml: do not edit by hand.",
        "# Installed with: pip install --require-hashes --only-binary=:all: --requirement <this file>",
        f"# lock: {spec.name}",
        f"# images: {' '.join(sorted(image.name for image in users))}",
        f"# target: CPython {TARGET_PYTHON}, Linux x86_64, manylinux wheels (glibc <= 2.{TARGET_GLIBC_MINOR})",
        f"# requirements: {'; '.join(sorted(str(item) for item in pinned))}",
    ]
    if tensorflow_version is not None:
        lines.append(f"# base-image-provides: tensorflow=={tensorflow_version} (resolved with it, not installed)")
    lines.append(f"# inputs-sha256: {digest}")
    for pin in pins:
        lines.append(f"{pin.name}=={pin.version} \\")
        for index, value in enumerate(pin.hashes):
            lines.append(f"    --hash=sha256:{value}" + (" \\" if index < len(pin.hashes) - 1 else ""))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- resolving


def _check_host() -> None:
    machine = platform.machine().lower()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if (
        sys.platform != "linux"
        or machine not in ("x86_64", "amd64")
        or sys.implementation.name != "cpython"
        or version != TARGET_PYTHON
    ):
        raise LockError(
            f"{LOCK_COMMAND} resolves for CPython {TARGET_PYTHON} on Linux x86_64 (pip evaluates environment "
            f"markers for the interpreter running it); this is {sys.implementation.name} {version} on "
            f"{sys.platform} {machine}. Run it there, e.g. docker run --rm -v \"$PWD:/src\" -w /src "
            f"python:{TARGET_PYTHON}-slim-bookworm sh -c 'apt-get update && apt-get install -y make && "
            f"{LOCK_COMMAND}'"
        )


def _resolve_platforms() -> list[str]:
    return [f"manylinux_2_{minor}_x86_64" for minor in range(TARGET_GLIBC_MINOR, 4, -1)] + [
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    ]


def _resolve(requirements: list[str]) -> list[dict[str, Any]]:
    """pip's installation report for ``requirements`` on the target (every distribution, nothing installed)."""
    with tempfile.TemporaryDirectory(prefix="cxr-lock-") as scratch:
        requirement_file = Path(scratch) / "requirements.in"
        requirement_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        report = Path(scratch) / "report.json"
        python = TARGET_PYTHON.replace(".", "")
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        command += ["--disable-pip-version-check", "--no-input", "--report", str(report), "--only-binary=:all:"]
        command += ["--python-version", TARGET_PYTHON, "--implementation", "cp", "--abi", f"cp{python}"]
        command += [item for name in _resolve_platforms() for item in ("--platform", name)]
        command += ["--requirement", str(requirement_file)]
        log.info("lock_resolve", requirements=len(requirements))
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise LockError(f"pip could not resolve {requirements}: {error}") from error
        if result.returncode != 0:
            raise LockError(f"pip could not resolve {requirements} (exit {result.returncode}):\n{result.stderr}")
        return json.loads(report.read_text(encoding="utf-8"))["install"]


def write_locks(root: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Regenerates locks from ``root/pyproject.toml`` and the Dockerfiles (needs the package index).

    Args:
        root: The repository root.
        names: Lock names to regenerate (``base``, ``report``, ``tf``); None: all of :data:`LOCKS`.

    Returns:
        The written lock files.

    Raises:
        LockError: Wrong host, unknown lock name, inconsistent Dockerfiles, or a failed resolution.
    """
    root = Path(root).resolve()
    known = {spec.name: spec for spec in LOCKS}
    selected = list(LOCKS) if names is None else []
    for name in names or ():
        if name not in known:
            raise LockError(f"unknown lock {name!r}: expected one of {', '.join(known)}. Received: names={names!r}")
        selected.append(known[name])
    _check_host()
    project = _project(root)
    try:
        images = discover_images(root)
    except ImageEnvError as error:
        raise LockError(str(error)) from error
    try:
        hashes = WheelHashes(TARGET_PYTHON)
    except WheelIndexError as error:
        raise LockError(str(error)) from error
    written: list[Path] = []
    for spec in selected:
        users = _users(spec, images, root)
        tensorflow_version, problems = _tensorflow_version(spec, users)
        if problems:
            raise LockError("; ".join(problems))
        if spec.tensorflow and tensorflow_version is None:
            raise LockError(f"no Dockerfile on a tensorflow/tensorflow:<version>-gpu base installs {spec.path}")
        pinned, provided = lock_requirements(spec, project)
        inputs = [str(item) for item in pinned]
        excluded: set[str] = set()
        if tensorflow_version is not None:
            for requirement in provided:
                if not requirement.specifier.contains(tensorflow_version, prereleases=True):
                    raise LockError(
                        f"the TensorFlow images' base ships tensorflow {tensorflow_version}, which the tf extra's "
                        f"{requirement} does not allow: change the Dockerfiles' FROM tag or pyproject.toml"
                    )
            inputs.append(f"tensorflow=={tensorflow_version}")
            excluded = set(TENSORFLOW_DISTRIBUTIONS)
        report = _resolve(inputs)
        pins = []
        for item in report:
            name = canonicalize_name(item["metadata"]["name"])
            if name in excluded:
                continue
            version = item["metadata"]["version"]
            chosen = ((item.get("download_info") or {}).get("archive_info") or {}).get("hashes", {}).get("sha256")
            pins.append(Pin(name, version, hashes.of(name, version, chosen)))
        pins.sort(key=lambda pin: pin.name)
        digest = inputs_digest(spec, project, tensorflow_version)
        text = _render(spec, users, pinned, tensorflow_version, digest, pins)
        path = root / spec.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        log.info("lock_written", lock=spec.path, pins=len(pins), tensorflow=tensorflow_version)
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------- checking


def check_locks(root: Path) -> list[str]:
    """Offline problems of the checked-in locks (empty when every lock is current and complete).

    Checks that every lock of :data:`LOCKS` exists and parses (exact pins with hashes), that its
    ``inputs-sha256`` matches ``pyproject.toml`` and the TensorFlow base version, that it pins every requirement
    of its images at a version satisfying the specifier, that a TensorFlow base satisfies the ``tf`` extra, and
    that every Dockerfile installs a lock of the right kind.

    Args:
        root: The repository root.

    Returns:
        One message per problem; those fixed by regenerating name ``make lock``.
    """
    root = Path(root).resolve()
    rerun = f"run `{LOCK_COMMAND}`"
    try:
        project = _project(root)
        images = discover_images(root)
    except (LockError, ImageEnvError) as error:
        return [str(error)]
    problems: list[str] = []
    lock_paths = {(root / spec.path).resolve(): spec for spec in LOCKS}
    for image in images.values():
        python = image_python_version(image)
        if python is not None and python != TARGET_PYTHON:
            problems.append(
                f"image {image.name} runs Python {python} but the locks target {TARGET_PYTHON}: change "
                f"{image.dockerfile.relative_to(root)} or TARGET_PYTHON in cxrcore/ops/locks.py"
            )
        for requirement in image.requirements:
            spec = lock_paths.get(requirement.resolve())
            if spec is None:
                problems.append(f"image {image.name} installs {requirement}, which {LOCK_COMMAND} does not generate")
            elif spec.tensorflow != (base_kind(image) == "tensorflow"):
                kind = "a TensorFlow" if base_kind(image) == "tensorflow" else "a non-TensorFlow"
                problems.append(f"image {image.name} is built on {kind} base but installs {spec.path}")
    for spec in LOCKS:
        users = _users(spec, images, root)
        if not users:
            problems.append(f"no Dockerfile installs {spec.path}")
        tensorflow_version, tensorflow_problems = _tensorflow_version(spec, users)
        problems += tensorflow_problems
        path = root / spec.path
        if not path.is_file():
            problems.append(f"{spec.path} is missing: {rerun}")
            continue
        try:
            lock = parse_lock(path.read_text(encoding="utf-8"), Path(spec.path))
            pinned, provided = lock_requirements(spec, project)
        except (LockError, OSError) as error:
            problems.append(f"{error}: {rerun}")
            continue
        expected = inputs_digest(spec, project, tensorflow_version)
        recorded = lock.header.get("inputs-sha256")
        if recorded != expected:
            problems.append(
                f"{spec.path} is out of date with pyproject.toml (dependencies, extras or the TensorFlow base "
                f"version changed since it was generated): {rerun}"
            )
        for requirement in pinned:
            pin = lock.pins.get(canonicalize_name(requirement.name))
            if pin is None:
                problems.append(f"{spec.path} does not pin {requirement.name} (pyproject.toml: {requirement}): {rerun}")
            elif not requirement.specifier.contains(pin.version, prereleases=True):
                problems.append(
                    f"{spec.path} pins {pin.name}=={pin.version}, which does not satisfy {requirement}: {rerun}"
                )
        if spec.tensorflow:
            for name in sorted(TENSORFLOW_DISTRIBUTIONS & set(lock.pins)):
                problems.append(f"{spec.path} pins {name}, which the TensorFlow base image provides: {rerun}")
            for requirement in provided:
                if tensorflow_version is not None and not requirement.specifier.contains(
                    tensorflow_version, prereleases=True
                ):
                    problems.append(
                        f"the TensorFlow images' base ships tensorflow {tensorflow_version}, which the tf extra's "
                        f"{requirement} does not allow"
                    )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cxrcore.ops.locks [--check] [--lock NAME] [--root DIR]``; returns the exit code."""
    from cxrcore.logging import configure_logging

    parser = argparse.ArgumentParser(
        prog="python -m cxrcore.ops.locks",
        description=f"Regenerate docker/requirements/*.txt from pyproject.toml (`{LOCK_COMMAND}`).",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: the current dir)")
    parser.add_argument(
        "--lock", action="append", choices=[spec.name for spec in LOCKS], help="only this lock (repeatable)"
    )
    parser.add_argument("--check", action="store_true", help="only verify the locks offline; exit 1 on problems")
    args = parser.parse_args(argv)
    configure_logging("INFO", "auto")
    if args.check:
        problems = check_locks(args.root)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    try:
        written = write_locks(args.root, args.lock)
    except LockError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path.relative_to(args.root.resolve()))
    problems = check_locks(args.root)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
