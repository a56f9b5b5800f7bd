"""Properties of the deployment files that Argo's schema cannot check, read from the files themselves."""

from __future__ import annotations

import re

import json
from pathlib import Path

import pytest
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


def _secret_references(pod_spec: dict) -> set[str]:
    return {e["valueFrom"]["secretKeyRef"]["name"] for c in pod_spec.get("containers", []) for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}


def test_minio_root_credentials_stay_with_minio() -> None:
    # Job pods and Argo's artifact repository read the jobs' bucket-scoped user; only MinIO and the bucket Job
    # hold the root user.
    documents = _documents("k8s/minio.yaml")
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    (job,) = [d for d in documents if d["kind"] == "Job"]
    assert _secret_references(deployment["spec"]["template"]["spec"]) == {"cxr-minio-root"}
    assert _secret_references(job["spec"]["template"]["spec"]) == {"cxr-minio-root", "cxr-s3-credentials"}
    for relative in ("argo/templates.yaml", "argo/paper.yaml", "argo/retrain.yaml", "k8s/artifact-repositories.yaml"):
        text = (ROOT / relative).read_text()
        assert "cxr-minio-root" not in text and "MINIO_ROOT" not in text, relative
    (artifacts,) = _documents("k8s/artifact-repositories.yaml")
    repository = yaml.safe_load(artifacts["data"]["cxr-minio"])["s3"]
    assert repository["accessKeySecret"]["name"] == repository["secretKeySecret"]["name"] == "cxr-s3-credentials"
    examples = {d["metadata"]["name"]: d for d in _documents("k8s/secret.example.yaml")}
    assert set(examples["cxr-minio-root"]["stringData"]) == {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
    assert set(examples["cxr-s3-credentials"]["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_bucket_job_creates_a_bucket_scoped_user_idempotently() -> None:
    (job,) = [d for d in _documents("k8s/minio.yaml") if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(":RELEASE.2025-04-16T18-13-26Z")  # the mc syntax below is this release's
    script = container["args"][0]
    for command in (
        "mc mb --ignore-existing cxr/cxr",
        'mc admin user add cxr "$JOBS_ACCESS_KEY" "$JOBS_SECRET_KEY"',
        "mc admin policy create cxr cxr-jobs /tmp/cxr-jobs-policy.json",
        'mc admin policy attach cxr cxr-jobs --user "$JOBS_ACCESS_KEY"',
        "XMinioPolicyAlreadyAttached",  # a re-run finds the policy attached: accepted
    ):
        assert command in script, command
    policy = json.loads(script.split("<<'POLICY'\n", 1)[1].split("\nPOLICY\n", 1)[0])
    resources = {resource for statement in policy["Statement"] for resource in statement["Resource"]}
    assert resources == {"arn:aws:s3:::cxr", "arn:aws:s3:::cxr/*"}
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert all(action.startswith("s3:") and "*" not in action for action in actions)
    assert not any(action.startswith(("s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucket")) for action in actions)


def test_network_policies_are_applied_and_cover_minio_and_job_egress() -> None:
    (kustomization,) = _documents("k8s/kustomization.yaml")
    assert "networkpolicy.yaml" in kustomization["resources"]
    policies = {d["metadata"]["name"]: d["spec"] for d in _documents("k8s/networkpolicy.yaml")}
    deny = policies["default-deny-ingress"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    minio = policies["minio-api"]
    assert minio["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "minio"
    (rule,) = minio["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9000}]
    assert {"podSelector": {}} in rule["from"]
    egress = policies["workflow-pod-egress"]
    assert egress["podSelector"]["matchExpressions"] == [{"key": "workflows.argoproj.io/workflow", "operator": "Exists"}]
    ports = {(port["protocol"], port["port"]) for rule in egress["egress"] for port in rule["ports"]}
    assert {("UDP", 53), ("TCP", 53), ("TCP", 9000), ("TCP", 443)} <= ports


def test_artifact_repository_documents_tls() -> None:
    text = (ROOT / "k8s/artifact-repositories.yaml").read_text()
    assert "insecure: false" in text and "CA" in text


def test_workflows_set_a_seccomp_profile_for_their_pods() -> None:
    # templateRef'd templates run with the calling workflow's pod securityContext, not the WorkflowTemplate's.
    for relative in ("argo/paper.yaml", "argo/retrain.yaml", "argo/templates.yaml"):
        (workflow,) = _documents(relative)
        spec = workflow["spec"].get("workflowSpec", workflow["spec"])
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, relative


@pytest.mark.parametrize("image", ["prepare", "report", "gan-train", "synthesize", "classifier-train"])
def test_dockerfile_base_image_is_tagged_and_pinned_by_digest_or_says_how(image: str) -> None:
    lines = (ROOT / "docker" / image / "Dockerfile").read_text().splitlines()
    (base,) = [line.split()[1] for line in lines if line.startswith("FROM ")]
    tag, _, digest = base.partition("@")
    assert ":" in tag and not tag.endswith(":latest")
    if digest:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), base
        assert "make pin-bases ARGS=--update" in "\n".join(lines)
    else:  # a base whose digest could not be verified offline: the file says how to pin it
        text = "\n".join(lines)
        assert "make pin-bases" in text
        assert f"--build-context {tag}=docker-image://{tag}@sha256:<digest>" in text


@pytest.mark.parametrize("image", ["gan-train", "synthesize", "classifier-train"])
def test_baked_weights_are_read_only_for_the_job_user(image: str) -> None:
    text = (ROOT / "docker" / image / "Dockerfile").read_text()
    assert "chown cxr" not in text and "chown -R cxr" not in text
    bake = text.index("python -m cxrcore.models.weights_cache --check")
    read_only = text.index("chmod -R a=rX /opt/keras")
    user = text.index("\nUSER 10001:10001")
    assert bake < read_only < user  # baked as root, then made read-only, then the job user
