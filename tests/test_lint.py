"""``cxr lint`` (cxrcore.ops.lint): a clean fixture repository, one seeded mistake per test, the real repository.

The fixture repository (written into ``tmp_path``) holds a WorkflowTemplate, a Workflow whose DAG calls it
through ``templateRef``, a CronWorkflow with ``schedules``, Kubernetes objects (ServiceAccount, ConfigMap,
Secret, Deployment) with their kustomization, and a Dockerfile. It lints clean; every other test changes one
thing and expects exactly one finding naming the file and the field path. Its containers are hardened
(read-only root filesystem, RuntimeDefault seccomp profile), as every container must be.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cxrcore.cli import main
from cxrcore.ops.lint import Finding, lint_paths

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# What a cluster does to healthy pods gets retried; bad input (1) and bad settings (2) never (see cxrcore.ops.lint.bounds).
RETRY: dict[str, Any] = {
    "limit": 3,
    "retryPolicy": "Always",
    "expression": 'lastRetry.status == "Error" or (lastRetry.status == "Failed" and '
    '!(lastRetry.message contains "longer than the specified deadline") and '
    '(lastRetry.exitCode in ["75", "137", "143"] or lastRetry.message matches "(?i)evict|low on resource|shutdown"))',
    "backoff": {"duration": "10s", "factor": 2},
}

# Every container: a read-only root filesystem and a confining seccomp profile (cxrcore.ops.lint.containers).
# Set on the containers here, so removing a pod-level securityContext (other tests) seeds exactly one finding.
HARDENED: dict[str, Any] = {"readOnlyRootFilesystem": True, "seccompProfile": {"type": "RuntimeDefault"}}

WORKFLOW_TEMPLATE: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "WorkflowTemplate",
    "metadata": {"name": "demo"},
    "spec": {
        "serviceAccountName": "runner",
        "arguments": {"parameters": [{"name": "greeting", "value": "hello"}]},
        "templates": [
            {
                "name": "say",
                "inputs": {"parameters": [{"name": "message"}, {"name": "tag", "value": "1.0"}]},
                "outputs": {"parameters": [{"name": "said", "valueFrom": {"path": "/tmp/said"}}]},
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                "activeDeadlineSeconds": 600,
                "retryStrategy": RETRY,
                "container": {
                    "image": "registry.example/say:{{inputs.parameters.tag}}",
                    "command": ["say"],
                    "args": ["{{inputs.parameters.message}}", "{{workflow.parameters.greeting}}"],
                    "env": [
                        {
                            "name": "API_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "demo-credentials", "key": "token"}},
                        }
                    ],
                    "resources": {"requests": {"cpu": 1, "memory": "64Mi"}},
                    "securityContext": HARDENED,
                },
            }
        ],
    },
}

WORKFLOW: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "demo-"},
    "spec": {
        "entrypoint": "main",
        "serviceAccountName": "runner",
        "activeDeadlineSeconds": 3600,
        "securityContext": {"runAsNonRoot": True},
        "arguments": {"parameters": [{"name": "greeting", "value": "hello"}]},
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {
                            "name": "first",
                            "templateRef": {"name": "demo", "template": "say"},
                            "arguments": {
                                "parameters": [{"name": "message", "value": "{{workflow.parameters.greeting}}"}]
                            },
                        },
                        {
                            "name": "second",
                            "depends": "first",
                            "templateRef": {"name": "demo", "template": "say"},
                            "arguments": {
                                "parameters": [
                                    {"name": "message", "value": "{{tasks.first.outputs.parameters.said}}"}
                                ]
                            },
                        },
                        {
                            "name": "fan-out",
                            "dependencies": ["second"],
                            "template": "echo",
                            "arguments": {"parameters": [{"name": "text", "value": "{{item}}"}]},
                            "withItems": ["a", "b"],
                        },
                    ]
                },
            },
            {
                "name": "echo",
                "inputs": {"parameters": [{"name": "text"}]},
                "timeout": "5m",
                "retryStrategy": RETRY,
                "container": {
                    "image": "busybox:1.36",
                    "command": ["echo", "{{inputs.parameters.text}}"],
                    "securityContext": HARDENED,
                },
            },
        ],
    },
}

CRON_WORKFLOW: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "CronWorkflow",
    "metadata": {"name": "nightly"},
    "spec": {
        "schedules": ["0 3 * * *"],
        "concurrencyPolicy": "Forbid",
        "workflowSpec": {
            "entrypoint": "main",
            "serviceAccountName": "runner",
            "activeDeadlineSeconds": 3600,
            "securityContext": {"runAsNonRoot": True},
            "arguments": {"parameters": [{"name": "greeting", "value": "hi"}]},
            "synchronization": {"semaphores": [{"configMapKeyRef": {"name": "demo-semaphores", "key": "gpu"}}]},
            "templates": [
                {
                    "name": "main",
                    "steps": [
                        [
                            {
                                "name": "greet",
                                "templateRef": {"name": "demo", "template": "say"},
                                "arguments": {
                                    "parameters": [{"name": "message", "value": "{{workflow.parameters.greeting}}"}]
                                },
                            }
                        ]
                    ],
                }
            ],
        },
    },
}

KUBERNETES_OBJECTS: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "demo-semaphores"}, "data": {"gpu": "1"}},
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "demo-credentials"},
        "stringData": {"token": "REPLACE_ME"},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "serviceAccountName": "runner",
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginxinc/nginx-unprivileged:1.27",
                            "ports": [{"containerPort": 8080}],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                            "securityContext": HARDENED,
                        }
                    ],
                },
            },
        },
    },
]

KUSTOMIZATION: dict[str, Any] = {
    "apiVersion": "kustomize.config.k8s.io/v1beta1",
    "kind": "Kustomization",
    "namespace": "demo",
    "resources": ["app.yaml"],
}

DOCKERFILE = """\
FROM python:3.11.11-slim-bookworm
COPY app.py /app/app.py
USER 10001:10001
ENTRYPOINT ["python", "/app/app.py"]
"""


def _write_yaml(path: Path, documents: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A minimal repository that lints clean."""
    _write_yaml(tmp_path / "argo" / "templates.yaml", [copy.deepcopy(WORKFLOW_TEMPLATE)])
    _write_yaml(tmp_path / "argo" / "workflow.yaml", [copy.deepcopy(WORKFLOW)])
    _write_yaml(tmp_path / "argo" / "cron.yaml", [copy.deepcopy(CRON_WORKFLOW)])
    _write_yaml(tmp_path / "k8s" / "app.yaml", copy.deepcopy(KUBERNETES_OBJECTS))
    _write_yaml(tmp_path / "k8s" / "kustomization.yaml", [copy.deepcopy(KUSTOMIZATION)])
    (tmp_path / "docker" / "app").mkdir(parents=True)
    (tmp_path / "docker" / "app" / "Dockerfile").write_text(DOCKERFILE, encoding="utf-8")
    return tmp_path


