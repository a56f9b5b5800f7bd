"""The workflow operations of ``cxr``: ``cxr run`` (a manifest executed here) and ``cxr submit`` (to an Argo Server).

See docs/architecture.md#command-line. Their flags and help are defined with every other sub-command in
:mod:`cxrcore.cli`, which calls :func:`run_command` and :func:`submit_command`; the sub-commands that run a job
(``cxr matrix``, ``cxr outcome``, ``cxr incoming``, ``cxr promote``) come from :mod:`cxrcore.jobs_table`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

# Every Settings class lives in cxrcore.config; these two are re-exported for cxrcore.ops.argo_templates.
from cxrcore.config import MatrixSettings, OutcomeSettings
from cxrcore.logging import get_logger

__all__ = ["MatrixSettings", "OutcomeSettings", "run_command", "submit_command", "submit_workflow"]

log = get_logger(__name__)


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


def run_command(args: argparse.Namespace, rest: list[str]) -> int:
    """``cxr run``: executes the workflow manifest here and prints the report's location; returns the exit code."""
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
    manifest = _resolved_manifest(workflow_path, namespace=namespace, parameters=parameters, profile=profile)
    client = _argo_client(server, token=token, verify_tls=verify_tls)
    if apply_templates:
        _apply_workflow_templates(client, workflow_path.parent, namespace)
    response = _create_workflow(client, manifest, namespace)
    metadata = json.loads(response.data).get("metadata", {})
    return {
        "kind": manifest["kind"],
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace", namespace),
        "uid": metadata.get("uid"),
    }


#: Manifests go as they are (the generated models would coerce fields they do not know); answers are read as JSON.
_RAW = {"_preload_content": False}


def _resolved_manifest(
    workflow_path: Path, *, namespace: str, parameters: dict[str, str], profile: dict[str, Any] | None
) -> dict[str, Any]:
    """The manifest's Workflow or CronWorkflow with every parameter resolved (profile, then ``-p``) and its namespace.

    Raises:
        ValueError: The file holds no Workflow or CronWorkflow, or a parameter is not declared.
    """
    import yaml

    from cxrcore.ops.runner import resolve_arguments

    documents = [d for d in yaml.safe_load_all(workflow_path.read_text()) if d]
    manifest = next((d for d in documents if d.get("kind") in ("Workflow", "CronWorkflow")), None)
    if manifest is None:
        raise ValueError(f"{workflow_path} holds no Workflow or CronWorkflow")
    spec = manifest["spec"] if manifest["kind"] == "Workflow" else manifest["spec"]["workflowSpec"]
    values = resolve_arguments({"spec": spec}, profile=profile, overrides=parameters)
    spec["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in values.items()]}
    manifest.setdefault("metadata", {})["namespace"] = namespace
    return manifest


def _argo_client(server: str, *, token: str | None, verify_tls: bool) -> Any:
    """An argo-workflows API client for ``server``, sending the bearer token when there is one."""
    import argo_workflows

    configuration = argo_workflows.Configuration(host=server.rstrip("/"))
    configuration.verify_ssl = verify_tls
    client = argo_workflows.ApiClient(configuration)
    if token:
        client.set_default_header("Authorization", f"Bearer {token}")
    return client


def _apply_workflow_templates(client: Any, folder: Path, namespace: str) -> None:
    """Creates, or updates in place, every WorkflowTemplate in the ``*.yaml`` files of ``folder``."""
    import yaml
    from argo_workflows.api import workflow_template_service_api
    from argo_workflows.exceptions import ApiException
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_template_create_request import (
        IoArgoprojWorkflowV1alpha1WorkflowTemplateCreateRequest as TemplateCreateRequest,
    )
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_template_update_request import (
        IoArgoprojWorkflowV1alpha1WorkflowTemplateUpdateRequest as TemplateUpdateRequest,
    )

    templates_api = workflow_template_service_api.WorkflowTemplateServiceApi(client)
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not (isinstance(doc, dict) and doc.get("kind") == "WorkflowTemplate"):
                continue
            doc.setdefault("metadata", {})["namespace"] = namespace
            _create_or_update(
                doc,
                create=lambda d: templates_api.create_workflow_template(
                    namespace, TemplateCreateRequest(template=d, _check_type=False), **_RAW
                ),
                get=lambda n: templates_api.get_workflow_template(namespace, n, **_RAW),
                update=lambda n, d: templates_api.update_workflow_template(
                    namespace, n, TemplateUpdateRequest(template=d, _check_type=False), **_RAW
                ),
                api_exception=ApiException,
            )


def _create_workflow(client: Any, manifest: dict[str, Any], namespace: str) -> Any:
    """Creates the Workflow, or creates (or updates in place) the CronWorkflow; returns the raw answer."""
    from argo_workflows.api import cron_workflow_service_api, workflow_service_api
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

    if manifest["kind"] == "Workflow":
        api = workflow_service_api.WorkflowServiceApi(client)
        return api.create_workflow(namespace, WorkflowCreateRequest(workflow=manifest, _check_type=False), **_RAW)
    # A CronWorkflow has a fixed name: the second submit updates it in place (schedule, parameters, spec).
    cron_api = cron_workflow_service_api.CronWorkflowServiceApi(client)
    return _create_or_update(
        manifest,
        create=lambda d: cron_api.create_cron_workflow(
            namespace, CronCreateRequest(cron_workflow=d, _check_type=False), **_RAW
        ),
        get=lambda n: cron_api.get_cron_workflow(namespace, n, **_RAW),
        update=lambda n, d: cron_api.update_cron_workflow(
            namespace, n, CronUpdateRequest(cron_workflow=d, _check_type=False), **_RAW
        ),
        api_exception=ApiException,
    )


def submit_command(args: argparse.Namespace, rest: list[str]) -> int:
    """``cxr submit``: submits the manifest to an Argo Server and prints what it created; returns the exit code."""
    from cxrcore.logging import configure_logging, redact

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
        token = _argo_token(args.token_file)
    except OSError as exc:
        print(f"cxr submit: cannot read the token file: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if token and server.lower().startswith("http://"):
        print(
            f"cxr submit: WARNING: sending the bearer token over plain http:// to {redact(server)}: anyone on the "
            "network path can read it; use https:// (ARGO_SECURE=true) unless this is a local port-forward",
            file=sys.stderr,
        )
    try:
        result = submit_workflow(
            workflow_path,
            server=server,
            namespace=args.namespace or os.environ.get("ARGO_NAMESPACE", "cxr"),
            token=token,
            parameters=_parse_overrides(args.parameter),
            profile=_profile(workflow_path, args.profile),
            verify_tls=not args.insecure_skip_tls_verify,
            apply_templates=args.apply_templates,
        )
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line and exit 1
        # The server's answer may echo the request (some proxies quote the Authorization header): the token is
        # redacted by value, wherever it came from (file or environment).
        known = [token] if token and len(token) >= 4 else []
        print(f"cxr submit: {redact(f'{type(exc).__name__}: {exc}', known_secrets=known)}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
