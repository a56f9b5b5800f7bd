"""Reading Dockerfiles: instructions, ``ARG`` substitution, ``COPY`` rules and the ``pip install`` lines.

See docs/architecture.md#deployment. The one Dockerfile reader of the project: the image environments
(:mod:`cxrcore.ops.images`: what an image installs and copies) and the linter (:mod:`cxrcore.ops.lint.docker`: the
user its container runs as) both read instructions through :func:`instructions`.

:func:`instructions` follows Docker's parser: a ``# escape=`` directive, continuation lines joined (comment and
empty lines inside a continuation are skipped), comments dropped. :func:`parse_final_stage` walks them with the
``ARG`` scoping of a multi-stage build (global ``ARG`` defaults before the first ``FROM``, stage ``ARG``\\ s after)
and records what the final stage does.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path, PurePosixPath

__all__ = [
    "Copy",
    "FinalStage",
    "container_path",
    "copy_targets",
    "instructions",
    "parse_final_stage",
    "parse_pip_install",
    "pip_install_segments",
    "resolve_copied",
    "split_reference",
]

_ESCAPE_DIRECTIVE = re.compile(r"#\s*escape\s*=\s*(\S)\s*")
_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)
_PIP_OPTIONS_WITH_VALUE = frozenset(
    {
        "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target", "-i", "--index-url",
        "--extra-index-url", "-f", "--find-links", "--platform", "--python-version", "--implementation", "--abi",
        "--root", "--prefix", "--src", "--upgrade-strategy", "--progress-bar", "--only-binary", "--no-binary",
        "--log", "--proxy", "--retries", "--timeout", "--cache-dir", "--trusted-host", "--cert", "--client-cert",
        "--report", "--config-settings", "-C", "--global-option", "--exists-action",
    }
)


# ------------------------------------------------------------------------------------------- instructions
def _escape_character(lines: list[str]) -> str:
    """The Dockerfile's ``# escape=`` parser directive (only before the first non-comment line), or a backslash."""
    for line in lines:
        directive = _ESCAPE_DIRECTIVE.fullmatch(line)
        if directive:
            return directive.group(1)
        if not line.startswith("#"):
            break
    return "\\"


def instructions(text: str) -> list[tuple[int, str, str]]:
    """``(line, INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined, comments dropped.

    Args:
        text: The Dockerfile's content.

    Returns:
        One tuple per instruction: the line it starts on, its upper-cased keyword, its arguments (stripped).
    """
    lines = text.splitlines()
    escape = _escape_character(lines)
    found: list[tuple[int, str, str]] = []
    buffer: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # outside an instruction, and inside a continuation alike
        if not buffer:
            start = number
        if stripped.endswith(escape):
            buffer.append(stripped[:-1])
            continue
        buffer.append(stripped)
        found.append(_instruction(start, buffer))
        buffer = []
    if buffer:
        found.append(_instruction(start, buffer))
    return found


def _instruction(start: int, parts: list[str]) -> tuple[int, str, str]:
    keyword, _, arguments = " ".join(parts).strip().partition(" ")
    return start, keyword.upper(), arguments.strip()


