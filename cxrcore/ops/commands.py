"""``cxr`` sub-commands that operate workflows: run, submit, matrix, outcome, incoming and promote."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# The settings of these sub-commands live in cxrcore.config with every other Settings class (re-exported here).
from cxrcore.config import MatrixSettings, OutcomeSettings
from cxrcore.logging import get_logger
from cxrcore.vocab import CONDITIONS

__all__ = ["MatrixSettings", "OutcomeSettings", "register"]

log = get_logger(__name__)


# ---------------------------------------------------------------------------------------------- matrix
def run_matrix(settings: MatrixSettings) -> dict[str, Any]:
    """Returns ``{"baseline": json, "augmented": json}``: one item per model x seed, with its condition."""
    models = json.loads(settings.models)
    seeds = json.loads(settings.seeds)
    result = {}
    for condition in CONDITIONS:
        items = [{"model": m, "seed": s, "condition": condition} for m in models for s in seeds]
        result[condition] = json.dumps(items, separators=(",", ":"))
    result["count"] = len(models) * len(seeds)
    return result


# ---------------------------------------------------------------------------------------------- outcome
def run_outcome(settings: OutcomeSettings) -> dict[str, Any]:
    """Writes ``runs/<run_id>/workflow.json`` (one atomic object) and returns it."""
    from cxrcore.layout import run_prefix
    from cxrcore.storage import join_key

    try:
        failures = json.loads(settings.failures) if settings.failures.strip() else []
    except ValueError:
        failures = [{"message": settings.failures}]
    record = {
        "run_id": settings.run_id,
        "status": settings.status,
        "failures": failures,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store = settings.open_store()
    key = join_key(run_prefix(settings.run_id), "workflow.json")
    store.put_json(key, record)
    return {**record, "uri": f"{store.uri.rstrip('/')}/{key}"}


def _cmd_matrix(args: argparse.Namespace, rest: list[str]) -> int:
    from cxrcore.runtime import run_job

    return run_job("cxr-matrix", MatrixSettings, run_matrix, rest)


def _cmd_outcome(args: argparse.Namespace, rest: list[str]) -> int:
    from cxrcore.runtime import run_job

    return run_job("cxr-outcome", OutcomeSettings, run_outcome, rest)


def _cmd_incoming(args: argparse.Namespace, rest: list[str]) -> int:
    from cxrcore.config import IncomingSettings
    from cxrcore.registry import run_incoming
    from cxrcore.runtime import run_job

    return run_job("cxr-incoming", IncomingSettings, run_incoming, rest)


def _cmd_promote(args: argparse.Namespace, rest: list[str]) -> int:
    from cxrcore.config import PromoteSettings
    from cxrcore.registry import run_promote
    from cxrcore.runtime import run_job

    return run_job("cxr-promote", PromoteSettings, run_promote, rest)


# ---------------------------------------------------------------------------------------------- run
def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"-p takes NAME=VALUE. Received: -p {pair!r}")
        overrides[name.strip()] = value
    return overrides


def _absolute_store(uri: str) -> str:
    if uri.startswith("s3://"):
        return uri
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return "file://" + str(Path(path).expanduser().resolve())


def _profile(workflow_path: Path, name: str | None) -> dict[str, Any] | None:
    from cxrcore.ops.runner import WorkflowError, load_profiles

    if name is None:
        return None
    profiles = load_profiles(workflow_path.parent / "profiles.yaml")
    if name not in profiles:
        raise WorkflowError(f"unknown profile {name!r}; {workflow_path.parent / 'profiles.yaml'} has {sorted(profiles)}")
    return profiles[name]


def _report_location(result) -> str | None:
    for node in result.nodes.values():
        if node.template == "report" and node.status == "Succeeded":
            uri = node.parameters.get("uri", "")
            if uri.startswith("file://"):
                return str(Path(uri[len("file://") :]) / "index.html")
            if uri:
                return uri.rstrip("/") + "/index.html"
            if "report" in node.artifacts:
                return str(Path(node.artifacts["report"]) / "index.html")
    return None


def _cmd_run(args: argparse.Namespace, rest: list[str]) -> int:
    from cxrcore.logging import configure_logging, get_logger
    from cxrcore.ops.runner import LocalRunner, WorkflowError, load_workflow, resolve_arguments

    configure_logging(args.log_level, "auto")
    log = get_logger("cxr-run")
    if rest:
        print(f"cxr run: unrecognized arguments: {' '.join(rest)}", file=sys.stderr)
        return 2
    workflow_path = Path(args.workflow)
    try:
        overrides = _parse_overrides(args.parameter)
        if args.store:
            overrides["store"] = args.store
        overrides.setdefault("store", "file://" + str(Path("cxr-store").resolve()))
        overrides["store"] = _absolute_store(overrides["store"])
        workflow, templates = load_workflow(workflow_path)
        parameters = resolve_arguments(workflow, profile=_profile(workflow_path, args.profile), overrides=overrides)
        runner = LocalRunner(
            workflow,
            templates,
            parameters,
            work_dir=args.work_dir,
            executor=args.executor,
            parallelism=args.parallelism,
            name=args.name,
        )
    except (WorkflowError, ValueError, OSError) as exc:
        print(f"cxr run: {exc}", file=sys.stderr)
        return 2
    log.info("run_start", workflow=runner.name, profile=args.profile, store=parameters.get("store"))
    try:
        result = runner.run()
    except WorkflowError as exc:
        print(f"cxr run: {exc}", file=sys.stderr)
        return 1
    _print_nodes(result)
    report = _report_location(result)
    if result.status != "Succeeded":
        for node in _leaves(result.nodes.values()):
            if node.status in ("Failed", "Errored"):
                print(f"\nstep {node.name} failed: {node.message}", file=sys.stderr)
        print(f"run {result.name}: {result.status} (logs under {result.work_dir})", file=sys.stderr)
        if report:
            print(f"report (partial): {report}")
        return 1
    print(f"run {result.name}: Succeeded; store {parameters['store']}", file=sys.stderr)
    if report:
        print(f"report: {report}")
    else:
        skipped = [n.name for n in _leaves(result.nodes.values()) if n.template == "report"]
        print("report: (skipped: nothing to report this run)" if skipped else "report: (the workflow has no report step)")
    return 0


def _leaves(nodes):
    for node in nodes:
        if node.children:
            yield from _leaves(node.children)
        else:
            yield node


def _print_nodes(result) -> None:
    print(f"{'step':<48} {'status':<10} {'seconds':>8}", file=sys.stderr)
    for node in _leaves(result.nodes.values()):
        print(f"{node.name[:48]:<48} {node.status:<10} {node.seconds:>8.1f}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- submit
def _argo_token(token_file: str | None) -> str | None:
    if token_file:
        token = Path(token_file).read_text().strip()
    else:
        token = os.environ.get("ARGO_TOKEN", "").strip()
    if token.lower().startswith("bearer "):
        token = token[len("bearer ") :]
    return token or None


def _create_or_update(
    document: dict[str, Any],
    *,
    create: Any,
    get: Any,
    update: Any,
    api_exception: type[Exception],
) -> Any:
    """Creates a named object on the Argo Server, or updates it when it exists (HTTP 409 on create).

    The update carries the server's current ``metadata.resourceVersion`` (read just before), as the Kubernetes
    API requires for a replace; a concurrent change in between makes the server answer 409 again, which is
    raised rather than overwritten.
    """
    name = document["metadata"]["name"]
    try:
        return create(document)
    except api_exception as exc:
        if getattr(exc, "status", None) != 409:
            raise
    current = json.loads(get(name).data)
    document["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    log.info("argo_update_existing", kind=document.get("kind"), name=name)
    return update(name, document)


def submit_workflow(
    workflow_path: Path,
    *,
    server: str,
    namespace: str,
    token: str | None,
    parameters: dict[str, str],
    profile: dict[str, Any] | None = None,
    verify_tls: bool = True,
    apply_templates: bool = False,
) -> dict[str, Any]:
    """Submits a Workflow (or creates a CronWorkflow) on an Argo Server with the argo-workflows client.

    Args:
        workflow_path: ``argo/paper.yaml`` or ``argo/retrain.yaml``.
        server: Argo Server base URL (``https://argo.example.com:2746``).
        namespace: Kubernetes namespace.
        token: Bearer token (``ARGO_TOKEN``), or ``None`` for servers in ``--auth-mode=server``.
        parameters: ``-p`` overrides (validated against the manifest's declared parameters).
        profile: A profile from ``argo/profiles.yaml``.
        verify_tls: Verify the server's certificate.
        apply_templates: Create or update the WorkflowTemplates of the manifest's folder first.

    Returns:
        ``{"kind", "name", "namespace", "uid"}`` of what the server created (or updated: a CronWorkflow or
        WorkflowTemplate of that name that already exists is updated in place).
    """
    import argo_workflows
    import yaml
    from argo_workflows.api import cron_workflow_service_api, workflow_service_api, workflow_template_service_api
    from argo_workflows.exceptions import ApiException
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_create_cron_workflow_request import (
        IoArgoprojWorkflowV1alpha1CreateCronWorkflowRequest as CronCreateRequest,
    )
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_update_cron_workflow_request import (
        IoArgoprojWorkflowV1alpha1UpdateCronWorkflowRequest as CronUpdateRequest,
    )
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_create_request import (
        IoArgoprojWorkflowV1alpha1WorkflowCreateRequest as WorkflowCreateRequest,
    )
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_template_create_request import (
        IoArgoprojWorkflowV1alpha1WorkflowTemplateCreateRequest as TemplateCreateRequest,
    )
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_template_update_request import (
        IoArgoprojWorkflowV1alpha1WorkflowTemplateUpdateRequest as TemplateUpdateRequest,
    )

    from cxrcore.ops.runner import resolve_arguments

    documents = [d for d in yaml.safe_load_all(workflow_path.read_text()) if d]
    manifest = next((d for d in documents if d.get("kind") in ("Workflow", "CronWorkflow")), None)
    if manifest is None:
        raise ValueError(f"{workflow_path} holds no Workflow or CronWorkflow")
    spec = manifest["spec"] if manifest["kind"] == "Workflow" else manifest["spec"]["workflowSpec"]
    shaped = {"spec": spec}
    values = resolve_arguments(shaped, profile=profile, overrides=parameters)
    spec["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in values.items()]}
    manifest.setdefault("metadata", {})["namespace"] = namespace

    configuration = argo_workflows.Configuration(host=server.rstrip("/"))
    configuration.verify_ssl = verify_tls
    client = argo_workflows.ApiClient(configuration)
    if token:
        client.set_default_header("Authorization", f"Bearer {token}")
    # Manifests go as they are (the generated models would coerce fields they do not know); answers are read as JSON.
    raw = {"_preload_content": False}
    if apply_templates:
        templates_api = workflow_template_service_api.WorkflowTemplateServiceApi(client)
        for path in sorted(workflow_path.parent.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not (isinstance(doc, dict) and doc.get("kind") == "WorkflowTemplate"):
                    continue
                doc.setdefault("metadata", {})["namespace"] = namespace
                _create_or_update(
                    doc,
                    create=lambda d: templates_api.create_workflow_template(
                        namespace, TemplateCreateRequest(template=d, _check_type=False), **raw
                    ),
                    get=lambda n: templates_api.get_workflow_template(namespace, n, **raw),
                    update=lambda n, d: templates_api.update_workflow_template(
                        namespace, n, TemplateUpdateRequest(template=d, _check_type=False), **raw
                    ),
                    api_exception=ApiException,
                )
    if manifest["kind"] == "Workflow":
        api = workflow_service_api.WorkflowServiceApi(client)
        response = api.create_workflow(namespace, WorkflowCreateRequest(workflow=manifest, _check_type=False), **raw)
    else:
        # A CronWorkflow has a fixed name: the second submit updates it in place (schedule, parameters, spec).
        cron_api = cron_workflow_service_api.CronWorkflowServiceApi(client)
        response = _create_or_update(
            manifest,
            create=lambda d: cron_api.create_cron_workflow(
                namespace, CronCreateRequest(cron_workflow=d, _check_type=False), **raw
            ),
            get=lambda n: cron_api.get_cron_workflow(namespace, n, **raw),
            update=lambda n, d: cron_api.update_cron_workflow(
                namespace, n, CronUpdateRequest(cron_workflow=d, _check_type=False), **raw
            ),
            api_exception=ApiException,
        )
    metadata = json.loads(response.data).get("metadata", {})
    return {
        "kind": manifest["kind"],
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace", namespace),
        "uid": metadata.get("uid"),
    }


def _cmd_submit(args: argparse.Namespace, rest: list[str]) -> int:
    from cxrcore.logging import configure_logging

    configure_logging("INFO", "auto")
    if rest:
        print(f"cxr submit: unrecognized arguments: {' '.join(rest)}", file=sys.stderr)
        return 2
    server = args.server or os.environ.get("ARGO_SERVER", "")
    if not server:
        print("cxr submit: give --server URL or set ARGO_SERVER", file=sys.stderr)
        return 2
    if "://" not in server:
        server = ("http://" if os.environ.get("ARGO_SECURE", "true") == "false" else "https://") + server
    workflow_path = Path(args.workflow)
    try:
        result = submit_workflow(
            workflow_path,
            server=server,
            namespace=args.namespace or os.environ.get("ARGO_NAMESPACE", "cxr"),
            token=_argo_token(args.token_file),
            parameters=_parse_overrides(args.parameter),
            profile=_profile(workflow_path, args.profile),
            verify_tls=not args.insecure_skip_tls_verify,
            apply_templates=args.apply_templates,
        )
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line and exit 1
        from cxrcore.logging import redact

        print(f"cxr submit: {redact(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------- parser
def register(commands: argparse._SubParsersAction) -> None:
    """Adds ``run``, ``submit``, ``matrix``, ``outcome``, ``incoming`` and ``promote`` to the ``cxr`` parser."""
    run = commands.add_parser(
        "run",
        help="execute an Argo workflow's DAG on this machine (same templates, commands, parameters)",
        description="Run argo/paper.yaml (or another Workflow/CronWorkflow manifest) here. Prints the report path.",
    )
    run.add_argument("workflow", metavar="WORKFLOW")
    run.add_argument("--profile", default=None, help="smoke | demo | cpu | paper (argo/profiles.yaml)")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--store", default=None, help="store root (default file://$PWD/cxr-store)")
    run.add_argument(
        "--executor",
        choices=("subprocess", "image-env", "docker"),
        default="subprocess",
        help="subprocess: this environment; image-env: each step in a clean venv built from its image's "
        "Dockerfile and lock (what the image runs); docker: docker run the images",
    )
    run.add_argument("--parallelism", type=int, default=2, help="containers at once (default 2)")
    run.add_argument("--name", default=None, help="run id (re-use one to resume: finished steps are skipped)")
    run.add_argument("--work-dir", default="cxr-runs", help="step logs and scratch (default ./cxr-runs)")
    run.add_argument("--log-level", default="INFO")
    run.set_defaults(handler=_cmd_run, accepts_settings=False)

    submit = commands.add_parser("submit", help="submit a workflow (or create a CronWorkflow) on an Argo Server")
    submit.add_argument("workflow", metavar="WORKFLOW")
    submit.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    submit.add_argument("--profile", default=None)
    submit.add_argument("--server", default=None, help="Argo Server URL (default $ARGO_SERVER)")
    submit.add_argument("--namespace", default=None, help="namespace (default $ARGO_NAMESPACE or cxr)")
    submit.add_argument("--token-file", default=None, help="file holding the bearer token (default $ARGO_TOKEN)")
    submit.add_argument("--insecure-skip-tls-verify", action="store_true")
    submit.add_argument("--apply-templates", action="store_true", help="create/update argo/ WorkflowTemplates first")
    submit.set_defaults(handler=_cmd_submit, accepts_settings=False)

    matrix = commands.add_parser("matrix", help="expand --models/--seeds into the classifier fan-out (JSON)")
    matrix.set_defaults(handler=_cmd_matrix, accepts_settings=True)

    outcome = commands.add_parser("outcome", help="record a workflow's final status in the store (exit handler)")
    outcome.set_defaults(handler=_cmd_outcome, accepts_settings=True)

    incoming = commands.add_parser(
        "incoming",
        help="list the complete incoming/<batch>/ uploads not yet in the dataset's ledger (retraining check)",
        description="Prints found (true/false), batches (JSON list) and count. Settings: --store, --dataset, "
        "--incoming-prefix, --result-dir.",
    )
    incoming.set_defaults(handler=_cmd_incoming, accepts_settings=True)

    promote = commands.add_parser(
        "promote",
        help="judge a challenger classifier against the registry's champion; promote only if it is better",
        description="Both models predict the test split of the challenger's dataset version; promote when there "
        "is no champion, or when accuracy gains >= --margin and McNemar p < --alpha. Settings: --store, --task, "
        "--challenger, --run-id, --dataset, --dataset-version, --margin, --alpha, --result-dir.",
    )
    promote.set_defaults(handler=_cmd_promote, accepts_settings=True)
