"""The local Argo runner on small hand-written manifests: DAG order, fan-out, outputs, failures, exit handler."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from cxrcore.config import MatrixSettings
from cxrcore.ops.runner import (
    LocalRunner,
    NodeResult,
    WorkflowError,
    evaluate_depends,
    load_workflow,
    resolve_arguments,
    substitute,
)

# A container that appends its name to a shared trace file and writes output parameters under /tmp/outputs.
_STEP = (
    "import json, os, pathlib, sys; "
    "name, trace, fail = sys.argv[1], sys.argv[2], sys.argv[3]; "
    "out = pathlib.Path('/tmp/outputs'); out.mkdir(parents=True, exist_ok=True); "
    "(out / 'echo').write_text(name); "
    "(out / 'items').write_text(json.dumps([{'n': 1}, {'n': 2}, {'n': 3}])); "
    "open(trace, 'a').write(name + chr(10)); "
    "print('stdout of', name); "
    "sys.stderr.write('log line of ' + name + chr(10)); "
    "sys.exit(int(fail))"
)


def _write(tmp_path: Path, workflow: str, templates: str | None = None) -> Path:
    folder = tmp_path / "argo"
    folder.mkdir()
    (folder / "wf.yaml").write_text(textwrap.dedent(workflow))
    if templates:
        (folder / "templates.yaml").write_text(textwrap.dedent(templates))
    return folder / "wf.yaml"


TEMPLATES = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  templates:
    - name: step
      inputs:
        parameters:
          - {name: name}
          - {name: trace}
          - {name: fail, value: "0"}
      outputs:
        parameters:
          - name: echo
            valueFrom: {path: /tmp/outputs/echo}
          - name: items
            valueFrom: {path: /tmp/outputs/items}
      container:
        image: python:3.11-slim
        command: [python, -c, "%s"]
        args: ["{{inputs.parameters.name}}", "{{inputs.parameters.trace}}", "{{inputs.parameters.fail}}"]
""" % _STEP.replace('"', '\\"')


def _workflow(tasks: str, extra_params: str = "", on_exit: str = "") -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{generateName: test-}}
spec:
  entrypoint: main
  {on_exit}
  arguments:
    parameters:
      - {{name: trace}}
      - {{name: fail-b, value: "0"}}
      {extra_params}
  templates:
    - name: main
      dag:
        failFast: false
        tasks:
{textwrap.indent(textwrap.dedent(tasks), " " * 10)}
    - name: exit-handler
      steps:
        - - name: record
            templateRef: {{name: lib, template: step}}
            arguments:
              parameters:
                - {{name: name, value: "exit-{{{{workflow.status}}}}"}}
                - {{name: trace, value: "{{{{workflow.parameters.trace}}}}"}}