def _substitute(text: str, variables: dict[str, str]) -> str:
    """``$NAME``, ``${NAME}`` and ``${NAME:-default}`` replaced from ``variables`` (ARG defaults)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        value = variables.get(name, "")
        if not value and match.group("default") is not None:
            return match.group("default")
        return value

    return _VARIABLE.sub(replace, text)


def _words(arguments: str) -> list[str]:
    """The words of an instruction: its JSON (exec) form, or shell-like splitting."""
    if arguments.startswith("["):
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(word, str) for word in parsed):
            return parsed
    return shlex.split(arguments)


def _labels(arguments: str) -> dict[str, str]:
    """``LABEL key=value ...`` (and the legacy ``LABEL key value``) as a mapping."""
    words = shlex.split(arguments)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    labels: dict[str, str] = {}
    for word in words:
        key, _, value = word.partition("=")
        labels[key] = value
    return labels


def split_reference(reference: str) -> tuple[str, str]:
    """``(repository, tag)`` of an image reference; the digest and a registry port stay out of the tag."""
    without_digest = reference.split("@", 1)[0]
    slash = without_digest.rfind("/")
    colon = without_digest.rfind(":")
    if colon > slash:
        return without_digest[:colon], without_digest[colon + 1 :]
    return without_digest, ""


# --------------------------------------------------------------------------------------------- pip install
def pip_install_segments(command: str) -> list[list[str]]:
    """The argument lists (after ``install``) of every ``pip install`` in a shell command."""
    segments: list[list[str]] = []
    for part in re.split(r"&&|\|\||;", command):
        try:
            words = shlex.split(part)
        except ValueError:
            continue
        for index, word in enumerate(words):
            if PurePosixPath(word).name in ("pip", "pip3"):  # pip, /usr/bin/pip3, python -m pip
                if index + 1 < len(words) and words[index + 1] == "install":
                    segments.append(words[index + 2 :])
                break
    return segments


def parse_pip_install(arguments: list[str]) -> tuple[list[str], list[str], set[str]]:
    """``(requirement files, positional targets, flags)`` of one ``pip install`` argument list."""
    requirement_files: list[str] = []
    targets: list[str] = []
    flags: set[str] = set()
    index = 0
    while index < len(arguments):
        word = arguments[index]
        if word in ("-r", "--requirement"):
            if index + 1 < len(arguments):
                requirement_files.append(arguments[index + 1])
            index += 2
            continue
        if word.startswith("--requirement="):
            requirement_files.append(word.split("=", 1)[1])
        elif word.startswith("-r") and len(word) > 2:
            requirement_files.append(word[2:])
        elif word in _PIP_OPTIONS_WITH_VALUE:
            flags.add(word)
            index += 2
            continue
        elif word.startswith("-"):
            flags.add(word.split("=", 1)[0])
        else:
            targets.append(word)
        index += 1
    return requirement_files, targets, flags


# -------------------------------------------------------------------------------------------------- COPY
@dataclasses.dataclass(frozen=True)
class Copy:
    """One ``COPY``: repository sources to a container destination (absolute, after ``WORKDIR``)."""

    sources: tuple[str, ...]
    destination: str


def container_path(path: str, workdir: str) -> str:
    """An absolute, normalized container path (relative paths are under ``workdir``)."""
    joined = PurePosixPath(workdir) / path
    parts: list[str] = []
    for part in joined.parts[1:]:
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def copy_targets(copy: Copy, root: Path) -> list[tuple[str, str]]:
    """``(repository source, container path)`` pairs of a ``COPY``, with Docker's rules: a directory's contents
    go into the destination; a file goes into it when it ends with ``/`` or several sources are copied, else the
    file becomes the destination."""
    into_directory = copy.destination.endswith("/") or len(copy.sources) > 1
    destination = copy.destination.rstrip("/") or "/"
    pairs: list[tuple[str, str]] = []
    for source in copy.sources:
        if (root / source).is_dir() or not into_directory:
            pairs.append((source, destination))
        else:
            pairs.append((source, f"{destination.rstrip('/')}/{PurePosixPath(source).name}"))
    return pairs


def resolve_copied(path: str, copies: list[Copy], root: Path) -> str | None:
    """The repository source a container path was ``COPY``'d from (the latest ``COPY`` wins), or None."""
    for copy in reversed(copies):
        for source, target in copy_targets(copy, root):
            if target == path:
                return source
            if path.startswith(target.rstrip("/") + "/"):  # a file inside a copied directory
                return f"{source.rstrip('/')}/{path[len(target.rstrip('/')) + 1 :]}"
    return None


