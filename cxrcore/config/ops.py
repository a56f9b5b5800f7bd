"""Settings of the orchestration jobs: report, promote, the classifier matrix and the exit handler."""

from __future__ import annotations

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from cxrcore.config.base import JobSettings, RunSettings, _json_list
from cxrcore.config.training import learning_rate_for_model
from cxrcore.vocab import (
    MODEL_NAMES,
    PAPER_LEARNING_RATE,
    RUN_ID_PATTERN,
    TASK_NAME_PATTERN,
)


class ReportSettings(RunSettings):
    """``cxr-report``: collect every classifier of a run into the comparison report."""

    # The report covers every seed of the run: the inherited setting changes nothing here.
    seed: int = Field(default=0, ge=0, json_schema_extra={"identity": False})
    title: str = Field(
        default="cxr-gan: DCGAN augmentation for chest X-ray classification",
        json_schema_extra={"identity": True},
    )
    export_dir: str | None = Field(
        default=None,
        description="Also copy the committed report to this local folder (the Argo output artifact).",
        json_schema_extra={"identity": False},
    )
    allow_degraded: bool = Field(
        default=False,
        description=(
            "Replace a committed report that covered outputs the new one would lose (deleted, being rewritten, "
            "now unusable); the new report then says which. Without it such a run exits 1 naming them."
        ),
        json_schema_extra={"identity": False},
    )


# ---------------------------------------------------------------------------------------------------- cxr commands


class PromoteSettings(RunSettings):
    """``cxr promote``: judge a challenger against the registry's champion on the fixed real holdout."""

    # The decision compares trained models: the inherited setting changes nothing here.
    seed: int = Field(default=0, ge=0, json_schema_extra={"identity": False})
    task: str = Field(
        default="pneumonia",
        pattern=TASK_NAME_PATTERN.pattern,
        description="Registry entry: registry/<task>/.",
        json_schema_extra={"identity": True},
    )
    challenger: str = Field(
        description="Classifier output to judge: runs/<run_id>/classifiers/<condition>/<model>/seed-<seed> "
        "(store-relative, or its full URI inside the store).",
        json_schema_extra={"identity": "resolved"},  # the committed model's sha256
    )
    margin: float = Field(
        default=0.005,
        ge=0.0,
        lt=1.0,
        description="Accuracy gain required to promote (0.005 = 0.5 points).",
        json_schema_extra={"identity": True},
    )
    alpha: float = Field(
        default=0.05,
        gt=0.0,
        lt=1.0,
        description="Significance level of McNemar's test.",
        json_schema_extra={"identity": True},
    )
    batch_size: int = Field(
        default=64,
        ge=1,
        description="Images per forward pass.",
        json_schema_extra={"identity": False},
    )


class MatrixSettings(JobSettings):
    """``cxr matrix``: the classifier fan-out of a workflow as JSON lists (Argo ``withParam`` input)."""

    models: str = Field(
        description='JSON list of model names, e.g. ["custom_cnn", "vgg16"].',
        json_schema_extra={"identity": True},
    )
    seeds: str = Field(
        default="[0]",
        description="JSON list of non-negative integer seeds.",
        json_schema_extra={"identity": True},
    )

    learning_rate: str = Field(
        default=str(PAPER_LEARNING_RATE),
        description="The classifiers' learning_rate (a number, or a JSON object with one per model and an optional "
        '"default"), checked here for every listed model so that a mistake fails before any training starts.',
        json_schema_extra={"identity": True},
    )

    @field_validator("models")
    @classmethod
    def _models(cls, value: str) -> str:
        names = _json_list(value, "models")
        unknown = [name for name in names if name not in MODEL_NAMES]
        if not names or unknown:
            raise ValueError(f"must be a non-empty JSON list of {list(MODEL_NAMES)}. Received: models={value!r}")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: str) -> str:
        seeds = _json_list(value, "seeds")
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ValueError(f"must be a non-empty JSON list of integers >= 0. Received: seeds={value!r}")
        return value

    @model_validator(mode="after")
    def _learning_rate_of_every_model(self) -> MatrixSettings:
        for model in _json_list(self.models, "models"):
            learning_rate_for_model(self.learning_rate, model)
        return self


class OutcomeSettings(JobSettings):
    """``cxr outcome``: the workflow's exit handler records its status beside the run's outputs."""

    run_id: str = Field(pattern=RUN_ID_PATTERN.pattern, json_schema_extra={"identity": False})
    status: str = Field(
        description="{{workflow.status}}: Succeeded, Failed or Error.",
        json_schema_extra={"identity": True},
    )
    failures: str = Field(
        default="[]",
        description="{{workflow.failures}} (JSON list).",
        json_schema_extra={"identity": True},
    )