def _edit(root: Path, relative: str, change: Callable[[list[dict[str, Any]]], None]) -> None:
    """Applies ``change`` to the documents of ``root/relative`` and writes them back."""
    path = root / relative
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    change(documents)
    _write_yaml(path, documents)


def _only_finding(root: Path) -> Finding:
    findings = lint_paths(root=root)
    assert len(findings) == 1, "\n".join(str(finding) for finding in findings)
    return findings[0]


def _assert_single(root: Path, file: str, path: str, *fragments: str) -> None:
    finding = _only_finding(root)
    assert (finding.file, finding.path) == (file, path), str(finding)
    for fragment in fragments:
        assert fragment in finding.message, str(finding)


def _dag_tasks(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return documents[0]["spec"]["templates"][0]["dag"]["tasks"]


def _echo(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return documents[0]["spec"]["templates"][1]


def test_fixture_repository_is_clean(repository: Path) -> None:
    assert lint_paths(root=repository) == []


def test_finding_prints_file_path_and_problem() -> None:
    assert str(Finding("argo/a.yaml", "spec.entrypoint", "missing")) == "argo/a.yaml: spec.entrypoint: missing"


def test_typo_in_argo_container_field(repository: Path) -> None:
    _edit(
        repository,
        "argo/templates.yaml",
        lambda documents: documents[0]["spec"]["templates"][0]["container"].update(imagePullPolcy="Always"),
    )
    _assert_single(
        repository,
        "argo/templates.yaml",
        "spec.templates[0].container.imagePullPolcy",
        "unknown field 'imagePullPolcy'",
        "did you mean 'imagePullPolicy'",
    )


def test_typo_contaners_in_container_set(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        echo = _echo(documents)
        container = echo.pop("container")
        echo["containerSet"] = {"containers": [{"name": "main", **container}], "contaners": []}

    _edit(repository, "argo/workflow.yaml", change)
    _assert_single(repository, "argo/workflow.yaml", "spec.templates[1].containerSet.contaners", "unknown field")


def test_argo_scalar_type_mismatch(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: documents[0]["spec"].update(parallelism="two"))
    _assert_single(repository, "argo/workflow.yaml", "spec.parallelism", "expected an integer", "'two'")


def test_missing_dependency(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _dag_tasks(documents)[2].update(dependencies=["nope"]))
    _assert_single(
        repository, "argo/workflow.yaml", "spec.templates[0].dag.tasks[2].dependencies[0]", "'nope'", "not a task"
    )


def test_missing_task_in_depends_expression(repository: Path) -> None:
    _edit(
        repository,
        "argo/workflow.yaml",
        lambda documents: _dag_tasks(documents)[1].update(depends="first && nope.Succeeded"),
    )
    _assert_single(repository, "argo/workflow.yaml", "spec.templates[0].dag.tasks[1].depends", "'nope'")


def test_dependency_cycle(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _dag_tasks(documents)[0].update(depends="fan-out"))
    _assert_single(
        repository, "argo/workflow.yaml", "spec.templates[0].dag.tasks", "dependency cycle", "first -> fan-out"
    )


def test_template_ref_to_missing_template(repository: Path) -> None:
    _edit(
        repository,
        "argo/workflow.yaml",
        lambda documents: _dag_tasks(documents)[1]["templateRef"].update(template="shout"),
    )
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[0].dag.tasks[1].templateRef.template",
        "template 'shout' is not defined in WorkflowTemplate 'demo'",
    )


def test_template_ref_to_missing_workflow_template(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        step = documents[0]["spec"]["workflowSpec"]["templates"][0]["steps"][0][0]
        step["templateRef"]["name"] = "dmeo"

    _edit(repository, "argo/cron.yaml", change)
    _assert_single(
        repository,
        "argo/cron.yaml",
        "spec.workflowSpec.templates[0].steps[0][0].templateRef.name",
        "WorkflowTemplate 'dmeo'",
        "did you mean 'demo'",
    )


def test_local_template_reference_missing(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _dag_tasks(documents)[2].update(template="ecko"))
    _assert_single(repository, "argo/workflow.yaml", "spec.templates[0].dag.tasks[2].template", "'ecko'")


def test_undeclared_input_parameter(repository: Path) -> None:
    _edit(
        repository,
        "argo/workflow.yaml",
        lambda documents: _echo(documents)["container"].update(command=["echo", "{{inputs.parameters.x}}"]),
    )
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[1].container.command[1]",
        "{{inputs.parameters.x}} is not declared in inputs.parameters of template 'echo'",
    )


def test_undeclared_workflow_parameter(repository: Path) -> None:
    _edit(
        repository,
        "argo/workflow.yaml",
        lambda documents: _dag_tasks(documents)[0]["arguments"]["parameters"][0].update(
            value="{{workflow.parameters.greting}}"
        ),
    )
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[0].dag.tasks[0].arguments.parameters[0].value",
        "{{workflow.parameters.greting}} is not declared in spec.arguments.parameters",
    )


def test_template_ref_needs_workflow_parameter_of_caller(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        documents[0]["spec"]["arguments"]["parameters"] = [{"name": "salutation", "value": "hello"}]
        _dag_tasks(documents)[0]["arguments"]["parameters"][0]["value"] = "{{workflow.parameters.salutation}}"

    _edit(repository, "argo/workflow.yaml", change)
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[0].dag.tasks[0].templateRef",
        "template 'demo/say' uses {{workflow.parameters.greeting}}",
    )


def test_argument_not_an_input(repository: Path) -> None:
    _edit(
        repository,
        "argo/workflow.yaml",
        lambda documents: _dag_tasks(documents)[0]["arguments"]["parameters"].append({"name": "volume", "value": "9"}),
    )
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[0].dag.tasks[0].arguments.parameters[1].name",
        "parameter 'volume' is not an input of template 'demo/say'",
    )


