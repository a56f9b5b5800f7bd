"""The local runner follows a template's retryStrategy and time bounds as the Argo controller does.

Each step here is a tiny Python program that exits with the next code of a list (one per attempt), sleeps, or
kills itself; the templates use the project's own retry expression (read from argo/templates.yaml) with a short
backoff, so these tests fail if the manifest and the runner stop agreeing on what a cluster retries.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from cxrcore.ops.retry import DEADLINE_MESSAGE, STEP_DEADLINE_MESSAGE
from cxrcore.ops.runner import LocalRunner, load_workflow, resolve_arguments

ROOT = Path(__file__).resolve().parents[1]
# argv: counter file, JSON list of per-attempt actions (an exit code, "kill" = SIGKILL itself, "sleep" = 30 s).
_PROGRAM = (
    "import json, os, pathlib, signal, sys, time; "
    "counter = pathlib.Path(sys.argv[1]); n = int(counter.read_text()) if counter.exists() else 0; "
    "counter.write_text(str(n + 1)); actions = json.loads(sys.argv[2]); action = actions[min(n, len(actions) - 1)]; "
    "sys.stderr.write(f'attempt {n + 1}: {action}' + chr(10)); sys.stderr.flush(); "
    "os.kill(os.getpid(), signal.SIGKILL) if action == 'kill' else None; "
    "time.sleep(30) if action == 'sleep' else None; "
    "pathlib.Path('/tmp/outputs').mkdir(parents=True, exist_ok=True); "
    "pathlib.Path('/tmp/outputs/done').write_text('yes'); "
    "sys.exit(int(action) if action != 'sleep' else 0)"
)


def _project_expression() -> str:
    templates = yaml.safe_load((ROOT / "argo" / "templates.yaml").read_text())
    prepare = next(t for t in templates["spec"]["templates"] if t["name"] == "prepare")
    return prepare["retryStrategy"]["expression"]


def _manifest(tmp_path: Path, *, retry: dict | None, bounds: dict, spec_extra: str = "", parallel: bool = False) -> Path:
    template = {
        "name": "step",
        "inputs": {"parameters": [{"name": "counter"}, {"name": "actions"}]},
        "outputs": {"parameters": [{"name": "done", "valueFrom": {"path": "/tmp/outputs/done", "default": "no"}}]},
        **bounds,
        "container": {
            "image": "python:3.11-slim",
            "command": ["python", "-c", _PROGRAM],
            "args": ["{{inputs.parameters.counter}}", "{{inputs.parameters.actions}}"],
        },
    }
    if retry is not None:
        template["retryStrategy"] = retry
    second = """
          - name: b
            template: step
            arguments: {parameters: [{name: counter, value: "{{workflow.parameters.dir}}/b"}, {name: actions, value: '["sleep"]'}]}
""" if parallel else ""
    text = f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{generateName: retry-}}
spec:
  entrypoint: main
{textwrap.indent(textwrap.dedent(spec_extra), "  ")}
  arguments:
    parameters:
      - {{name: dir}}
      - {{name: actions}}
  templates:
    - name: main
      dag:
        tasks:
          - name: a
            template: step
            arguments:
              parameters:
                - {{name: counter, value: "{{{{workflow.parameters.dir}}}}/a"}}
                - {{name: actions, value: "{{{{workflow.parameters.actions}}}}"}}
{second}
    - {json.dumps(template)}
    - name: record
      steps:
        - - name: write
            template: step
            arguments:
              parameters:
                - {{name: counter, value: "{{{{workflow.parameters.dir}}}}/exit-{{{{workflow.status}}}}"}}
                - {{name: actions, value: '[0]'}}
"""
    path = tmp_path / "argo" / "wf.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _run(path: Path, tmp_path: Path, actions: list, parallelism: int = 2):
    workflow, templates = load_workflow(path)
    parameters = resolve_arguments(workflow, overrides={"dir": str(tmp_path), "actions": json.dumps(actions)})
    runner = LocalRunner(workflow, templates, parameters, work_dir=tmp_path / "work", parallelism=parallelism,
                         name="wf", termination_grace_seconds=2.0)
    started = time.monotonic()
    result = runner.run()
    return result, time.monotonic() - started


