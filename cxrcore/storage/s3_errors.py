"""The one table that sorts S3 failures into transient (exit 75, retried) and permanent (exit 1) ones.

:func:`classify` looks at a boto3/botocore/s3transfer exception and everything in its cause chain (boto3
re-raises some failures wrapped): an S3 error code or HTTP status when the server answered, else the type of
the network or streaming failure. :class:`cxrcore.storage.s3.S3Store` turns the verdict into a
:class:`~cxrcore.storage.base.StoreError` or :class:`~cxrcore.storage.base.TransientStoreError`.
"""

from __future__ import annotations

import dataclasses
import socket

import boto3.exceptions
import botocore.exceptions
import s3transfer.exceptions
import urllib3.exceptions

__all__ = ["BODY_READ_ERRORS", "TRANSLATED_ERRORS", "ErrorKind", "S3Failure", "classify", "client_error_of"]


class ErrorKind:
    """Verdicts of :func:`classify`."""

    NOT_FOUND = "not_found"
    NO_BUCKET = "no_bucket"
    DENIED = "denied"
    CREDENTIALS = "credentials"
    NO_CREDENTIALS = "no_credentials"
    PRECONDITION = "precondition"
    UNREACHABLE = "unreachable"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


#: The table: S3 error codes by verdict. A code not listed falls back to the HTTP status (below).
CODE_KINDS: dict[str, str] = {
    **dict.fromkeys(("NoSuchKey", "404", "NotFound"), ErrorKind.NOT_FOUND),
    **dict.fromkeys(("NoSuchBucket",), ErrorKind.NO_BUCKET),
    **dict.fromkeys(("AccessDenied", "403", "Forbidden", "AllAccessDisabled"), ErrorKind.DENIED),
    **dict.fromkeys(
        ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"),
        ErrorKind.CREDENTIALS,
    ),
    **dict.fromkeys(("PreconditionFailed", "412", "ConditionalRequestConflict"), ErrorKind.PRECONDITION),
    **dict.fromkeys(
        (
            "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
            "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
            "BandwidthLimitExceeded", "EC2ThrottledException", "ProvisionedThroughputExceededException",
            "TransactionInProgressException", "PriorRequestNotComplete", "RequestTimeout", "RequestTimeoutException",
            "RequestTimeTooSkewed", "InternalError", "InternalFailure", "ServiceUnavailable",
            "ServiceUnavailableException", "OperationAborted", "XMinioServerNotInitialized",
            "XMinioStorageFull", "XMinioReadQuorum", "XMinioWriteQuorum", "500", "502", "503", "504",
        ),
        ErrorKind.TRANSIENT,
    ),
}

#: HTTP statuses that are transient whatever the code: request timeout, throttling, every 5xx.
TRANSIENT_STATUSES = frozenset({408, 429})

#: Failures while reading a response body: the request succeeded, then the stream broke or stalled. botocore
#: does not retry them (s3transfer's downloads do, per part); whole-object reads retry them.
BODY_READ_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ReadTimeoutError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    s3transfer.exceptions.RetriesExceededError,
    boto3.exceptions.RetriesExceededError,
)

#: Every exception type :class:`cxrcore.storage.s3.S3Store` translates (the rest are programming errors).
TRANSLATED_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    boto3.exceptions.Boto3Error,
    s3transfer.exceptions.RetriesExceededError,
    urllib3.exceptions.HTTPError,
)

#: Exception types by verdict, checked in order (a TLS failure is a ``ConnectionError`` to botocore, but
#: retrying a bad certificate does not help, so it comes first).
TYPE_KINDS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((botocore.exceptions.SSLError,), ErrorKind.PERMANENT),
    (
        (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError),
        ErrorKind.NO_CREDENTIALS,
    ),
    (
        (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ProxyConnectionError,
        ),
        ErrorKind.UNREACHABLE,
    ),
    (
        (
            botocore.exceptions.ConnectionError,
            botocore.exceptions.HTTPClientError,
            botocore.exceptions.CredentialRetrievalError,
            *BODY_READ_ERRORS,
            ConnectionError,
            TimeoutError,
            socket.timeout,
        ),
        ErrorKind.TRANSIENT,
    ),
)


@dataclasses.dataclass(frozen=True)
class S3Failure:
    """The verdict on one failure.

    Attributes:
        kind: One of :class:`ErrorKind`.
        code: The S3 error code, when the server answered.
        status: The HTTP status, when the server answered (``0`` otherwise).
        message: The server's message, or the exception's type and text.
    """

    kind: str
    code: str = ""
    status: int = 0
    message: str = ""

    @property
    def transient(self) -> bool:
        """Whether a retry may succeed."""
        return self.kind in (ErrorKind.TRANSIENT, ErrorKind.UNREACHABLE)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and the last exception s3transfer's retries saw, without cycles."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        chain.append(current)
        last = getattr(current, "last_exception", None)
        pending.extend([current.__cause__, current.__context__, last if isinstance(last, BaseException) else None])
    return chain


def client_error_of(exc: BaseException) -> botocore.exceptions.ClientError | None:
    """The botocore ``ClientError`` behind ``exc`` (boto3 re-raises some as ``S3UploadFailedError``), if any."""
    for current in _chain(exc):
        if isinstance(current, botocore.exceptions.ClientError):
            return current
    return None


def classify(exc: BaseException) -> S3Failure:
    """Sorts a failure of an S3 call by the table above.

    Args:
        exc: What boto3, botocore or s3transfer raised.

    Returns:
        The verdict; an unknown failure is permanent.
    """
    client_error = client_error_of(exc)
    if client_error is not None:
        error = client_error.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or "no message"
        status = int(client_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        kind = CODE_KINDS.get(code)
        if kind is None:
            transient = status >= 500 or status in TRANSIENT_STATUSES
            kind = ErrorKind.TRANSIENT if transient else ErrorKind.PERMANENT
        return S3Failure(kind, code, status, message)
    for current in _chain(exc):
        for types, kind in TYPE_KINDS:
            if isinstance(current, types):
                return S3Failure(kind, message=f"{type(current).__name__}: {current}")
    return S3Failure(ErrorKind.PERMANENT, message=f"{type(exc).__name__}: {exc}")