def test_required_input_not_passed(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _dag_tasks(documents)[0].pop("arguments"))
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[0].dag.tasks[0].arguments.parameters",
        "required input parameter 'message' of template 'demo/say' is not passed",
    )


def test_task_output_not_declared(repository: Path) -> None:
    _edit(
        repository,
        "argo/workflow.yaml",
        lambda documents: _dag_tasks(documents)[1]["arguments"]["parameters"][0].update(
            value="{{tasks.first.outputs.parameters.sad}}"
        ),
    )
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[0].dag.tasks[1].arguments.parameters[0].value",
        "declares no output parameter 'sad'",
    )


def test_task_output_used_without_dependency(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _dag_tasks(documents)[1].pop("depends"))
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[0].dag.tasks[1].arguments.parameters[0].value",
        "does not depend on task 'first'",
    )


def test_item_outside_loop(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _dag_tasks(documents)[2].pop("withItems"))
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[0].dag.tasks[2].arguments.parameters[0].value",
        "{{item}} is used outside a task or step with withItems",
    )


@pytest.mark.parametrize(
    ("image", "fragment"),
    [("busybox", "has no tag"), ("busybox:latest", "':latest'"), ("registry.local:5000/busybox", "has no tag")],
)
def test_bad_image(repository: Path, image: str, fragment: str) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _echo(documents)["container"].update(image=image))
    _assert_single(repository, "argo/workflow.yaml", "spec.templates[1].container.image", fragment)


