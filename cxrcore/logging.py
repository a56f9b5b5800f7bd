"""Structured logging for every job: JSON on a cluster, readable on a terminal, secrets never printed.

Call :func:`configure_logging` once in a job's ``main()``; then ``log = get_logger(__name__)`` and
``log.info("event_name", key=value)``. :func:`progress` logs rate-limited progress of long loops.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import structlog

__all__ = ["configure_logging", "get_logger", "progress", "redact", "redact_secrets", "redact_text"]

T = TypeVar("T")

REDACTED = "***"
_SECRET_KEY_NAMES = re.compile(
    r"(secret|password|passwd|token|credential|authorization|api[_-]?key|access[_-]?key|session[_-]?key|"
    r"private[_-]?key|bearer|salt)",
    re.IGNORECASE,
)
_SECRET_VALUE_PATTERNS = [
    # AWS access key ids (AKIA..., ASIA... for STS).
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"),
    # Credentials embedded in URLs: scheme://user:pass@host, also scheme:/user:pass@host (a URL that went through
    # a path, which collapses "//") and scheme:user:pass@host.
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    re.compile(r"(?<=[A-Za-z0-9]:/)[^/\s:@'\"]+:[^/\s@'\"]+(?=@)"),
    re.compile(r"(?i)(?<=https:)[^/\s:@'\"]+:[^/\s@'\"]+(?=@)"),
    re.compile(r"(?i)(?<=http:)[^/\s:@'\"]+:[^/\s@'\"]+(?=@)"),
    # Bearer tokens and Authorization headers.
    re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{8,}"),
    # aws_secret_access_key = ..., X-Amz-Signature=..., X-Amz-Credential=... in text or presigned URLs.
    re.compile(r"(?i)(?<=aws_secret_access_key)\s*[=:]\s*\S+"),
    re.compile(r"(?i)(?<=x-amz-signature=)[0-9a-f]+"),
    re.compile(r"(?i)(?<=x-amz-credential=)[^&\s]+"),
    re.compile(r"(?i)(?<=x-amz-security-token=)[^&\s]+"),
]


def _secret_values_from_env() -> list[str]:
    names = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "ARGO_TOKEN", "CXR_ARGO_TOKEN", "CXR_PATIENT_SALT")
    return [value for name in names if len(value := os.environ.get(name, "")) >= 8]


def redact(value: Any, *, known_secrets: Iterable[str] = ()) -> Any:
    """Returns ``value`` with secret-looking substrings replaced by ``***`` (recursing into containers)."""
    if isinstance(value, str):
        for secret in known_secrets:
            value = value.replace(secret, REDACTED)
        for pattern in _SECRET_VALUE_PATTERNS:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and _SECRET_KEY_NAMES.search(key) and item not in (None, "")
            else redact(item, known_secrets=known_secrets)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item, known_secrets=known_secrets) for item in value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}", known_secrets=known_secrets)
    return value


def redact_text(text: str) -> str:
    """``text`` with secret-looking substrings and the environment's known secrets replaced by ``***``.

    For messages that bypass the log processor (settings errors printed to stderr, exception texts).
    """
    return redact(text, known_secrets=_secret_values_from_env())


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: redacts secrets from every event (keys and values, nested)."""
    return redact(event_dict, known_secrets=_secret_values_from_env())


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at write time (test runners and notebooks swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())


def configure_logging(level: str = "INFO", log_format: str = "auto", *, stream=None) -> None:
    """Configures structlog (and stdlib logging of libraries) for one process.

    Args:
        level: DEBUG, INFO, WARNING or ERROR.
        log_format: ``json``, ``console`` or ``auto`` (JSON unless the stream is a terminal;
            ``CXR_LOG_FORMAT=json`` forces JSON).
        stream: Where logs go; default the current ``sys.stderr`` (stdout stays free for a job's JSON result).
    """
    if log_format not in ("auto", "json", "console"):
        raise ValueError(f"log_format must be auto, json or console. Received: log_format={log_format!r}")
    stream = stream or _CurrentStderr()
    env_format = os.environ.get("CXR_LOG_FORMAT")
    if log_format == "auto" and env_format in ("json", "console"):
        log_format = env_format
    use_json = log_format == "json" or (log_format == "auto" and not getattr(stream, "isatty", lambda: False)())
    level_number = logging.getLevelName(level.upper())
    if not isinstance(level_number, int):
        raise ValueError(f"Unknown log level. Received: level={level!r}")

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Library logs (botocore, tensorflow's absl) go through the same redaction, at WARNING and above.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *shared[1:], renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level_number, logging.WARNING))


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    """Returns a lazy structlog logger bound with ``component=name`` and ``initial`` values."""
    if name:
        initial = {"component": name, **initial}
    # A lazy proxy: module-level loggers created at import time still follow configure_logging() called later.
    return structlog.get_logger(**initial)


def progress(
    items: Iterable[T],
    *,
    total: int | None,
    event: str,
    logger: Any | None = None,
    every_seconds: float = 10.0,
    **fields: Any,
) -> Iterator[T]:
    """Yields ``items`` and logs ``event`` with done/total/rate/eta at most every ``every_seconds``.

    The last item is always logged, so a job's log ends with 100%.
    """
    log = logger or get_logger()
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_seconds or (total is not None and done == total):
            elapsed = now - start
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (total - done) / rate if total and rate > 0 else None
            log.info(
                event,
                done=done,
                total=total,
                percent=round(100.0 * done / total, 1) if total else None,
                rate_per_s=round(rate, 2),
                eta_s=round(eta, 1) if eta is not None else None,
                **fields,
            )
            last = now
