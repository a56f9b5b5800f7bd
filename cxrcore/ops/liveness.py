"""Which steps of a local run are still alive, from pid files in the run's step folders.

The local runner starts every step in its own process group. When the runner is killed with SIGKILL (it can
forward SIGTERM and SIGINT, but not that), its steps keep running and keep writing to the store. A resumed run
(``cxr run --name`` with the same id) must not race them: it reads these records and refuses while one is alive.

A record holds the pid and the process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22),
so a recycled pid is not mistaken for the step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["PID_FILE", "alive_steps", "clear", "record"]

PID_FILE = "pid.json"


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, start time in clock ticks since boot)`` of a process, or ``None`` (gone, or no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _start_ticks(pid: int) -> int | None:
    found = _stat(pid)
    return None if found is None else found[1]


def record(step_dir: Path, pid: int) -> None:
    """Writes the step's pid record (called right after the process started)."""
    payload = {"pid": pid, "start_ticks": _start_ticks(pid)}
    temporary = step_dir / f".{PID_FILE}.tmp"
    temporary.write_text(json.dumps(payload))
    os.replace(temporary, step_dir / PID_FILE)


def clear(step_dir: Path) -> None:
    """Removes the record once the step's process has been reaped."""
    (step_dir / PID_FILE).unlink(missing_ok=True)


def _alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    current = _stat(pid)
    if current is None:
        return not Path("/proc").is_dir()  # no /proc: trust os.kill
    state, ticks = current
    if state in ("Z", "X"):
        return False  # exited; only its parent (gone with the killed runner) has not reaped it
    return start_ticks is None or ticks == start_ticks


def alive_steps(work_dir: Path) -> list[tuple[str, int]]:
    """``[(step folder name, pid)]`` of the run's steps whose process is still running."""
    found = []
    for path in sorted(work_dir.glob(f"steps/*/{PID_FILE}")):
        try:
            payload = json.loads(path.read_text())
            pid, ticks = int(payload["pid"]), payload.get("start_ticks")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(pid, ticks):
            found.append((path.parent.name, pid))
    return found