# ---------------------------------------------------------------------------------------------- the stage
@dataclasses.dataclass
class FinalStage:
    """What the final stage of a Dockerfile does, as far as building its environment needs to know.

    Attributes:
        base_image: Its ``FROM`` image reference (``""`` without a ``FROM``).
        arguments: Its ``ARG`` values (declared in the stage, defaults from the global ``ARG``\\ s).
        labels: Its ``LABEL``\\ s.
        entrypoint: Its ``ENTRYPOINT`` (exec form; the shell form becomes ``("/bin/sh", "-c", text)``).
        workdir: The ``WORKDIR`` in effect at the end.
        copies: Its ``COPY``/``ADD`` from the build context (not ``--from`` another stage), in order.
        requirement_files: The repository files it installs with ``pip install --requirement``, in order.
        project_dir: The container folder it installs as the project (``pip install .``), or ``None``.
        project_copies: The copies made before that install (what the installed project is built from).
        problems: What an environment cannot reproduce (an editable install, a pin no lock holds, ...).
    """

    base_image: str = ""
    arguments: dict[str, str] = dataclasses.field(default_factory=dict)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    workdir: str = "/"
    copies: list[Copy] = dataclasses.field(default_factory=list)
    requirement_files: list[str] = dataclasses.field(default_factory=list)
    project_dir: str | None = None
    project_copies: list[Copy] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    def apply(self, line: int, instruction: str, arguments: str, root: Path) -> None:
        """Records one instruction of the stage (``ARG`` and ``FROM`` are handled by :func:`parse_final_stage`)."""
        expanded = _substitute(arguments, self.arguments)
        if instruction == "LABEL":
            self.labels.update(_labels(expanded))
        elif instruction == "WORKDIR":
            self.workdir = container_path(expanded, self.workdir)
        elif instruction in ("COPY", "ADD"):
            self._copy(expanded)
        elif instruction == "RUN":
            for install in pip_install_segments(expanded):
                self._pip_install(line, install, root)
        elif instruction == "ENTRYPOINT":
            try:
                words = json.loads(arguments) if arguments.startswith("[") else None
            except json.JSONDecodeError:
                words = None
            self.entrypoint = tuple(words) if isinstance(words, list) else ("/bin/sh", "-c", arguments)

    def _copy(self, expanded: str) -> None:
        words = _words(expanded)
        if any(word.startswith("--from") for word in words):
            return
        words = [word for word in words if not word.startswith("--")]
        if len(words) >= 2:
            slash = "/" if words[-1].endswith("/") else ""
            self.copies.append(Copy(tuple(words[:-1]), container_path(words[-1], self.workdir) + slash))

    def _pip_install(self, line: int, install: list[str], root: Path) -> None:
        files, targets, flags = parse_pip_install(install)
        for file in files:
            source = resolve_copied(container_path(file, self.workdir), self.copies, root)
            if source is None:
                self.problems.append(f"line {line}: requirement file {file} is not COPY'd from the repository")
            else:
                self.requirement_files.append(source)
        for target in targets:
            if target in (".", "./") or container_path(target, self.workdir) == self.workdir:
                if "--no-deps" not in flags:
                    self.problems.append(f"line {line}: the project is installed without --no-deps")
                self.project_dir = container_path(target, self.workdir)
                self.project_copies = list(self.copies)
            else:
                self.problems.append(f"line {line}: pip installs {target!r}, which no lock pins")
        if "-e" in flags or "--editable" in flags:
            self.problems.append(f"line {line}: an editable install cannot be reproduced")

    def project_files(self, root: Path) -> list[tuple[Path, str]]:
        """``(repository path, path relative to the project folder)`` of what the installed project is built from."""
        if self.project_dir is None:
            return []
        project = self.project_dir.rstrip("/")
        files: list[tuple[Path, str]] = []
        for copy in self.project_copies:
            for source, target in copy_targets(copy, root):
                if target == self.project_dir or target.startswith(project + "/"):
                    relative = target[len(project) + 1 :] if target != self.project_dir else "."
                    files.append((root / source, relative))
        return files


def parse_final_stage(text: str, root: Path) -> FinalStage:
    """Reads a Dockerfile's final stage.

    Args:
        text: The Dockerfile's content.
        root: The build context (the repository root), against which ``COPY`` sources resolve.

    Returns:
        The :class:`FinalStage`; ``base_image`` is ``""`` when there is no ``FROM``.
    """
    global_arguments: dict[str, str] = {}
    stage: FinalStage | None = None
    for line, instruction, arguments in instructions(text):
        if instruction == "ARG":
            _declare(arguments, global_arguments if stage is None else stage.arguments, global_arguments, stage)
        elif instruction == "FROM":
            words = [word for word in _substitute(arguments, global_arguments).split() if not word.startswith("--")]
            stage = FinalStage(base_image=words[0] if words else "")
        elif stage is not None:
            stage.apply(line, instruction, arguments, root)
    return stage if stage is not None else FinalStage()


def _declare(
    arguments: str, variables: dict[str, str], global_arguments: dict[str, str], stage: FinalStage | None
) -> None:
    """``ARG NAME[=default]``: a default is substituted and set; a bare name in a stage inherits the global one."""
    name, has_default, default = arguments.partition("=")
    name = name.strip()
    if has_default:
        variables[name] = _substitute(default.strip().strip('"'), variables)
    elif stage is not None:
        variables[name] = global_arguments.get(name, "")
