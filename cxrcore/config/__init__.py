"""Job settings: command-line flags > ``CXR_*`` environment variables > defaults (pydantic-settings).

Every job and ``cxr`` sub-command has one ``Settings`` class derived from :class:`JobSettings`, all of them in
this module. Nested S3 options are set with ``--s3.endpoint-url`` or ``CXR_S3__ENDPOINT_URL``. Credentials are
never settings: boto3 reads them from the standard AWS variables, a shared credentials file
(``AWS_SHARED_CREDENTIALS_FILE``, e.g. a mounted Secret) or the pod's identity.

Identity (docs/architecture.md#identity): every field says whether it changes what the job produces, with
``json_schema_extra={"identity": MARK}``:

* ``True``: the field's value is part of the job's identity; :func:`identity` collects it (through
  ``resolved_<name>()`` when the class defines one, e.g. the paper's per-class epoch count behind ``None``).
* ``"resolved"``: it changes the result, but the job records what it resolves to instead of the setting itself
  (the version id and marker digest behind ``dataset_version=latest``, the sha256 of a model file, the content
  of a source).
* ``False``: it does not change the result (where it is stored, how it is logged, how fast it runs).

A job's marker inputs are :func:`identity` plus what the job resolves (upstream marker digests, format
versions); a committed output whose marker holds the same inputs hash is reused. A field without a mark makes
:func:`identity` raise, so a new setting cannot be forgotten (``tests/test_identity.py`` checks every class).

The classes live in submodules by job family (``base``, ``data``, ``training``, ``ops``); this package re-exports
every name, so ``from cxrcore.config import GanTrainSettings`` is the one way to reach them.
"""

from __future__ import annotations

from cxrcore.config.base import ALL_MODEL_NAMES, JobSettings, RunSettings, S3Settings
from cxrcore.config.data import (
    ExternalTestSettings,
    IncomingSettings,
    PrepareSettings,
    external_sources,
)
from cxrcore.config.ops import (
    MatrixSettings,
    OutcomeSettings,
    PromoteSettings,
    ReportSettings,
)
from cxrcore.config.training import (
    GanTrainSettings,
    SynthesizeSettings,
    TrainClassifierSettings,
)
from cxrcore.settings_support import (  # re-exported: config is where every settings name is found
    IDENTITY_KEY,
    IDENTITY_MARKS,
    SettingsError,
    format_validation_error,
    identity,
    identity_mark,
    parse_batches,
    parse_dicom_views,
    parse_settings,
    validate_batch_name,
)

__all__ = [
    "ALL_MODEL_NAMES",
    "ExternalTestSettings",
    "IDENTITY_KEY",
    "IDENTITY_MARKS",
    "GanTrainSettings",
    "IncomingSettings",
    "JobSettings",
    "MatrixSettings",
    "OutcomeSettings",
    "PrepareSettings",
    "PromoteSettings",
    "ReportSettings",
    "RunSettings",
    "SynthesizeSettings",
    "TrainClassifierSettings",
    "S3Settings",
    "SettingsError",
    "external_sources",
    "parse_dicom_views",
    "format_validation_error",
    "identity",
    "identity_mark",
    "parse_batches",
    "parse_settings",
    "validate_batch_name",
]
