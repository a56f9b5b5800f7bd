"""What every job entrypoint shares: parse settings, configure logging, call ``run()``, map errors to exit codes.

Exit codes: 0 success, 1 the job failed (bad input, store error; the log says which file and why), 2 bad settings,
75 a transient store failure (connection lost, throttled): safe to retry, and the Argo templates do.
The job's result (a JSON-ready dict) goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cxrcore.config import JobSettings, SettingsError, parse_settings
from cxrcore.logging import configure_logging, get_logger, redact, redact_text
from cxrcore.storage.base import TransientStoreError

__all__ = ["EXIT_BAD_SETTINGS", "EXIT_FAILED", "EXIT_OK", "EXIT_TRANSIENT", "run_job", "write_result_dir"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2
EXIT_TRANSIENT = 75  # EX_TEMPFAIL: the Argo templates' retryStrategy retries exactly this code

SettingsT = TypeVar("SettingsT", bound=JobSettings)


def run_job(
    job_name: str,
    settings_cls: type[SettingsT],
    run: Callable[[SettingsT], dict[str, Any] | None],
    argv: Sequence[str] | None = None,
    **overrides: Any,
) -> int:
    """Runs one job the way every container entrypoint does and returns its exit code.

    Args:
        job_name: Name bound to every log event (``job=...``).
        settings_cls: The job's settings class.
        run: The ``cxrcore`` function doing the work; its dict result is printed to stdout as JSON.
        argv: Flags (default ``sys.argv[1:]``).
        **overrides: Settings that win over flags (for ``cxr`` sub-commands).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ banner is not a log event
    try:
        settings = parse_settings(settings_cls, argv, **overrides)
    except SettingsError as exc:
        configure_logging("INFO", "auto")
        print(f"{job_name}: invalid settings:\n{redact_text(str(exc))}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger(job_name, job=job_name)
    log.info("job_start", settings=redact(settings.model_dump(mode="json")))
    started = time.monotonic()
    try:
        result = run(settings)
    except KeyboardInterrupt:
        log.error("job_interrupted")
        return 130
    except TransientStoreError as exc:
        log.error("job_failed_transient", error=str(exc), seconds=round(time.monotonic() - started, 2))
        return EXIT_TRANSIENT
    except SettingsError as exc:  # a setting the work itself needs and lacks (the patient salt of DICOM files)
        log.error("job_failed_settings", error=str(exc), seconds=round(time.monotonic() - started, 2))
        return EXIT_BAD_SETTINGS
    except (OSError, ValueError, RuntimeError) as exc:
        log.error("job_failed", error=f"{type(exc).__name__}: {exc}", seconds=round(time.monotonic() - started, 2))
        return EXIT_FAILED
    log.info("job_done", seconds=round(time.monotonic() - started, 2))
    if result is not None:
        text = json.dumps(redact(result), indent=2, default=str)
        print(text)
        if settings.result_dir:
            write_result_dir(Path(settings.result_dir), redact(result))
    return EXIT_OK


def write_result_dir(directory: Path, result: dict[str, Any]) -> None:
    """Writes ``result.json`` and one file per top-level scalar value (``version``, ``uri``, ...).

    Argo reads output parameters from files (``valueFrom.path``); booleans are written ``true``/``false``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "result.json").write_text(json.dumps(result, indent=2, default=str))
    for key, value in result.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            text = str(value)
        else:
            continue
        if key.replace("_", "").isalnum():
            (directory / key).write_text(text)
