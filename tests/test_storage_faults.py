"""S3 failures injected over the wire: a fault proxy on 127.0.0.1 between boto3 and the moto server.

Nothing in boto3 is mocked: :class:`FaultProxy` forwards every HTTP request to the moto server and, when a
:class:`Fault` matches, resets the connection in the middle of the response body, answers an error status,
or delays the answer. The tests check that whole-object reads survive body resets (and give up as a
transient failure, exit 75), and that the one classification table sorts failures into transient and
permanent ones.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest
import s3transfer.exceptions
import urllib3.exceptions

from cxrcore.storage import S3Store, StoreError, TransientStoreError
from cxrcore.storage.s3_errors import ErrorKind, classify

pytestmark = pytest.mark.timeout(120)

#: Seconds any proxied exchange with moto may take before the proxy gives up on it.
_UPSTREAM_TIMEOUT_S = 30
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
_ERROR_BODY = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"


@dataclasses.dataclass
class Fault:
    """One kind of failure the proxy injects into matching requests.

    Attributes:
        method: HTTP method to match (``GET``, ``PUT``, ...).
        path_contains: Substring of the request path (key) to match; ``""`` matches any path.
        action: ``"reset_body"`` (send headers and half the body, then a TCP reset), ``"status"`` (answer
            ``status`` with the S3 error ``code``) or ``"delay"`` (wait ``delay_s``, then forward).
        times: How many matching requests get the fault; then requests pass through.
        status: HTTP status of ``"status"``.
        code: S3 error code of ``"status"``.
        delay_s: Seconds of ``"delay"``.
        header: Only requests carrying this header match (``""``: any).
        query_absent: Only requests whose query string lacks this text match (``""``: any).
        injected: How many times it fired (read by the tests).
    """

    method: str
    path_contains: str = ""
    action: str = "reset_body"
    times: int = 1
    status: int = 503
    code: str = "ServiceUnavailable"
    delay_s: float = 0.0
    header: str = ""
    query_absent: str = ""
    injected: int = 0


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of the moto server, injecting :class:`Fault` s.

    Args:
        upstream: ``http://host:port`` of the moto server.
    """

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.faults: list[Fault] = []
        self.requests = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                proxy.handle(self)

            do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # resets are on purpose
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the proxy."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, fault: Fault) -> Fault:
        """Arms ``fault`` and returns it (its ``injected`` count grows as it fires)."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def _match(self, method: str, path: str, headers: http.client.HTTPMessage) -> Fault | None:
        query = urllib.parse.urlsplit(path).query
        with self._lock:
            self.requests += 1
            for fault in self.faults:
                if (
                    fault.injected < fault.times
                    and fault.method == method
                    and fault.path_contains in urllib.parse.urlsplit(path).path
                    and (not fault.header or fault.header in headers)
                    and (not fault.query_absent or fault.query_absent not in query)
                ):
                    fault.injected += 1
                    return fault
        return None

    def handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        """Forwards one request, applying the first matching fault."""
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        fault = self._match(request.command, request.path, request.headers)
        if fault is not None and fault.action == "status":
            self._answer_error(request, fault)
            return
        if fault is not None and fault.action == "delay":
            time.sleep(fault.delay_s)
        status, reason, headers, data = self._forward(request, body)
        request.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                request.send_header(name, value)
        declared = headers_length(headers) if request.command == "HEAD" else len(data)
        request.send_header("Content-Length", str(declared))
        request.end_headers()
        if fault is not None and fault.action == "reset_body" and len(data) > 1:
            request.wfile.write(data[: len(data) // 2])
            request.wfile.flush()
            # SO_LINGER 0: close() sends a TCP reset instead of a graceful end of stream.
            request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.connection.close()
            request.close_connection = True
            return
        request.wfile.write(data)

    def _forward(
        self, request: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=_UPSTREAM_TIMEOUT_S)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(request.command, request.path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            connection.close()

    @staticmethod
    def _answer_error(request: http.server.BaseHTTPRequestHandler, fault: Fault) -> None:
        data = _ERROR_BODY.format(code=fault.code, message=f"injected {fault.status}").encode()
        request.send_response(fault.status)
        request.send_header("Content-Type", "application/xml")
        request.send_header("Content-Length", str(0 if request.command == "HEAD" else len(data)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def headers_length(headers: list[tuple[str, str]]) -> int:
    """The ``Content-Length`` among response headers (0 when absent)."""
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value)
    return 0


@pytest.fixture
def proxy(s3_server) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's moto server, stopped after the test."""
    with FaultProxy(s3_server.endpoint_url) as running:
        yield running


def proxied_store(proxy: FaultProxy, bucket: str, *, max_attempts: int = 4) -> S3Store:
    """An S3 store that talks to moto through ``proxy``, with short pauses between read attempts."""
    store = S3Store(
        f"s3://{bucket}/root", endpoint_url=proxy.endpoint_url, addressing_style="path", max_attempts=max_attempts
    )
    store.retry_base_delay_s = 0.01
    return store


# ---------------------------------------------------------------------------------------------- body resets
def test_get_bytes_survives_connection_resets_mid_body(proxy: FaultProxy, s3_bucket: str) -> None:
    store = proxied_store(proxy, s3_bucket, max_attempts=4)
    data = bytes(range(256)) * 400
    store.put_bytes("blob.bin", data)
    fault = proxy.add(Fault("GET", "/root/blob.bin", "reset_body", times=3))

    assert store.get_bytes("blob.bin") == data
    assert fault.injected == 3


