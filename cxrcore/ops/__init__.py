"""Operations tooling of cxr-gan: how the manifests, images and workflows are checked and run off-cluster.

* ``cxr lint`` (:func:`lint_paths`): Argo manifests against the argo-workflows client models plus the
  controller's own rules for retries, bounds and scheduling; Kubernetes manifests against kubernetes-validate's
  schemas; Dockerfiles with hadolint. Offline.
* ``cxr run`` (:mod:`cxrcore.ops.runner`): executes a Workflow here, reading its expressions with
  :mod:`cxrcore.ops.argo_expr` and its retries and deadlines with :mod:`cxrcore.ops.retry`, each step in this
  environment, in its image's environment (:mod:`cxrcore.ops.images`) or with ``docker run``.
* ``cxr submit``: the Argo Server through the argo-workflows client.
* ``make lock`` (:mod:`cxrcore.ops.locks`): the images' hash-checked locks from ``pyproject.toml`` (the only
  tool here that needs the package index).
"""

from cxrcore.ops.lint import Finding, collect_lint_files, lint_paths

__all__ = ["Finding", "collect_lint_files", "lint_paths"]