def _retry(**overrides) -> dict:
    return {"limit": 4, "retryPolicy": "Always", "expression": _project_expression(),
            "backoff": {"duration": "0", "factor": "1"}, **overrides}


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("actions", "status", "attempts", "exit_code"),
    [
        ([75, "kill", 143, 0], "Succeeded", 4, 0),  # transient store failure, SIGKILL, SIGTERM: all retried
        ([137, 1], "Failed", 2, 1),  # bad input after a kill: not retried
        ([2], "Failed", 1, 2),  # bad settings: never retried
        ([75], "Failed", 5, 75),  # limit 4 = 5 attempts
    ],
)
def test_project_retry_expression_decides_each_attempt(tmp_path, actions, status, attempts, exit_code):
    path = _manifest(tmp_path, retry=_retry(), bounds={"timeout": "2m"})
    result, _ = _run(path, tmp_path, actions)
    node = result.nodes["a"]
    assert (node.status, len(node.attempts), node.exit_code) == (status, attempts, exit_code), node.message
    assert int((tmp_path / "a").read_text()) == attempts
    if status == "Succeeded":
        assert node.parameters["done"] == "yes"
    else:
        assert f"exit code {exit_code}" in node.message


@pytest.mark.timeout(120)
def test_backoff_waits_grow_by_factor(tmp_path):
    path = _manifest(tmp_path, retry=_retry(limit=2, backoff={"duration": "1s", "factor": "2"}), bounds={"timeout": "1m"})
    result, seconds = _run(path, tmp_path, [75])
    node = result.nodes["a"]
    assert len(node.attempts) == 3 and node.status == "Failed"
    gaps = [b["started"] - a["finished"] for a, b in zip(node.attempts, node.attempts[1:])]
    assert gaps[0] >= 0.95 and gaps[1] >= 1.95, gaps
    assert "No more retries left" in node.message


@pytest.mark.timeout(120)
def test_max_duration_stops_retrying(tmp_path):
    retry = _retry(limit=10, backoff={"duration": "1s", "factor": "1", "maxDuration": "2500ms"})
    path = _manifest(tmp_path, retry=retry, bounds={"timeout": "1m"})
    result, _ = _run(path, tmp_path, [75])
    node = result.nodes["a"]
    assert node.status == "Failed" and 2 <= len(node.attempts) <= 3, node.attempts
    assert "max duration" in node.message


@pytest.mark.timeout(120)
def test_active_deadline_kills_the_step_and_is_not_retried(tmp_path):
    path = _manifest(tmp_path, retry=_retry(), bounds={"activeDeadlineSeconds": 1})
    result, seconds = _run(path, tmp_path, ["sleep"])
    node = result.nodes["a"]
    assert node.status == "Failed" and node.exit_code == 143, node.message
    assert DEADLINE_MESSAGE in node.message and len(node.attempts) == 1
    assert seconds < 20


@pytest.mark.timeout(120)
def test_timeout_replaces_active_deadline_seconds(tmp_path):
    path = _manifest(tmp_path, retry=None, bounds={"timeout": "1s", "activeDeadlineSeconds": 600})
    result, seconds = _run(path, tmp_path, ["sleep"])
    node = result.nodes["a"]
    assert node.status == "Failed" and DEADLINE_MESSAGE in node.message
    assert seconds < 20


@pytest.mark.timeout(120)
def test_timeout_counts_time_waiting_for_a_slot(tmp_path):
    # One slot, two sleeping steps: the first runs into its own timeout; the other waits for the slot past its
    # timeout and fails "timeout" without ever starting a process.
    # On a loaded machine the slot can free up in the same instant the waiting step's timeout expires: it is then
    # started and killed at once by the same deadline. Either way its 2 s counted from when it began to wait.
    path = _manifest(tmp_path, retry=None, bounds={"timeout": "2s"}, parallel=True)
    result, _ = _run(path, tmp_path, ["sleep"], parallelism=1)
    nodes = [result.nodes["a"], result.nodes["b"]]
    ran = [n for n in nodes if (tmp_path / n.name).exists()]
    waited = [n for n in nodes if not (tmp_path / n.name).exists()]  # never ran its command
    assert len(ran) == 1 and len(waited) == 1, [n.message for n in nodes]
    assert DEADLINE_MESSAGE in ran[0].message
    assert waited[0].status == "Failed"
    if not waited[0].message.startswith("timeout"):  # started in the last instant, stopped by the same deadline
        assert DEADLINE_MESSAGE in waited[0].message
        first_start = min(attempt["started"] for node in nodes for attempt in node.attempts)
        assert waited[0].attempts[-1]["finished"] - first_start < 3.5  # not a fresh 2 s after the slot freed


@pytest.mark.timeout(120)
def test_workflow_deadline_stops_steps_and_the_exit_handler_still_runs(tmp_path):
    path = _manifest(tmp_path, retry=_retry(), bounds={"activeDeadlineSeconds": 600},
                     spec_extra="activeDeadlineSeconds: 2\nonExit: record")
    result, seconds = _run(path, tmp_path, ["sleep"])
    node = result.nodes["a"]
    assert result.status == "Failed"
    assert node.status == "Failed" and STEP_DEADLINE_MESSAGE in node.message and len(node.attempts) == 1
    assert (tmp_path / "exit-Failed").exists()  # the exit handler ran, with the workflow's status
    assert seconds < 20
