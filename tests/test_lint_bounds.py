"""Lint rules for retries, time bounds and scheduling, each seeded into a copy of the project's own manifests.

Every mistake here passes Argo's schema and ``validate.go`` yet does something else on a cluster than the
manifest says (issue: deployment fidelity, items 2-5 and 7). A clean copy lints clean; each test changes one
field and expects a finding naming the template and the field.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cxrcore.ops.lint import Finding, lint_paths
from cxrcore.ops.lint.bounds import RETRY_SCENARIOS
from cxrcore.ops.retry import Attempt, RetryStrategy

ROOT = Path(__file__).resolve().parents[1]
OLD_EXPRESSION = (
    'lastRetry.status == "Error" or (lastRetry.status == "Failed" and asInt(lastRetry.exitCode) == 75)'
)


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "argo", tmp_path / "argo")
    return tmp_path


def _documents(root: Path, name: str) -> list[dict[str, Any]]:
    # Through JSON: YAML aliases (&retry, *retry) load as one shared object; a seeded mistake must stay in one place.
    return json.loads(json.dumps(list(yaml.safe_load_all((root / "argo" / name).read_text()))))


def _edit(root: Path, name: str, change: Callable[[list[dict[str, Any]]], None]) -> None:
    documents = _documents(root, name)
    change(documents)
    (root / "argo" / name).write_text(yaml.safe_dump_all(documents, sort_keys=False))


def _template(documents: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(t for t in documents[0]["spec"]["templates"] if t["name"] == name)


def _index(root: Path, name: str) -> int:
    names = [t["name"] for t in _documents(root, "templates.yaml")[0]["spec"]["templates"]]
    return names.index(name)


def _findings(root: Path) -> list[Finding]:
    return lint_paths([root / "argo"], root=root)


def _assert_findings(root: Path, expected: list[tuple[str, str, tuple[str, ...]]]) -> None:
    findings = _findings(root)
    text = "\n".join(str(f) for f in findings)
    assert len(findings) == len(expected), text
    for (file, path, fragments), finding in zip(sorted(expected), sorted(findings, key=lambda f: (f.file, f.path))):
        assert (finding.file, finding.path) == (file, path), text
        for fragment in fragments:
            assert fragment in finding.message, str(finding)


def test_copy_of_our_manifests_is_clean(manifests: Path) -> None:
    assert _findings(manifests) == []


def test_max_duration_shorter_than_the_step(manifests: Path) -> None:
    _edit(manifests, "templates.yaml",
          lambda d: _template(d, "prepare")["retryStrategy"]["backoff"].update(maxDuration="30m"))
    index = _index(manifests, "prepare")
    _assert_findings(manifests, [(
        "argo/templates.yaml", f"spec.templates[{index}].retryStrategy.backoff.maxDuration",
        ("template 'prepare'", "maxDuration 30m", "ARGO_DEADLINE"),
    )])


def test_expression_that_misses_kills_and_evictions(manifests: Path) -> None:
    _edit(manifests, "templates.yaml",
          lambda d: _template(d, "gan-train")["retryStrategy"].update(expression=OLD_EXPRESSION))
    path = f"spec.templates[{_index(manifests, 'gan-train')}].retryStrategy.expression"
    findings = _findings(manifests)
    assert {f.path for f in findings} == {path}, "\n".join(map(str, findings))
    text = "\n".join(f.message for f in findings)
    for label in ("exit 137", "exit 143", "node-pressure eviction", "node shutdown"):
        assert f"does not retry a {label}" in text or label in text, text
    assert all("template 'gan-train'" in f.message for f in findings)


def test_expression_that_retries_bad_input(manifests: Path) -> None:
    _edit(manifests, "templates.yaml",
          lambda d: _template(d, "report")["retryStrategy"].update(expression="true"))
    messages = [f.message for f in _findings(manifests)]
    assert any("retries bad input (exit 1)" in m and "'report'" in m for m in messages), messages
    assert any("retries bad settings (exit 2)" in m for m in messages), messages


def test_expression_that_cannot_evaluate_an_eviction(manifests: Path) -> None:
    # Argo's exitCode is "-1" for an evicted pod; asInt of a non-number would make the retry node end in Error.
    _edit(manifests, "templates.yaml",
          lambda d: _template(d, "matrix")["retryStrategy"].update(
              expression='asInt(lastRetry.message) == 75 or lastRetry.status == "Error"'))
    messages = [f.message for f in _findings(manifests)]
    assert any("the expression fails on" in m and "'matrix'" in m for m in messages), messages


def test_timeout_beside_active_deadline_seconds(manifests: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        _template(documents, "report")["activeDeadlineSeconds"] = 3600  # report already has timeout: 1h

    _edit(manifests, "templates.yaml", change)
    _assert_findings(manifests, [(
        "argo/templates.yaml", f"spec.templates[{_index(manifests, 'report')}].activeDeadlineSeconds",
        ("template 'report'", "timeout replaces activeDeadlineSeconds"),
    )])


def test_timeout_on_a_template_queued_on_the_gpu_semaphore(manifests: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        template = _template(documents, "train-classifier")
        template.pop("activeDeadlineSeconds")
        template["timeout"] = "8h"

    _edit(manifests, "templates.yaml", change)
    _assert_findings(manifests, [(
        "argo/templates.yaml", f"spec.templates[{_index(manifests, 'train-classifier')}].timeout",
        ("template 'train-classifier'", "queued on its synchronization semaphore"),
    )])


def test_workflow_and_cron_workflow_without_a_deadline(manifests: Path) -> None:
    _edit(manifests, "paper.yaml", lambda d: d[0]["spec"].pop("activeDeadlineSeconds"))
    _edit(manifests, "retrain.yaml", lambda d: d[0]["spec"]["workflowSpec"].pop("activeDeadlineSeconds"))
    _assert_findings(manifests, [
        ("argo/paper.yaml", "spec.activeDeadlineSeconds", ("Workflow has no activeDeadlineSeconds",)),
        ("argo/retrain.yaml", "spec.workflowSpec.activeDeadlineSeconds", ("concurrencyPolicy Forbid",)),
    ])


def test_fixed_node_selector_on_a_cpu_step(manifests: Path) -> None:
    _edit(manifests, "templates.yaml", lambda d: _template(d, "matrix").update(nodeSelector={"cxr.io/pool": "cpu"}))
    _assert_findings(manifests, [(
        "argo/templates.yaml", f"spec.templates[{_index(manifests, 'matrix')}].nodeSelector",
        ("template 'matrix'", "cxr.io/pool=cpu", "Pending forever"),
    )])


def test_exit_handler_without_a_timeout(manifests: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        template = _template(documents, "record-outcome")
        template.pop("timeout")
        template["activeDeadlineSeconds"] = 600

    _edit(manifests, "templates.yaml", change)
    findings = _findings(manifests)
    assert {(f.file, f.path) for f in findings} == {
        ("argo/paper.yaml", "cxr-gan/record-outcome.timeout"),
        ("argo/retrain.yaml", "cxr-gan/record-outcome.timeout"),
    }, "\n".join(map(str, findings))
    assert all("exit handler" in f.message for f in findings)


def test_step_without_any_bound_or_retry(manifests: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        template = _template(documents, "promote")
        template.pop("activeDeadlineSeconds")
        template.pop("retryStrategy")

    _edit(manifests, "templates.yaml", change)
    messages = sorted(f.message for f in _findings(manifests))
    assert len(messages) == 2, messages
    assert "no retryStrategy" in messages[0] and "no time bound" in messages[1]


@pytest.mark.parametrize("template", ["prepare", "gan-train", "train-classifier", "record-outcome"])
def test_our_retry_strategy_decides_each_scenario(template: str) -> None:
    documents = _documents(ROOT, "templates.yaml")
    strategy = RetryStrategy.from_template(_template(documents, template))
    assert strategy is not None and strategy.limit and strategy.limit >= 1
    assert strategy.max_duration_seconds is None
    for scenario in RETRY_SCENARIOS:
        attempt = Attempt(scenario.status, scenario.exit_code, scenario.message, 0.0, 1.0)
        assert strategy.allows(attempt, 0) is scenario.retry, scenario.label
    oom = Attempt("Failed", 137, "main: OOMKilled (exit code 137)", 0.0, 1.0)
    assert strategy.allows(oom, 0) is False


def test_unreadable_bound_in_the_exit_handler_is_a_finding_not_a_crash(manifests: Path) -> None:
    _edit(manifests, "templates.yaml", lambda d: _template(d, "record-outcome").update(timeout="ten minutes"))
    _assert_findings(manifests, [(
        "argo/templates.yaml", f"spec.templates[{_index(manifests, 'record-outcome')}]",
        ("template 'record-outcome': not a duration", "'ten minutes'"),
    )])
