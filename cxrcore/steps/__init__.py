"""One module per Argo step: plan, skip if committed, compute with pure functions, commit (docs/architecture.md#steps)."""