def test_container_without_image(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _echo(documents)["container"].pop("image"))
    _assert_single(repository, "argo/workflow.yaml", "spec.templates[1].container.image", "no image")


def test_image_expression_checked_with_defaults(repository: Path) -> None:
    _edit(
        repository,
        "argo/templates.yaml",
        lambda documents: documents[0]["spec"]["templates"][0]["inputs"]["parameters"][1].update(value="latest"),
    )
    _assert_single(
        repository, "argo/templates.yaml", "spec.templates[0].container.image", "parameters' defaults", "':latest'"
    )


def test_container_running_as_root(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _echo(documents).update(securityContext={"runAsUser": 0}))
    _assert_single(repository, "argo/workflow.yaml", "spec.templates[1].securityContext.runAsUser", "runs as root")


def test_pod_without_run_as_non_root(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: documents[0]["spec"].pop("securityContext"))
    _assert_single(
        repository, "argo/workflow.yaml", "spec.templates[1].securityContext.runAsNonRoot", "may run as root"
    )


def test_template_ref_does_not_carry_workflow_template_security_context(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        spec = documents[0]["spec"]
        spec["securityContext"] = spec["templates"][0].pop("securityContext")

    _edit(repository, "argo/templates.yaml", change)
    _edit(repository, "argo/workflow.yaml", lambda documents: documents[0]["spec"].pop("securityContext"))
    findings = lint_paths(root=repository)
    assert [(finding.file, finding.path) for finding in findings] == [
        ("argo/workflow.yaml", "spec.templates[0].dag.tasks[0].templateRef"),
        ("argo/workflow.yaml", "spec.templates[1].securityContext.runAsNonRoot"),
    ], "\n".join(map(str, findings))
    assert "templateRef does not apply" in findings[0].message


def test_argo_container_with_writable_root_filesystem(repository: Path) -> None:
    _edit(
        repository,
        "argo/workflow.yaml",
        lambda documents: _echo(documents)["container"]["securityContext"].pop("readOnlyRootFilesystem"),
    )
    _assert_single(
        repository,
        "argo/workflow.yaml",
        "spec.templates[1].container.securityContext.readOnlyRootFilesystem",
        "writable root filesystem",
    )


def test_argo_read_only_root_filesystem_false(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        documents[0]["spec"]["templates"][0]["container"]["securityContext"]["readOnlyRootFilesystem"] = False

    _edit(repository, "argo/templates.yaml", change)
    _assert_single(
        repository,
        "argo/templates.yaml",
        "spec.templates[0].container.securityContext.readOnlyRootFilesystem",
        "readOnlyRootFilesystem: true",
    )


def test_argo_pod_without_seccomp_profile(repository: Path) -> None:
    _edit(
        repository, "argo/workflow.yaml", lambda documents: _echo(documents)["container"]["securityContext"].pop("seccompProfile")
    )
    _assert_single(repository, "argo/workflow.yaml", "spec.securityContext.seccompProfile", "seccomp profile")


def test_argo_unconfined_seccomp_profile(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        _echo(documents)["container"]["securityContext"]["seccompProfile"] = {"type": "Unconfined"}

    _edit(repository, "argo/workflow.yaml", change)
    _assert_single(
        repository, "argo/workflow.yaml", "spec.templates[1].container.securityContext.seccompProfile.type", "Unconfined"
    )


def test_template_ref_does_not_carry_workflow_template_seccomp_profile(repository: Path) -> None:
    # The pod-level seccompProfile of a WorkflowTemplate's spec does not reach pods called through templateRef.
    def change(documents: list[dict[str, Any]]) -> None:
        spec = documents[0]["spec"]
        spec["securityContext"] = {"seccompProfile": spec["templates"][0]["container"]["securityContext"].pop("seccompProfile")}

    _edit(repository, "argo/templates.yaml", change)
    findings = lint_paths(root=repository)
    assert [(finding.file, finding.path) for finding in findings] == [
        ("argo/cron.yaml", "spec.workflowSpec.templates[0].steps[0][0].templateRef"),
        ("argo/workflow.yaml", "spec.templates[0].dag.tasks[0].templateRef"),
    ], "\n".join(map(str, findings))
    assert all("seccomp" in finding.message for finding in findings)
    # Setting it in the callers' own spec fixes both.
    _edit(repository, "argo/workflow.yaml", lambda d: d[0]["spec"]["securityContext"].update(seccompProfile={"type": "RuntimeDefault"}))
    _edit(
        repository,
        "argo/cron.yaml",
        lambda d: d[0]["spec"]["workflowSpec"]["securityContext"].update(seccompProfile={"type": "RuntimeDefault"}),
    )
    assert lint_paths(root=repository) == []


def test_kubernetes_container_with_writable_root_filesystem(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        documents[3]["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("readOnlyRootFilesystem")

    _edit(repository, "k8s/app.yaml", change)
    _assert_single(
        repository,
        "k8s/app.yaml",
        "doc[3].spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem",
        "writable root filesystem",
    )


def test_kubernetes_pod_without_seccomp_profile(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        documents[3]["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("seccompProfile")

    _edit(repository, "k8s/app.yaml", change)
    _assert_single(
        repository, "k8s/app.yaml", "doc[3].spec.template.spec.securityContext.seccompProfile", "seccomp profile"
    )


def test_literal_secret_in_env(repository: Path) -> None:
    _edit(
        repository,
        "argo/templates.yaml",
        lambda documents: documents[0]["spec"]["templates"][0]["container"].update(
            env=[{"name": "API_TOKEN", "value": "s3cr3t"}]
        ),
    )
    _assert_single(
        repository,
        "argo/templates.yaml",
        "spec.templates[0].container.env[0].value",
        "credential-like variable API_TOKEN",
        "secretKeyRef",
    )


def test_secret_key_reference_missing(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        variable = documents[0]["spec"]["templates"][0]["container"]["env"][0]
        variable["valueFrom"]["secretKeyRef"]["key"] = "tokn"

    _edit(repository, "argo/templates.yaml", change)
    _assert_single(
        repository,
        "argo/templates.yaml",
        "spec.templates[0].container.env[0].valueFrom.secretKeyRef",
        "Secret 'demo-credentials' has no key 'tokn'",
    )


def test_deprecated_schedule(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        spec = documents[0]["spec"]
        spec["schedule"] = spec.pop("schedules")[0]

    _edit(repository, "argo/cron.yaml", change)
    _assert_single(repository, "argo/cron.yaml", "spec.schedule", "deprecated", "'schedules'")


def test_deprecated_semaphore(repository: Path) -> None:
    def change(documents: list[dict[str, Any]]) -> None:
        synchronization = documents[0]["spec"]["workflowSpec"]["synchronization"]
        synchronization["semaphore"] = synchronization.pop("semaphores")[0]

    _edit(repository, "argo/cron.yaml", change)
    _assert_single(
        repository, "argo/cron.yaml", "spec.workflowSpec.synchronization.semaphore", "deprecated", "'semaphores'"
    )


def test_invalid_cron_expression(repository: Path) -> None:
    _edit(repository, "argo/cron.yaml", lambda documents: documents[0]["spec"].update(schedules=["0 3 * *"]))
    _assert_single(repository, "argo/cron.yaml", "spec.schedules[0]", "expected 5")


def test_kubernetes_wrong_type(repository: Path) -> None:
    _edit(repository, "k8s/app.yaml", lambda documents: documents[3]["spec"].update(replicas="two"))
    _assert_single(repository, "k8s/app.yaml", "doc[3].spec.replicas", "expected integer", "'two'")


def test_kubernetes_unknown_field(repository: Path) -> None:
    _edit(
        repository,
        "k8s/app.yaml",
        lambda documents: documents[3]["spec"]["template"]["spec"]["containers"][0].update(imagePullPolcy="Always"),
    )
    _assert_single(
        repository,
        "k8s/app.yaml",
        "doc[3].spec.template.spec.containers[0].imagePullPolcy",
        "unknown field",
        "did you mean 'imagePullPolicy'",
    )


def test_kubernetes_workload_running_as_root(repository: Path) -> None:
    _edit(repository, "k8s/app.yaml", lambda documents: documents[3]["spec"]["template"]["spec"].pop("securityContext"))
    _assert_single(repository, "k8s/app.yaml", "doc[3].spec.template.spec.securityContext.runAsNonRoot", "root")


def test_kustomization_resource_missing(repository: Path) -> None:
    _edit(repository, "k8s/kustomization.yaml", lambda documents: documents[0]["resources"].append("missing.yaml"))
    _assert_single(repository, "k8s/kustomization.yaml", "resources[1]", "'missing.yaml' does not exist")


def test_document_without_kind(repository: Path) -> None:
    _edit(repository, "k8s/app.yaml", lambda documents: documents[0].pop("kind"))
    _assert_single(repository, "k8s/app.yaml", "doc[0].kind", "missing required field")


def test_yaml_duplicate_key(repository: Path) -> None:
    path = repository / "k8s" / "app.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("kind: ServiceAccount\n", "kind: ServiceAccount\nkind: Pod\n", 1), encoding="utf-8")
    finding = _only_finding(repository)
    assert (finding.file, finding.path) == ("k8s/app.yaml", "line 3"), str(finding)
    assert "duplicate key 'kind'" in finding.message


def test_dockerfile_untagged_base_image(repository: Path) -> None:
    path = repository / "docker" / "app" / "Dockerfile"
    path.write_text(DOCKERFILE.replace("FROM python:3.11.11-slim-bookworm", "FROM ubuntu"), encoding="utf-8")
    _assert_single(repository, "docker/app/Dockerfile", "line 1", "DL3006")


def test_dockerfile_without_user(repository: Path) -> None:
    path = repository / "docker" / "app" / "Dockerfile"
    path.write_text(DOCKERFILE.replace("USER 10001:10001\n", ""), encoding="utf-8")
    _assert_single(repository, "docker/app/Dockerfile", "line 3", "sets no USER")


def test_explicit_paths_still_resolve_template_refs(repository: Path) -> None:
    _edit(repository, "argo/workflow.yaml", lambda documents: _dag_tasks(documents)[2].update(dependencies=["nope"]))
    findings = lint_paths([repository / "argo" / "workflow.yaml"], root=repository)
    assert [finding.path for finding in findings] == ["spec.templates[0].dag.tasks[2].dependencies[0]"]


def test_cli_exit_codes_and_output(repository: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--root", str(repository)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "lint: clean (6 files)" in captured.err

    _edit(repository, "argo/workflow.yaml", lambda documents: _dag_tasks(documents)[2].update(dependencies=["nope"]))
    assert main(["lint", "--root", str(repository), str(repository / "argo")]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "argo/workflow.yaml: spec.templates[0].dag.tasks[2].dependencies[0]: task 'fan-out' depends on 'nope', "
        "which is not a task of this DAG"
    ]
    assert "1 finding(s)" in captured.err


def test_real_repository_lints_clean() -> None:
    findings = lint_paths(
        [REPOSITORY_ROOT / "argo", REPOSITORY_ROOT / "k8s", REPOSITORY_ROOT / "docker"], root=REPOSITORY_ROOT
    )
    assert findings == [], "\n".join(str(finding) for finding in findings)
