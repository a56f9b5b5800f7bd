"""Prometheus metrics through Argo's ``metrics`` field: what the manifests declare, what ``cxr run`` emits, and
the lint rules that catch what Argo's own validation lets through."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from cxrcore.ops.argo_metrics import MetricsRecorder, template_metrics, workflow_metrics
from cxrcore.ops.lint import lint_paths
from cxrcore.ops.runner import LocalRunner, load_workflow, resolve_arguments

ROOT = Path(__file__).resolve().parents[1]


def test_recorder_counts_gauges_and_histograms():
    recorder = MetricsRecorder()
    metrics = {
        "prometheus": [
            {"name": "runs_total", "help": "runs", "labels": [{"key": "status", "value": "{{status}}"}],
             "counter": {"value": "1"}},
            {"name": "accuracy", "help": "acc", "when": "{{status}} == Succeeded",
             "labels": [{"key": "model", "value": "{{inputs.parameters.model}}"}],
             "gauge": {"value": "{{outputs.parameters.accuracy}}", "realtime": False}},
            {"name": "seconds", "help": "time", "labels": [],
             "histogram": {"value": "{{duration}}", "buckets": [1, 10]}},
        ]
    }
    base = {"inputs.parameters.model": "vgg16"}
    recorder.observe(metrics, {**base, "status": "Succeeded", "outputs.parameters.accuracy": "0.9", "duration": "5"})
    recorder.observe(metrics, {**base, "status": "Succeeded", "outputs.parameters.accuracy": "0.8", "duration": "0.5"})
    recorder.observe(metrics, {**base, "status": "Failed", "outputs.parameters.accuracy": "", "duration": "50"})
    assert recorder.errors == []
    text = recorder.text().splitlines()
    assert 'argo_workflows_runs_total{status="Succeeded"} 2' in text
    assert 'argo_workflows_runs_total{status="Failed"} 1' in text
    assert 'argo_workflows_accuracy{model="vgg16"} 0.8' in text  # last value; the failed run is skipped by `when`
    assert 'argo_workflows_seconds_bucket{le="1"} 1' in text and 'argo_workflows_seconds_bucket{le="10"} 2' in text
    assert 'argo_workflows_seconds_bucket{le="+Inf"} 3' in text and "argo_workflows_seconds_count 3" in text
    assert "argo_workflows_seconds_sum 55.5" in text
    assert "# TYPE argo_workflows_seconds histogram" in text


def test_recorder_reports_a_value_that_is_not_a_number():
    recorder = MetricsRecorder()
    recorder.observe({"prometheus": [{"name": "x", "help": "x", "gauge": {"value": "{{outputs.parameters.a}}"}}]},
                     {"outputs.parameters.a": "n/a"})
    assert recorder.errors and "metric 'x'" in recorder.errors[0]
    assert recorder.text() == ""


def test_manifests_declare_the_documented_metrics():
    templates = {t["name"]: t for t in yaml.safe_load((ROOT / "argo" / "templates.yaml").read_text())["spec"]["templates"]}
    for name, template in templates.items():
        assert template["metrics"] == template_metrics(name), name
        assert template["metrics"]["prometheus"][0]["name"] == "cxr_step_duration_seconds"
    outputs = {p["name"] for p in templates["train-classifier"]["outputs"]["parameters"]}
    assert {"accuracy", "auc"} <= outputs
    assert yaml.safe_load((ROOT / "argo" / "paper.yaml").read_text())["spec"]["metrics"] == workflow_metrics("paper")
    retrain = yaml.safe_load((ROOT / "argo" / "retrain.yaml").read_text())["spec"]["workflowSpec"]
    assert retrain["metrics"] == workflow_metrics("retrain")


_WORKFLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: metrics-}
spec:
  entrypoint: main
  metrics:
    prometheus:
      - name: wf_runs_total
        help: runs
        labels: [{key: status, value: "{{workflow.status}}"}]
        counter: {value: "1"}
  arguments:
    parameters:
      - {name: store, value: ""}
  templates:
    - name: main
      dag:
        tasks:
          - {name: good, template: step, arguments: {parameters: [{name: code, value: "0"}, {name: model, value: a}]}}
          - {name: bad, template: step, arguments: {parameters: [{name: code, value: "1"}, {name: model, value: b}]}}
    - name: step
      inputs:
        parameters: [{name: code}, {name: model}]
      outputs:
        parameters:
          - name: accuracy
            valueFrom: {path: /tmp/outputs/accuracy, default: "NaN"}
      metrics:
        prometheus:
          - name: step_seconds
            help: step time
            labels: [{key: status, value: "{{status}}"}]
            histogram: {value: "{{duration}}", buckets: [60]}
          - name: test_accuracy
            help: accuracy
            when: "{{status}} == Succeeded"
            labels: [{key: model, value: "{{inputs.parameters.model}}"}]
            gauge: {value: "{{outputs.parameters.accuracy}}", realtime: false}
      container:
        image: python:3.11-slim
        command: [python, -c]
        args:
          - "import pathlib, sys; p = pathlib.Path('/tmp/outputs'); p.mkdir(); (p / 'accuracy').write_text('0.75'); sys.exit(int(sys.argv[1]))"
          - "{{inputs.parameters.code}}"
"""


@pytest.mark.timeout(120)
def test_local_run_emits_template_and_workflow_metrics(tmp_path):
    path = tmp_path / "argo" / "wf.yaml"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(_WORKFLOW))
    workflow, templates = load_workflow(path)
    runner = LocalRunner(workflow, templates, resolve_arguments(workflow), work_dir=tmp_path / "runs", name="m")
    result = runner.run()
    assert result.status == "Failed"
    text = (tmp_path / "runs" / "m" / "metrics.prom").read_text().splitlines()
    assert 'argo_workflows_test_accuracy{model="a"} 0.75' in text
    assert not any('model="b"' in line for line in text)  # failed: `when` is false
    assert 'argo_workflows_step_seconds_count{status="Succeeded"} 1' in text
    assert 'argo_workflows_step_seconds_count{status="Failed"} 1' in text
    assert 'argo_workflows_wf_runs_total{status="Failed"} 1' in text
    assert runner.metrics.errors == []


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "argo", tmp_path / "argo")
    return tmp_path


def _edit_classifier_metric(root: Path, change) -> None:
    path = root / "argo" / "templates.yaml"
    document = json.loads(json.dumps(yaml.safe_load(path.read_text())))  # no shared YAML aliases
    template = next(t for t in document["spec"]["templates"] if t["name"] == "train-classifier")
    change(template["metrics"]["prometheus"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda m: m[1]["gauge"].update(value="{{outputs.parameters.acuracy}}"),
         "{{outputs.parameters.acuracy}} names a parameter the template does not declare"),
        (lambda m: m[1].update(name="cxr-classifier-accuracy"), "may only hold letters, digits and '_'"),
        (lambda m: m[1].pop("help"), "needs a help text"),
        (lambda m: m[1]["labels"].append({"key": "status", "value": "{{workflow.status}}"}),
         "{{workflow.status}} is not in a template metric's scope"),
        (lambda m: m[0].update(help="something else"), "declared differently"),
        (lambda m: m[1]["gauge"].update(realtime=True), "realtime gauge"),
    ],
)
def test_lint_catches_metric_mistakes(manifests, change, fragment):
    assert lint_paths([manifests / "argo"], root=manifests) == []
    _edit_classifier_metric(manifests, change)
    findings = lint_paths([manifests / "argo"], root=manifests)
    assert findings and any(fragment in f.message and "train-classifier" in f.message for f in findings), findings