def test_get_bytes_gives_up_transiently_when_resets_outlast_the_retries(proxy: FaultProxy, s3_bucket: str) -> None:
    store = proxied_store(proxy, s3_bucket, max_attempts=3)
    store.put_bytes("blob.bin", b"x" * 50_000)
    fault = proxy.add(Fault("GET", "/root/blob.bin", "reset_body", times=100))

    with pytest.raises(TransientStoreError, match="blob.bin"):
        store.get_bytes("blob.bin")
    assert fault.injected == 3  # max_attempts whole-object reads, then exit 75


def test_get_file_survives_more_resets_than_s3transfer_retries_alone(
    proxy: FaultProxy, s3_bucket: str, tmp_path: Path
) -> None:
    store = proxied_store(proxy, s3_bucket, max_attempts=8)
    data = b"0123456789abcdef" * 8192
    store.put_bytes("model.keras", data)
    fault = proxy.add(Fault("GET", "/root/model.keras", "reset_body", times=6))

    path = store.get_file("model.keras", tmp_path / "model.keras")

    assert path.read_bytes() == data
    assert fault.injected == 6


def test_get_file_gives_up_transiently_and_the_job_exits_75(
    proxy: FaultProxy, s3_bucket: str, tmp_path: Path, capsys
) -> None:
    from cxrcore.config import PrepareSettings
    from cxrcore.runtime import EXIT_TRANSIENT, run_job

    store = proxied_store(proxy, s3_bucket, max_attempts=2)
    store.put_bytes("model.keras", b"m" * 40_000)
    proxy.add(Fault("GET", "/root/model.keras", "reset_body", times=1000))

    with pytest.raises(TransientStoreError, match="model.keras"):
        store.get_file("model.keras", tmp_path / "model.keras")
    assert not (tmp_path / "model.keras").exists()

    def job(settings) -> None:
        settings.open_store().get_file("model.keras", tmp_path / "again.keras")

    argv = ["--source", "x", "--store", f"s3://{s3_bucket}/root", f"--s3.endpoint-url={proxy.endpoint_url}",
            "--s3.max-attempts", "2", "--s3.addressing-style", "path"]
    assert run_job("t", PrepareSettings, job, argv) == EXIT_TRANSIENT
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------- classification
@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (500, "InternalError", True),
        (503, "SlowDown", True),
        (502, "BadGateway", True),
        (429, "TooManyRequests", True),
        (400, "InvalidArgument", False),
        (403, "AccessDenied", False),
    ],
)
def test_error_statuses_are_classified_by_the_table(
    proxy: FaultProxy, s3_bucket: str, status: int, code: str, transient: bool
) -> None:
    store = proxied_store(proxy, s3_bucket, max_attempts=2)
    store._bucket_verified = True  # a 403 is about the object here, not a missing bucket
    fault = proxy.add(Fault("PUT", "/root/a.txt", "status", times=100, status=status, code=code))

    with pytest.raises(StoreError) as caught:
        store.put_bytes("a.txt", b"1")

    assert isinstance(caught.value, TransientStoreError) is transient
    assert "a.txt" in str(caught.value)
    assert fault.injected == (2 if transient else 1)  # botocore retries transient answers only


def test_a_transient_status_that_clears_within_the_retries_succeeds(proxy: FaultProxy, s3_bucket: str) -> None:
    store = proxied_store(proxy, s3_bucket, max_attempts=3)
    fault = proxy.add(Fault("PUT", "/root/a.txt", "status", times=2, status=503, code="SlowDown"))
    slow = proxy.add(Fault("GET", "/root/a.txt", "delay", times=1, delay_s=0.3))

    store.put_bytes("a.txt", b"payload")

    assert store.get_bytes("a.txt") == b"payload"
    assert (fault.injected, slow.injected) == (2, 1)


def test_a_server_without_conditional_writes_falls_back_to_plain_puts(proxy: FaultProxy, s3_bucket: str) -> None:
    store = proxied_store(proxy, s3_bucket)
    refused = proxy.add(
        Fault("PUT", "/root/out/_SUCCESS", "status", times=100, status=501, code="NotImplemented",
              header="If-None-Match")
    )

    with store.commit("out", inputs={"v": 1}) as transaction:
        transaction.put_bytes("a.txt", b"1")

    assert refused.injected == 1
    assert store.require_committed("out").outputs["a.txt"]["size"] == 1
    assert store._conditional_writes is False


def test_moto_honours_if_none_match_on_put(s3_server, s3_bucket: str) -> None:
    store = S3Store(f"s3://{s3_bucket}/root", endpoint_url=s3_server.endpoint_url, addressing_style="path")

    assert store._create_exclusive("lock", b"first", "0" * 64) is True
    assert store._create_exclusive("lock", b"second", "0" * 64) is False
    assert store.get_bytes("lock") == b"first"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (botocore.exceptions.ResponseStreamingError(error="reset"), ErrorKind.TRANSIENT),
        (botocore.exceptions.IncompleteReadError(actual_bytes=1, expected_bytes=2), ErrorKind.TRANSIENT),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), ErrorKind.TRANSIENT),
        (botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"), ErrorKind.TRANSIENT),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), ErrorKind.UNREACHABLE),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="http://x"), ErrorKind.UNREACHABLE),
        (s3transfer.exceptions.RetriesExceededError(ConnectionResetError()), ErrorKind.TRANSIENT),
        (urllib3.exceptions.ProtocolError("Connection broken"), ErrorKind.TRANSIENT),
        (botocore.exceptions.SSLError(endpoint_url="http://x", error="bad certificate"), ErrorKind.PERMANENT),
        (botocore.exceptions.NoCredentialsError(), ErrorKind.NO_CREDENTIALS),
        (botocore.exceptions.ParamValidationError(report="bad"), ErrorKind.PERMANENT),
    ],
)
def test_classification_table_sorts_network_failures(exc: BaseException, kind: str) -> None:
    assert classify(exc).kind == kind
