"""Offline lint of ``argo/``, ``k8s/`` and ``docker/`` (``cxr lint``).

Every problem is one :class:`Finding`, printed as ``file: field.path: problem``. The checks, one module each:

* :mod:`~cxrcore.ops.lint.files`: YAML (multi-document): every document parses (duplicate keys are errors, as
  for kubectl) and names its ``apiVersion`` and ``kind``. Files with several documents prefix field paths with
  ``doc[i].``.
* :mod:`~cxrcore.ops.lint.models`: Argo (``Workflow``, ``WorkflowTemplate``, ``ClusterWorkflowTemplate``,
  ``CronWorkflow`` of ``argoproj.io/v1alpha1``): a strict walk of the document alongside the argo-workflows
  client models (``attribute_map``/``openapi_types``): unknown fields, type mismatches, missing required fields,
  and the fields deprecated since Argo Workflows 3.6 (``schedule``, ``semaphore``, ``mutex``: use the lists).
* :mod:`~cxrcore.ops.lint.argo` and :mod:`~cxrcore.ops.lint.references`: the semantics Argo checks only at
  submission or at run time: DAG dependencies (``depends`` read by :mod:`cxrcore.ops.argo_expr`, as the local
  runner reads it) and cycles, ``template`` and ``templateRef`` targets (across files), arguments against the
  callee's inputs, every ``{{inputs.*}}``, ``{{workflow.parameters.*}}``, ``{{tasks.*}}``, ``{{steps.*}}`` and
  ``{{item}}`` reference, and what a ``templateRef`` does not carry over from the WorkflowTemplate's spec
  (arguments, security context, volumes).
* :mod:`~cxrcore.ops.lint.bounds`: retries, time bounds and scheduling as the controller applies them.
* :mod:`~cxrcore.ops.lint.containers`: container hygiene (pinned images, non-root pods, credentials only from
  Secrets), for Argo templates and Kubernetes workloads.
* :mod:`~cxrcore.ops.lint.kubernetes`: the strict JSON schemas of the newest Kubernetes that kubernetes-validate
  ships (unknown fields are errors), references between the linted objects (ServiceAccounts, Roles, Secrets and
  ConfigMaps with their keys, PriorityClasses, PVCs), the artifact repository ConfigMap against the Argo model.
  ``kustomization.yaml``: listed files exist, no deprecated fields.
* :mod:`~cxrcore.ops.lint.profiles`: profiles (``argo/profiles.yaml``, documents of ``{name: {parameters:
  ...}}``): every parameter and every ``requires`` entry is a parameter of the Workflows beside the file.
* :mod:`~cxrcore.ops.lint.docker`: Dockerfiles: hadolint (one finding per issue) and a non-root ``USER`` in the
  final stage (the user its ``ENTRYPOINT`` runs as).

WorkflowTemplates, Secrets, ConfigMaps and the like under ``<root>/argo`` and ``<root>/k8s`` are always read to
resolve references, so ``cxr lint argo/paper.yaml`` still finds the templates it refers to.
"""

from __future__ import annotations

from cxrcore.ops.lint.common import Finding
from cxrcore.ops.lint.engine import lint_paths
from cxrcore.ops.lint.files import collect_lint_files

__all__ = ["Finding", "collect_lint_files", "lint_paths"]
