"""A killed ``cxr run`` leaves no step behind, and a resume never races a step that is still alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The step records its pid, sleeps on its first attempt (a long job) and succeeds at once on later ones.
_STEP = (
    "import os, pathlib, sys, time; d = pathlib.Path(sys.argv[1]); n = len(list(d.glob('attempt-*'))); "
    "(d / f'attempt-{n}').write_text(str(os.getpid())); time.sleep(120 if n == 0 else 0)"
)
_WORKFLOW = f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{generateName: kill-}}
spec:
  entrypoint: main
  activeDeadlineSeconds: 600
  arguments:
    parameters:
      - {{name: dir}}
      - {{name: store, value: ""}}
  templates:
    - name: main
      dag:
        tasks:
          - {{name: long, template: step}}
    - name: step
      activeDeadlineSeconds: 300
      container:
        image: python:3.11-slim
        command: [python, -c, {_STEP!r}]
        args: ["{{{{workflow.parameters.dir}}}}"]
"""


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    manifest = tmp_path / "argo" / "wf.yaml"
    manifest.parent.mkdir(exist_ok=True)
    manifest.write_text(textwrap.dedent(_WORKFLOW))
    command = [sys.executable, "-m", "cxrcore.cli", "run", str(manifest), "--name", "kill-run",
               "--work-dir", str(tmp_path / "runs"), "--store", f"file://{tmp_path / 'store'}",
               "-p", f"dir={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(tmp_path: Path, attempt: int = 0) -> int:
    path = tmp_path / f"attempt-{attempt}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError("the step never started")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.timeout(120)
def test_sigterm_to_the_runner_stops_its_steps(tmp_path):
    runner = _start(tmp_path)
    step = _wait_for_step(tmp_path)
    runner.send_signal(signal.SIGTERM)
    _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 1, stderr[-3000:]
    assert _gone_within(step, 15), "the step outlived the runner"
    assert not list((tmp_path / "runs" / "kill-run" / "steps").glob("*/pid.json"))
    assert not (tmp_path / "attempt-1").exists()  # terminated, not retried


@pytest.mark.timeout(120)
def test_resume_refuses_while_a_step_of_a_killed_runner_is_alive(tmp_path):
    runner = _start(tmp_path)
    step = _wait_for_step(tmp_path)
    runner.kill()  # SIGKILL: nothing can be forwarded; the step's own process group lives on
    runner.communicate(timeout=30)
    try:
        assert _alive(step)
        again = _start(tmp_path)
        _, stderr = again.communicate(timeout=60)
        assert again.returncode == 1
        assert "still has live steps" in stderr and str(step) in stderr
        assert not (tmp_path / "attempt-1").exists()  # nothing ran beside the live step
    finally:
        os.killpg(step, signal.SIGKILL)
    assert _gone_within(step, 15)
    resumed = _start(tmp_path)
    _, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, stderr[-3000:]
    assert (tmp_path / "attempt-1").exists()
