"""Operations tooling of cxr-gan: offline checks of the Argo manifests, Kubernetes manifests and Dockerfiles.

:func:`lint_paths` backs ``cxr lint`` (DESIGN.md "Command line"). Nothing here talks to a cluster, a registry or
the network: Argo manifests are checked against the argo-workflows client models, Kubernetes manifests against
the JSON schemas shipped by kubernetes-validate, Dockerfiles with hadolint.
"""

from cxrcore.ops.lint import Finding, collect_lint_files, lint_paths

__all__ = ["Finding", "collect_lint_files", "lint_paths"]