"""


def _run(path: Path, tmp_path: Path, **overrides) -> tuple:
    workflow, templates = load_workflow(path)
    trace = tmp_path / "trace.txt"
    parameters = resolve_arguments(workflow, overrides={"trace": str(trace), **overrides})
    runner = LocalRunner(workflow, templates, parameters, work_dir=tmp_path / "work", parallelism=2, name="wf-1")
    result = runner.run()
    lines = trace.read_text().splitlines() if trace.exists() else []
    return result, lines


def test_dag_order_fan_out_and_outputs(tmp_path):
    tasks = """
    - name: a
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: a}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
    - name: b
      depends: a
      templateRef: {name: lib, template: step}
      arguments:
        parameters:
          - {name: name, value: "b-{{item.n}}-{{tasks.a.outputs.parameters.echo}}"}
          - {name: trace, value: "{{workflow.parameters.trace}}"}
      withParam: "{{tasks.a.outputs.parameters.items}}"
    - name: c
      dependencies: [b]
      templateRef: {name: lib, template: step}
      arguments:
        parameters:
          - {name: name, value: "c-{{item}}-{{workflow.name}}"}
          - {name: trace, value: "{{workflow.parameters.trace}}"}
      withItems: [x, y]
    """
    path = _write(tmp_path, _workflow(tasks, on_exit="onExit: exit-handler"), TEMPLATES)
    result, lines = _run(path, tmp_path)
    assert result.status == "Succeeded"
    assert lines[0] == "a"
    assert sorted(lines[1:4]) == ["b-1-a", "b-2-a", "b-3-a"]
    assert sorted(lines[4:6]) == ["c-x-wf-1", "c-y-wf-1"]
    assert lines[6] == "exit-Succeeded"
    # Fan-out outputs aggregate as a JSON list, as on Argo.
    assert json.loads(result.nodes["b"].parameters["echo"]) == ["b-1-a", "b-2-a", "b-3-a"]
    assert result.nodes["a"].result == "stdout of a"
    assert (Path(result.work_dir) / "steps").is_dir()


def test_failed_step_stops_dependants_and_reports_log_tail(tmp_path):
    tasks = """
    - name: a
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: a}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
    - name: b
      depends: a
      templateRef: {name: lib, template: step}
      arguments:
        parameters:
          - {name: name, value: b}
          - {name: trace, value: "{{workflow.parameters.trace}}"}
          - {name: fail, value: "{{workflow.parameters.fail-b}}"}
    - name: after-b
      depends: b
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: after-b}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
    - name: on-failure
      depends: b.Failed
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: cleanup}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
    """
    path = _write(tmp_path, _workflow(tasks, on_exit="onExit: exit-handler"), TEMPLATES)
    result, lines = _run(path, tmp_path, **{"fail-b": "3"})
    assert result.status == "Failed"
    assert "after-b" not in lines
    assert "cleanup" in lines
    assert lines[-1] == "exit-Failed"
    failed = result.nodes["b"]
    assert failed.status == "Failed" and failed.exit_code == 3
    assert "log line of b" in failed.message
    assert result.nodes["after-b"].status == "Omitted"
    assert result.failures and result.failures[0]["displayName"] == "b"


def test_when_skips(tmp_path):
    tasks = """
    - name: a
      when: "{{workflow.parameters.fail-b}} == 1"
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: a}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
    - name: b
      depends: a
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: b}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
    """
    path = _write(tmp_path, _workflow(tasks), TEMPLATES)
    result, lines = _run(path, tmp_path)
    assert result.nodes["a"].status == "Skipped"
    assert lines == ["b"]  # a bare dependency is satisfied by Skipped, as on Argo


def test_cycle_is_refused(tmp_path):
    tasks = """
    - name: a
      depends: b
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: a}, {name: trace, value: x}]}
    - name: b
      depends: a
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: b}, {name: trace, value: x}]}
    """
    path = _write(tmp_path, _workflow(tasks), TEMPLATES)
    with pytest.raises(WorkflowError, match="cannot progress"):
        _run(path, tmp_path)


def test_missing_template_and_unknown_input(tmp_path):
    tasks = """
    - name: a
      templateRef: {name: lib, template: nope}
    """
    path = _write(tmp_path, _workflow(tasks), TEMPLATES)
    with pytest.raises(WorkflowError, match="no template 'nope'"):
        _run(path, tmp_path)


def test_parameters_precedence_and_refusals():
    workflow = {"spec": {"arguments": {"parameters": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"},
                                                        {"name": "c"}]}}}
    values = resolve_arguments(workflow, profile={"parameters": {"a": "10", "b": "20"}}, overrides={"b": "200", "c": "3"})
    assert values == {"a": "10", "b": "200", "c": "3"}
    with pytest.raises(WorkflowError, match="does not declare"):
        resolve_arguments(workflow, overrides={"zzz": "1", "c": "1"})
    with pytest.raises(WorkflowError, match="without a value: c"):
        resolve_arguments(workflow)
    with pytest.raises(WorkflowError, match="-p source="):
        resolve_arguments(workflow, profile={"requires": ["source"]}, overrides={"c": "1"})


def test_substitute_and_depends_expressions():
    context = {"workflow.parameters.x": "1", "item": {"a": 1}}
    assert substitute(["{{workflow.parameters.x}}-{{item}}"], context) == ['1-{"a":1}']
    with pytest.raises(WorkflowError, match="unresolved"):
        substitute("{{nope}}", context)
    done = {
        "a": NodeResult("a", "t", "Succeeded"),
        "b": NodeResult("b", "t", "Failed"),
        "fan": NodeResult("fan", "t", "Failed", children=[NodeResult("f0", "t", "Succeeded"), NodeResult("f1", "t", "Failed")]),
    }
    assert evaluate_depends("a && b.Failed", done) is True
    assert evaluate_depends("a && b", done) is False
    assert evaluate_depends("(a || b) && !b.Succeeded", done) is True
    assert evaluate_depends("fan.AnySucceeded", done) is True
    assert evaluate_depends("fan.AllFailed", done) is False
    assert evaluate_depends("a && pending", done) is None


def test_real_paper_manifest_resolves_with_every_profile():
    root = Path(__file__).resolve().parents[1]
    workflow, templates = load_workflow(root / "argo" / "paper.yaml")
    assert "cxr-gan" in templates
    profiles = yaml.safe_load((root / "argo" / "profiles.yaml").read_text())
    for name, profile in profiles.items():
        overrides = {"source": "/data/chest_xray"} if profile.get("requires") else {}
        values = resolve_arguments(workflow, profile=profile, overrides=overrides)
        assert json.loads(values["models"]) and json.loads(values["seeds"]), name
        # What the matrix step checks first: a learning rate for every listed model (a per-model object or a number).
        MatrixSettings(models=values["models"], seeds=values["seeds"], learning_rate=values["clf-lr"])


def test_freed_slot_goes_to_the_first_declared_ready_step(tmp_path):
    """One slot: a completion's dependent, declared earlier, starts before steps that were already waiting.

    ``fan`` and ``late`` wait for the slot while ``first`` runs; when it ends, ``dependent`` becomes ready and,
    declared before them, must take the slot (a semaphore hands it to a thread already waiting). The runner's
    thread accounting is balanced at the end and no slot had to be forced out.
    """
    tasks = """
    - name: first
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: first}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
    - name: dependent
      depends: first
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: dependent}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
    - name: fan
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: "fan-{{item}}"}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
      withItems: [p, q]
    - name: late
      depends: first
      templateRef: {name: lib, template: step}
      arguments: {parameters: [{name: name, value: late}, {name: trace, value: "{{workflow.parameters.trace}}"}]}
    """
    path = _write(tmp_path, _workflow(tasks, on_exit="onExit: exit-handler"), TEMPLATES)
    workflow, templates = load_workflow(path)
    for attempt in range(3):
        trace = tmp_path / f"trace-{attempt}.txt"
        parameters = resolve_arguments(workflow, overrides={"trace": str(trace)})
        runner = LocalRunner(workflow, templates, parameters, work_dir=tmp_path / "work", parallelism=1,
                             name=f"order-{attempt}")
        result = runner.run()
        assert result.status == "Succeeded"
        assert trace.read_text().splitlines() == [
            "first", "dependent", "fan-p", "fan-q", "late", "exit-Succeeded"
        ], f"run {attempt}"
        slots = runner._steps.slots
        assert (slots.active, slots.free, slots.waiting, slots.forced_grants) == (0, 1, 0, 0)
        assert [priority for priority, _ in slots.grants] == [(0,), (1,), (2, 0), (2, 1), (3,), (0, 0)]
