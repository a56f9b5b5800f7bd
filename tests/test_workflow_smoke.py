"""The README's main command end to end: ``cxr run argo/paper.yaml --profile smoke``.

Runs the real manifest through the local runner, every step as its own process (prepare, both GANs, both
syntheses, custom CNN + VGG16 baseline and augmented, report, exit handler), on the S3 server with
``--executor image-env``: every step runs in a clean virtualenv holding exactly what the Dockerfile of its
template's image installs (its lock, the TensorFlow CPU wheel of the base image's version, the project
``--no-deps``), so a module missing from one image's lock fails here, naming the image and the module. Then it
re-runs the same run id and checks that every job found its marker. The same on a ``file://`` store in this
environment is marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cxrcore.layout import report_prefix, run_prefix
from cxrcore.storage import open_store

ROOT = Path(__file__).resolve().parents[1]
CXR = [sys.executable, "-m", "cxrcore.cli"]


def _cxr_run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    command = [*CXR, "run", str(ROOT / "argo" / "paper.yaml"), "--profile", "smoke", *args]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


def _check_run(store, run_id: str) -> dict:
    report = store.require_committed(report_prefix(run_id))
    assert {"index.html", "report.md", "tables.csv", "metrics.json"} <= set(report.outputs)
    page = store.get_bytes(f"{report_prefix(run_id)}/index.html").decode()
    for section in ("Table 2", "Table 3", "McNemar", "Paper vs ours", "SYNTHETIC DEMO DATA", "Confusion matrices",
                    "Explanations (Grad-CAM)"):
        assert section in page, section
    for condition in ("baseline", "augmented"):
        for model in ("custom_cnn", "vgg16"):
            classifier = store.require_committed(f"{run_prefix(run_id)}/classifiers/{condition}/{model}/seed-0")
            assert {"gradcam.png", "gradcam.json"} <= set(classifier.outputs)  # clf-explain defaults to 2
            assert f"figures/gradcam_{condition}_{model}_seed-0.png" in report.outputs
    for class_name in ("NORMAL", "PNEUMONIA"):
        store.require_committed(f"{run_prefix(run_id)}/gan/{class_name}")
        store.require_committed(f"{run_prefix(run_id)}/synthetic/{class_name}")
    outcome = store.get_json(f"{run_prefix(run_id)}/workflow.json")
    assert outcome["status"] == "Succeeded" and outcome["failures"] == []
    return {obj.key: obj.size for obj in store.list(run_prefix(run_id)) if not obj.key.endswith("workflow.json")}


@pytest.mark.slow  # the same run in the images' environments (below) is in the default suite
@pytest.mark.timeout(900)
def test_smoke_workflow_on_a_file_store_and_rerun_is_a_noop(tmp_path):
    store_uri = f"file://{tmp_path / 'store'}"
    first = _cxr_run(["--store", store_uri, "--name", "smoke-run", "--work-dir", str(tmp_path / "runs")], tmp_path)
    assert first.returncode == 0, first.stderr[-6000:]
    report_line = first.stdout.strip().splitlines()[-1]
    assert report_line == f"report: {tmp_path / 'store' / 'runs' / 'smoke-run' / 'report' / 'index.html'}"
    store = open_store(store_uri)
    objects = _check_run(store, "smoke-run")

    again = _cxr_run(["--store", store_uri, "--name", "smoke-run", "--work-dir", str(tmp_path / "runs2")], tmp_path)
    assert again.returncode == 0, again.stderr[-6000:]
    assert _check_run(store, "smoke-run") == objects  # nothing rewritten
    statuses = []
    for stdout in (tmp_path / "runs2" / "smoke-run" / "steps").glob("*/stdout.txt"):
        text = stdout.read_text().strip()
        if text.startswith("{"):
            statuses.append(json.loads(text).get("status"))
    # prepare, 2 GANs, 2 syntheses, 4 classifiers and the report all found their markers.
    assert statuses.count("unchanged") == 10 and "created" not in statuses, statuses


@pytest.mark.timeout(1500)
def test_smoke_workflow_through_s3_in_the_images_environments(tmp_path, s3_server, s3_bucket, s3_options):
    store_uri = f"s3://{s3_bucket}/study"
    result = _cxr_run(
        [
            "--store", store_uri, "--name", "smoke-s3", "--work-dir", str(tmp_path / "runs"),
            "-p", f"s3-endpoint={s3_server.endpoint_url}", "-p", "s3-addressing-style=path",
            "--executor", "image-env",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    # Every step ran from its image's environment, never from this one.
    commands = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "smoke-s3" / "steps").glob("*/command.json")]
    assert len(commands) == 12  # prepare, matrix, 2 GANs, 2 syntheses, 4 classifiers, report, exit handler
    for command in commands:
        executable = Path(command["argv"][0])
        assert command["executor"] == "image-env" and not executable.is_relative_to(sys.prefix), command
        assert (executable.parent.parent / "pyvenv.cfg").is_file(), command
    # The Prometheus metrics the manifests declare, as the controller would export them.
    metrics = (tmp_path / "runs" / "smoke-s3" / "metrics.prom").read_text().splitlines()
    assert 'argo_workflows_cxr_workflow_runs_total{workflow="paper",status="Succeeded"} 1' in metrics
    for template in ("prepare", "gan-train", "synthesize", "train-classifier", "report", "record-outcome"):
        assert any(line.startswith("argo_workflows_cxr_step_duration_seconds_count") and f'template="{template}"'
                   in line and 'status="Succeeded"' in line for line in metrics), template
    accuracies = [line for line in metrics if line.startswith("argo_workflows_cxr_classifier_test_accuracy{")]
    assert len(accuracies) == 4  # custom CNN and VGG16, baseline and augmented
    assert all(0.0 <= float(line.rsplit(" ", 1)[1]) <= 1.0 for line in accuracies)
    assert result.stdout.strip().endswith(f"{store_uri}/runs/smoke-s3/report/index.html")
    store = open_store(store_uri, s3=s3_options)
    objects = _check_run(store, "smoke-s3")

    # A re-run of the same run id finds every marker and rewrites nothing (Argo retries and re-submits are safe).
    again = _cxr_run(
        [
            "--store", store_uri, "--name", "smoke-s3", "--work-dir", str(tmp_path / "runs2"),
            "-p", f"s3-endpoint={s3_server.endpoint_url}", "-p", "s3-addressing-style=path",
            "--executor", "image-env",
        ],
        tmp_path,
    )
    assert again.returncode == 0, again.stderr[-6000:]
    assert _check_run(store, "smoke-s3") == objects
    statuses = []
    for stdout in (tmp_path / "runs2" / "smoke-s3" / "steps").glob("*/stdout.txt"):
        text = stdout.read_text().strip()
        if text.startswith("{"):
            statuses.append(json.loads(text).get("status"))
    # prepare, 2 GANs, 2 syntheses, 4 classifiers and the report all found their markers.
    assert statuses.count("unchanged") == 10 and "created" not in statuses, statuses


def test_failed_step_fails_the_run_with_its_log_tail(tmp_path):
    """A bad data source: prepare exits 1, nothing downstream runs, the exit handler records the failure."""
    store_uri = f"file://{tmp_path / 'store'}"
    result = _cxr_run(
        ["--store", store_uri, "--name", "bad-run", "--work-dir", str(tmp_path / "runs"),
         "-p", f"source={tmp_path / 'no-such-folder'}"],
        tmp_path,
    )
    assert result.returncode == 1
    assert "step prepare failed" in result.stderr and "no-such-folder" in result.stderr
    outcome = open_store(store_uri).get_json("runs/bad-run/workflow.json")
    assert outcome["status"] == "Failed" and outcome["failures"][0]["displayName"] == "prepare"
