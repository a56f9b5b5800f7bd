"""Image environments: a clean virtualenv per container image, holding exactly what its Dockerfile installs.

Each Dockerfile under ``docker/`` is parsed (:func:`discover_images`): its final ``FROM`` (an official
``python:<major>.<minor>...`` image, or ``tensorflow/tensorflow:<version>-gpu``, which ships TensorFlow), the lock
files it ``COPY``s and installs with ``pip install --requirement``, the project it installs with
``pip install --no-deps .`` (from the paths it ``COPY``s), its ``ENTRYPOINT`` and its
``LABEL org.opencontainers.image.title`` (the image name the Argo templates use, e.g. ``cxr-prepare``).

:class:`ImageEnvironments` builds, for one image, a virtualenv that is neither the dev venv nor shares the system
site-packages:

1. for a TensorFlow base, ``tensorflow-cpu==<version of the FROM tag>`` (the CPU wheel of the TensorFlow the GPU
   base ships) first, like the base image's own install;
2. the image's locks, hash-checked, binary wheels only (``--require-hashes --only-binary=:all:``);
3. the project ``--no-deps``, non-editable, built from a staged copy of exactly the paths the Dockerfile copies;
4. ``pip check`` (a conflict, or a dependency of ``pyproject.toml`` the lock lacks, fails with the image's name).

Steps 1-2 are cached by a hash of (lock contents, TensorFlow version, Python major.minor) under
``${CXR_IMAGE_ENV_CACHE:-~/.cache/cxr-gan/image-envs}/env-<hash>/``, so images with the same locks (the three
TensorFlow images) share one environment; step 3 is redone only when the hash of the copied project sources
changed (an edit, or another checkout using the same environment). A file lock (``env-<hash>.lock``) keeps two
processes from building the same environment at once. The interpreter is ``$CXR_IMAGE_ENV_PYTHON`` or the one
running this module; a Python major.minor different from the image's is logged as a warning.

:meth:`ImageEnvironments.check_import_closure` is the fast static check that a job's code imports in its image:
it imports, in the image's environment, the entrypoint module of the image's console script, the Settings and run
modules the table of jobs names for it, and every ``cxrcore``/``jobs`` module those import (also inside functions),
which loads their module-level imports transitively (:mod:`cxrcore.ops.import_check`). A missing module is
reported with the image, the module and the project module that imports it. Dockerfiles are read with
:mod:`cxrcore.ops.dockerfile` (docs/architecture.md#deployment).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from cxrcore.logging import get_logger
from cxrcore.ops.dockerfile import parse_final_stage, split_reference
from cxrcore.ops.import_check import IMPORT_PROBE, PROJECT_PACKAGES, closure_modules, entry_module, report_problems

__all__ = [
    "ENV_CACHE_VARIABLE",
    "ENV_PYTHON_VARIABLE",
    "TENSORFLOW_BASE_PYTHON",
    "TITLE_LABEL",
    "ImageEnvError",
    "ImageEnvironments",
    "ImageSpec",
    "base_kind",
    "check_import_closure",
    "dockerfile_paths",
    "discover_images",
    "image_python_version",
    "missing_module_hint",
]

log = get_logger(__name__)

#: The label whose value names an image (the repository name the Argo templates pull).
TITLE_LABEL = "org.opencontainers.image.title"
#: Overrides the cache folder of the image environments.
ENV_CACHE_VARIABLE = "CXR_IMAGE_ENV_CACHE"
#: Overrides the interpreter the image environments are created from (default: the running one).
ENV_PYTHON_VARIABLE = "CXR_IMAGE_ENV_PYTHON"
#: The CPython major.minor of the official ``tensorflow/tensorflow:<version>-gpu`` images this project builds on.
#: The TensorFlow lock is resolved for it (:mod:`cxrcore.ops.locks`); were the base to ship another Python, the
#: hash-checked ``pip install`` of the lock in the image finds no matching wheel and the build fails.
TENSORFLOW_BASE_PYTHON = "3.11"

_DEFAULT_CACHE = Path("~/.cache/cxr-gan/image-envs")
_THIRD_PARTY_MARKER = ".cxr-third-party.json"
_PROJECT_MARKER = ".cxr-project.json"
_ENV_FORMAT = 1
_LOCK_WAIT_S = 3600.0
_LOCK_POLL_S = 0.5
_VENV_TIMEOUT_S = 300
_PIP_TIMEOUT_S = 3600
_IMPORT_TIMEOUT_S = 600
_SOURCE_IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache"})
_SOURCE_IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
_PYTHON_REPOSITORIES = frozenset({"python", "library/python", "docker.io/library/python"})
_TENSORFLOW_REPOSITORIES = frozenset({"tensorflow/tensorflow", "docker.io/tensorflow/tensorflow"})
_TENSORFLOW_TAG = re.compile(r"(?P<version>\d+\.\d+\.\d+(?:rc\d+)?)(?:-gpu)?(?:-jupyter)?")
_PYTHON_TAG = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)(?:[.\-].*)?")
_MISSING_MODULE = re.compile(r"""No module named \\?['"](?P<name>[^'"\\\s]+)\\?['"]""")


class ImageEnvError(RuntimeError):
    """An image's environment cannot be built or used; the message names the image (or the Dockerfile)."""


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What one Dockerfile builds.

    Attributes:
        name: The image name, from ``LABEL org.opencontainers.image.title`` (e.g. ``cxr-prepare``).
        dockerfile: The Dockerfile.
        base_image: The final stage's ``FROM`` image reference.
        tensorflow_version: The TensorFlow version a ``tensorflow/tensorflow:<version>-gpu`` base ships, else None.
        requirements: The requirement (lock) files it installs, in order, as paths in the repository.
        entrypoint: Its ``ENTRYPOINT`` (exec form; the shell form becomes ``("/bin/sh", "-c", text)``).
    """

    name: str
    dockerfile: Path
    base_image: str
    tensorflow_version: str | None
    requirements: tuple[Path, ...]
    entrypoint: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Dockerfile:
    """A parsed Dockerfile: the public spec plus what building its environment needs."""

    spec: ImageSpec
    project_files: tuple[tuple[Path, str], ...]  # (repository path, path relative to the project directory)
    installs_project: bool
    problems: tuple[str, ...]  # what this module cannot reproduce (reported by ensure, not by discovery)


# --------------------------------------------------------------------------------------------- Dockerfiles


def _parse_dockerfile(path: Path, root: Path) -> _Dockerfile:
    """Parses one Dockerfile's final stage (:func:`cxrcore.ops.dockerfile.parse_final_stage`) into its record.

    Raises:
        ImageEnvError: It cannot be read, has no ``FROM`` or no ``LABEL org.opencontainers.image.title``.
    """
    display = _display(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ImageEnvError(f"{display}: cannot read the Dockerfile: {error}") from error
    stage = parse_final_stage(text, root)
    if not stage.base_image:
        raise ImageEnvError(f"{display}: no FROM instruction")
    name = stage.labels.get(TITLE_LABEL, "").strip()
    if not name:
        raise ImageEnvError(f'{display}: no LABEL {TITLE_LABEL}="<image name>" (the name the Argo templates use)')
    repository, tag = split_reference(stage.base_image)
    tensorflow_version = None
    if repository in _TENSORFLOW_REPOSITORIES:
        match = _TENSORFLOW_TAG.fullmatch(tag)
        tensorflow_version = match.group("version") if match else None
    spec = ImageSpec(
        name=name,
        dockerfile=path,
        base_image=stage.base_image,
        tensorflow_version=tensorflow_version,
        requirements=tuple(root / source for source in stage.requirement_files),
        entrypoint=stage.entrypoint,
    )
    return _Dockerfile(
        spec, tuple(stage.project_files(root)), stage.project_dir is not None, tuple(stage.problems)
    )


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def dockerfile_paths(root: Path) -> list[Path]:
    """The Dockerfiles under ``root/docker``: ``Dockerfile``, ``Dockerfile.*`` and ``*.Dockerfile``, sorted."""
    docker = root / "docker"
    if not docker.is_dir():
        return []
    return sorted(
        path
        for path in docker.rglob("*")
        if path.is_file()
        and (path.name == "Dockerfile" or path.name.startswith("Dockerfile.") or path.name.endswith(".Dockerfile"))
    )


def _parse_all(root: Path) -> dict[str, _Dockerfile]:
    parsed: dict[str, _Dockerfile] = {}
    for path in dockerfile_paths(root):
        dockerfile = _parse_dockerfile(path, root)
        name = dockerfile.spec.name
        if name in parsed:
            raise ImageEnvError(
                f"image {name} is built by two Dockerfiles: {_display(parsed[name].spec.dockerfile, root)} and "
                f"{_display(path, root)}"
            )
        parsed[name] = dockerfile
    return parsed


def discover_images(root: Path) -> dict[str, ImageSpec]:
    """Every image the Dockerfiles under ``root/docker`` build, by name.

    Args:
        root: The repository root.

    Returns:
        ``{image name: ImageSpec}``, sorted by name.

    Raises:
        ImageEnvError: A Dockerfile cannot be parsed, has no title label, or two build the same image.
    """
    root = Path(root).resolve()
    return {name: dockerfile.spec for name, dockerfile in sorted(_parse_all(root).items())}


def base_kind(spec: ImageSpec) -> str:
    """``"tensorflow"`` (an official TensorFlow base), ``"python"`` (an official Python base) or ``"other"``."""
    repository, _ = split_reference(spec.base_image)
    if repository in _TENSORFLOW_REPOSITORIES:
        return "tensorflow"
    if repository in _PYTHON_REPOSITORIES:
        return "python"
    return "other"


def image_python_version(spec: ImageSpec) -> str | None:
    """The CPython ``major.minor`` the image runs: from a ``python:`` tag, or that of the TensorFlow base."""
    kind = base_kind(spec)
    if kind == "tensorflow":
        return TENSORFLOW_BASE_PYTHON
    if kind == "python":
        match = _PYTHON_TAG.fullmatch(split_reference(spec.base_image)[1])
        return f"{match.group('major')}.{match.group('minor')}" if match else None
    return None


def missing_module_hint(log_text: str) -> str | None:
    """The module a job's log says is missing (``No module named 'scipy'`` gives ``scipy``), or None.

    Args:
        log_text: A job's output (plain or JSON lines; quotes may be escaped).

    Returns:
        The first missing module's dotted name, or None when the text names none.
    """
    match = _MISSING_MODULE.search(log_text)
    return match.group("name") if match else None


# ------------------------------------------------------------------------------------------ environments


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_files(path: Path) -> Iterator[tuple[Path, PurePosixPath]]:
    """``(file, path relative to path)`` below a copied source, build debris (``__pycache__``, ...) left out."""
    if path.is_file():
        yield path, PurePosixPath(path.name)
        return
    for current, directories, files in os.walk(path):
        directories[:] = sorted(
            name for name in directories if name not in _SOURCE_IGNORED_DIRS and not name.endswith(".egg-info")
        )
        for name in sorted(files):
            if name.endswith(_SOURCE_IGNORED_SUFFIXES):
                continue
            file = Path(current) / name
            yield file, PurePosixPath(file.relative_to(path).as_posix())


@contextlib.contextmanager
def _file_lock(path: Path, *, image: str, timeout_s: float = _LOCK_WAIT_S) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``path`` (created if needed), waiting up to ``timeout_s``."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        deadline = time.monotonic() + timeout_s
        logged = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not logged:
                    log.info("image_env_waiting_for_lock", image=image, lock=str(path))
                    logged = True
                if time.monotonic() > deadline:
                    raise ImageEnvError(
                        f"image {image}: another process has held {path} for over {timeout_s:.0f} s"
                    ) from None
                time.sleep(_LOCK_POLL_S)
        yield
    finally:
        handle.close()  # closing releases the lock


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _tail(text: str, limit: int = 6000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a subprocess in an image env: no PYTHONPATH/PYTHONHOME, no outer virtualenv."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra or {})
    return env


class ImageEnvironments:
    """Builds and reuses one clean virtualenv per image (see the module docstring).

    Args:
        root: The repository root (``docker/``, ``pyproject.toml``).
        cache_dir: Where the environments live; default ``$CXR_IMAGE_ENV_CACHE`` or
            ``~/.cache/cxr-gan/image-envs``.

    Raises:
        ImageEnvError: A Dockerfile under ``root/docker`` cannot be parsed (see :func:`discover_images`).
    """

    def __init__(self, root: Path, cache_dir: Path | None = None) -> None:
        self.root = Path(root).resolve()
        if cache_dir is None:
            cache_dir = Path(os.environ.get(ENV_CACHE_VARIABLE) or _DEFAULT_CACHE)
        self.cache_dir = Path(cache_dir).expanduser().resolve()
        self._dockerfiles = dict(sorted(_parse_all(self.root).items()))
        self._python_versions: dict[str, str] = {}

    @property
    def images(self) -> dict[str, ImageSpec]:
        """Every image of the repository, by name."""
        return {name: dockerfile.spec for name, dockerfile in self._dockerfiles.items()}

    def image_for_reference(self, reference: str) -> str:
        """The image a container reference runs: ``ghcr.io/cxr-gan/cxr-prepare:0.1.0`` gives ``cxr-prepare``.

        Args:
            reference: An image reference (registry, tag and digest optional).

        Returns:
            The name of the image a Dockerfile of the repository builds.

        Raises:
            ImageEnvError: No Dockerfile builds an image of that name.
        """
        if not isinstance(reference, str) or not reference.strip():
            raise ImageEnvError(f"an image reference must be a non-empty string. Received: reference={reference!r}")
        repository, _ = split_reference(reference.strip())
        name = repository.rstrip("/").rsplit("/", 1)[-1]
        if name not in self._dockerfiles:
            raise ImageEnvError(
                f"no Dockerfile under docker/ builds image {name!r} (from reference {reference!r}); "
                f"they build: {', '.join(self._dockerfiles) or 'nothing'}"
            )
        return name

    def ensure(self, image: str) -> Path:
        """The image's virtualenv, built or reused (its ``bin/`` holds the entrypoint).

        Args:
            image: An image name (``cxr-prepare``).

        Returns:
            The virtualenv's folder.

        Raises:
            ImageEnvError: Unknown image, unsupported Dockerfile, or a failed build or ``pip check``; the message
                names the image.
        """
        dockerfile = self._dockerfile(image)
        spec = dockerfile.spec
        if dockerfile.problems:
            raise ImageEnvError(
                f"image {image}: {_display(spec.dockerfile, self.root)} cannot be reproduced here: "
                + "; ".join(dockerfile.problems)
            )
        kind = base_kind(spec)
        if kind == "other" or (kind == "tensorflow" and spec.tensorflow_version is None):
            raise ImageEnvError(
                f"image {image}: unsupported base image {spec.base_image!r} (expected python:<major>.<minor>... or "
                "tensorflow/tensorflow:<version>-gpu)"
            )
        python = os.environ.get(ENV_PYTHON_VARIABLE) or sys.executable
        python_version = self._python_version(python, image)
        wanted = image_python_version(spec)
        if wanted is not None and wanted != python_version:
            log.warning(
                "image_env_python_differs",
                image=image,
                dockerfile_python=wanted,
                interpreter=python,
                interpreter_python=python_version,
            )
        locks = []
        for requirement in spec.requirements:
            if not requirement.is_file():
                raise ImageEnvError(f"image {image}: requirement file {_display(requirement, self.root)} is missing")
            locks.append({"file": requirement.name, "sha256": _sha256_file(requirement)})
        key_material = {
            "format": _ENV_FORMAT,
            "locks": locks,
            "tensorflow": spec.tensorflow_version,
            "python": python_version,
        }
        key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()[:16]
        env_dir = self.cache_dir / f"env-{key}"
        with _file_lock(self.cache_dir / f"env-{key}.lock", image=image):
            marker = _read_json(env_dir / _THIRD_PARTY_MARKER)
            if marker != key_material:
                self._build_third_party(image, spec, python, env_dir, key_material)
            if dockerfile.installs_project:
                self._install_project(image, dockerfile, env_dir)
        return env_dir

    def check_import_closure(self, image: str) -> list[str]:
        """Problems importing the image's job code in its environment (empty when it all imports).

        Imports the entrypoint module of the image's console script (``pyproject.toml`` ``[project.scripts]``)
        and every ``cxrcore``/``jobs`` module it imports anywhere (``TYPE_CHECKING`` blocks excepted), each of
        which loads its own module-level imports.

        Args:
            image: An image name.

        Returns:
            One line per problem, e.g. ``image cxr-prepare: module 'scipy' missing (imported by
            cxrcore.data.demo); add it to pyproject.toml and run make lock``.
        """
        try:
            modules = self._entry_modules(image)
            env_dir = self.ensure(image)
        except ImageEnvError as error:
            return [str(error)]
        with tempfile.TemporaryDirectory(prefix="cxr-import-check-") as scratch:
            try:
                result = subprocess.run(
                    [
                        str(env_dir / "bin" / "python"),
                        "-I",
                        "-c",
                        IMPORT_PROBE,
                        json.dumps(modules),
                        json.dumps(list(PROJECT_PACKAGES)),
                    ],
                    cwd=scratch,
                    env=_clean_env({"TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg", "MPLCONFIGDIR": scratch}),
                    capture_output=True,
                    text=True,
                    timeout=_IMPORT_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                return [f"image {image}: the import check could not run: {type(error).__name__}: {error}"]
        try:
            report = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return [f"image {image}: the import check failed (exit {result.returncode}):\n{_tail(result.stderr)}"]
        return report_problems(image, report, env_dir, _display(self._dockerfile(image).spec.dockerfile, self.root))

    # ----------------------------------------------------------------------------------------- helpers

    def _dockerfile(self, image: str) -> _Dockerfile:
        if image not in self._dockerfiles:
            raise ImageEnvError(
                f"unknown image {image!r}: Dockerfiles under docker/ build {', '.join(self._dockerfiles) or 'none'}"
            )
        return self._dockerfiles[image]

    def _python_version(self, python: str, image: str) -> str:
        if python not in self._python_versions:
            if Path(python) == Path(sys.executable):
                version = f"{sys.version_info.major}.{sys.version_info.minor}"
            else:
                try:
                    result = subprocess.run(
                        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                        capture_output=True,
                        text=True,
                        timeout=60,
                        check=True,
                    )
                except (OSError, subprocess.SubprocessError) as error:
                    raise ImageEnvError(
                        f"image {image}: cannot run the interpreter {python} (${ENV_PYTHON_VARIABLE}): {error}"
                    ) from error
                version = result.stdout.strip()
            self._python_versions[python] = version
        return self._python_versions[python]

    def _run(self, image: str, step: str, command: list[str], *, timeout_s: int, cwd: Path | None = None) -> str:
        log.info("image_env_step", image=image, step=step)
        started = time.monotonic()
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                cwd=cwd,
                env=_clean_env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ImageEnvError(f"image {image}: {step} failed: {type(error).__name__}: {error}") from error
        output = (result.stdout or "") + (result.stderr or "")
        if result.returncode != 0:
            raise ImageEnvError(f"image {image}: {step} failed (exit {result.returncode}):\n{_tail(output)}")
        log.info("image_env_step_done", image=image, step=step, seconds=round(time.monotonic() - started, 1))
        return output

    def _pip_check(self, image: str, env_dir: Path) -> None:
        try:
            result = subprocess.run(
                [str(env_dir / "bin" / "python"), "-m", "pip", "check"],
                capture_output=True,
                text=True,
                timeout=300,
                env=_clean_env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ImageEnvError(f"image {image}: pip check could not run: {error}") from error
        if result.returncode != 0:
            raise ImageEnvError(
                f"image {image}: pip check found conflicts in {env_dir} (the lock and pyproject.toml disagree; "
                f"run make lock):\n{_tail(result.stdout + result.stderr)}"
            )

    def _build_third_party(
        self, image: str, spec: ImageSpec, python: str, env_dir: Path, key_material: dict
    ) -> None:
        """Creates the virtualenv afresh with the base's TensorFlow (if any) and the locks, then ``pip check``."""
        if env_dir.exists():
            shutil.rmtree(env_dir)
        log.info("image_env_build", image=image, env=str(env_dir), tensorflow=spec.tensorflow_version)
        self._run(image, "create virtualenv", [python, "-m", "venv", str(env_dir)], timeout_s=_VENV_TIMEOUT_S)
        pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
        if spec.tensorflow_version is not None:
            self._run(
                image,
                f"install tensorflow-cpu=={spec.tensorflow_version} (the base image's TensorFlow)",
                [*pip, "--only-binary=:all:", f"tensorflow-cpu=={spec.tensorflow_version}"],
                timeout_s=_PIP_TIMEOUT_S,
            )
        if spec.requirements:
            arguments = [item for requirement in spec.requirements for item in ("--requirement", str(requirement))]
            self._run(
                image,
                "install the locks " + ", ".join(_display(path, self.root) for path in spec.requirements),
                [*pip, "--require-hashes", "--only-binary=:all:", *arguments],
                timeout_s=_PIP_TIMEOUT_S,
            )
        self._pip_check(image, env_dir)
        (env_dir / _PROJECT_MARKER).unlink(missing_ok=True)
        (env_dir / _THIRD_PARTY_MARKER).write_text(json.dumps(key_material, sort_keys=True), encoding="utf-8")

    def _project_hash(self, dockerfile: _Dockerfile) -> str:
        digest = hashlib.sha256()
        for source, relative in dockerfile.project_files:
            if not source.exists():
                raise ImageEnvError(
                    f"image {dockerfile.spec.name}: {_display(dockerfile.spec.dockerfile, self.root)} copies "
                    f"{_display(source, self.root)}, which does not exist"
                )
            for file, inner in _source_files(source):
                name = (PurePosixPath(relative) / inner).as_posix() if source.is_dir() else relative
                digest.update(f"{name}\0{_sha256_file(file)}\n".encode())
        return digest.hexdigest()

    def _install_project(self, image: str, dockerfile: _Dockerfile, env_dir: Path) -> None:
        """Installs the project (``--no-deps``, non-editable) unless the same sources are already installed."""
        source_hash = self._project_hash(dockerfile)
        marker = _read_json(env_dir / _PROJECT_MARKER)
        if marker is not None and marker.get("source_sha256") == source_hash:
            return
        (env_dir / _PROJECT_MARKER).unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="cxr-image-project-") as scratch:
            stage = Path(scratch) / "project"
            stage.mkdir()
            for source, relative in dockerfile.project_files:
                target = stage / relative if relative != "." else stage
                for file, inner in _source_files(source):
                    destination = target / inner if source.is_dir() else target
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, destination)
            self._run(
                image,
                "install the project (--no-deps)",
                [
                    str(env_dir / "bin" / "python"), "-m", "pip", "install", "--no-input", "--no-deps",
                    "--force-reinstall", str(stage),
                ],
                timeout_s=_PIP_TIMEOUT_S,
                cwd=Path(scratch),
            )
        self._pip_check(image, env_dir)
        (env_dir / _PROJECT_MARKER).write_text(json.dumps({"source_sha256": source_hash}), encoding="utf-8")

    def _entry_modules(self, image: str) -> list[str]:
        """What the import check imports for ``image`` (see :mod:`cxrcore.ops.import_check`)."""
        spec = self._dockerfile(image).spec
        if not spec.entrypoint:
            raise ImageEnvError(f"image {image}: {_display(spec.dockerfile, self.root)} has no ENTRYPOINT")
        try:
            module, script = entry_module(self.root, spec.entrypoint, image=image)
            return closure_modules(self.root, module, script, image=image)
        except ValueError as error:
            raise ImageEnvError(str(error)) from error


def check_import_closure(image: str, root: Path | None = None, cache_dir: Path | None = None) -> list[str]:
    """:meth:`ImageEnvironments.check_import_closure` of ``image`` in the repository at ``root``.

    Args:
        image: An image name (``cxr-prepare``).
        root: The repository root; default: the checkout this module belongs to.
        cache_dir: The environments' cache (see :class:`ImageEnvironments`).

    Returns:
        One line per problem; empty when the image's job code imports.
    """
    if root is None:
        root = Path(__file__).resolve().parents[2]
        if not (root / "pyproject.toml").is_file():
            return [f"image {image}: no repository root given and {root} holds no pyproject.toml"]
    try:
        environments = ImageEnvironments(root, cache_dir)
    except ImageEnvError as error:
        return [str(error)]
    return environments.check_import_closure(image)
