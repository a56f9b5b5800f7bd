"""Properties of the deployment files that Argo's schema cannot check, read from the files themselves."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _documents(relative: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / relative).read_text()) if d]


def test_bucket_job_waits_for_a_secret_created_later() -> None:
    # A missing Secret keeps the pod in CreateContainerConfigError (not Failed): only a deadline ends the wait, so
    # it must leave the operator far more than the 15 minutes it used to.
    (job,) = [d for d in _documents("k8s/minio.yaml") if d["kind"] == "Job"]
    assert job["spec"].get("activeDeadlineSeconds", float("inf")) >= 86400
    pod = job["spec"]["template"]["spec"]
    assert pod.get("activeDeadlineSeconds", float("inf")) >= 86400
    references = [e["valueFrom"]["secretKeyRef"] for c in pod["containers"] for e in c.get("env", [])
                  if "secretKeyRef" in e.get("valueFrom", {})]
    assert references and not any(r.get("optional") for r in references)  # waits for the keys, never runs empty


def test_cpu_and_gpu_steps_schedule_anywhere_by_default() -> None:
    (library,) = _documents("argo/templates.yaml")
    for template in library["spec"]["templates"]:
        assert "nodeSelector" not in template, template["name"]
        inputs = {p["name"]: p.get("value") for p in template["inputs"]["parameters"]}
        assert inputs["node-selector"] == "{}", template["name"]
        assert template["podSpecPatch"] == '{"nodeSelector": {{inputs.parameters.node-selector}}}'
    for relative in ("argo/paper.yaml", "argo/retrain.yaml"):
        (workflow,) = _documents(relative)
        spec = workflow["spec"].get("workflowSpec", workflow["spec"])
        declared = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
        assert declared["cpu-node-selector"] == "{}" and declared["gpu-node-selector"] == "{}"


def test_gpu_steps_still_need_a_gpu() -> None:
    (library,) = _documents("argo/templates.yaml")
    gpu = [t for t in library["spec"]["templates"] if t.get("synchronization")]
    assert {t["name"] for t in gpu} == {"gan-train", "synthesize", "train-classifier", "promote"}
    for template in gpu:
        assert template["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert "timeout" not in template and template["activeDeadlineSeconds"] > 0
