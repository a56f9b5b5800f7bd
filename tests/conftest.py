"""Shared pytest fixtures of cxr-gan.

Storage fixtures talk to a real HTTP S3 endpoint (moto's threaded server on 127.0.0.1) through plain boto3,
so S3 code paths are exercised over the wire exactly as against MinIO; nothing in boto3 is mocked.

* ``s3_server`` (session): the running server and its ``endpoint_url``; dummy credentials in the environment.
* ``s3_bucket``: a fresh, uniquely named bucket on that server.
* ``s3_options`` (session): the S3 options that reach that server (``endpoint_url``, path addressing), for
  ``open_store(..., s3=...)`` and job Settings; :func:`tests.helpers.s3_options_for` gives them for a given store.
* ``store``: a fresh empty :class:`cxrcore.storage.Store`, once per backend (ids ``file`` and ``s3``).
* ``file_store``: a fresh empty ``file://<tmp_path>/store``.
* ``shrunk_settings``: builds any job's Settings shrunk to seconds on a CPU (:data:`SHRUNK_SETTINGS`), pointing
  at ``file_store``'s location or at a given store (its S3 options included).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import structlog
import botocore.config
import pytest

from cxrcore.storage import Store, open_store
from tests.helpers import s3_options_for

SettingsT = TypeVar("SettingsT")

#: Variants of long tests moved to ``-m slow`` to keep the default run under 15 minutes on CI's 2 CPUs. Each is
#: the second store backend (or a second model) of a test whose other variant stays in the default run, or a
#: workflow whose steps the default run covers one by one.
SLOW_VARIANTS = frozenset(
    {
        "tests/test_train_classifier.py::test_backbone_with_weights_from_a_uri[file]",
        "tests/test_train_classifier.py::test_baseline_and_augmented_share_the_real_test_set[file]",
        "tests/test_train_classifier.py::test_recipe_end_to_end_chooses_on_validation_only[vgg16]",
        "tests/test_gan_train.py::test_gan_train_resumes_exactly_after_a_kill[s3]",
    }
)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks :data:`SLOW_VARIANTS` ``slow``; on a whole-file collection every id must exist (a rename fails)."""
    seen = set()
    for item in items:
        if item.nodeid in SLOW_VARIANTS:
            item.add_marker(pytest.mark.slow)
            seen.add(item.nodeid)
    if any("::" in str(arg) for arg in config.args) or config.option.keyword:
        return  # a selection of tests: the others are simply not collected
    collected_files = {item.nodeid.split("::", 1)[0] for item in items}
    stale = {nodeid for nodeid in SLOW_VARIANTS - seen if nodeid.split("::", 1)[0] in collected_files}
    if stale:
        raise pytest.UsageError(f"SLOW_VARIANTS names tests that no longer exist: {sorted(stale)}")


#: Seconds the S3 test server gets to start and answer before the session fails.
S3_SERVER_START_TIMEOUT_S = 20.0

#: Environment that could point boto3 at real AWS or a proxy instead of the test server.
_AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)

#: Field values that shrink any job to seconds on a CPU: 32 px images, one epoch of one step, batches of 4, an
#: eighth of the GAN's filters, 16 generated images, no pretrained weights; plus the run id, the dataset name
#: :func:`tests.helpers.make_demo_dataset` imports (``demo``) and console logs. :func:`shrunk_settings` applies
#: those its Settings class declares.
SHRUNK_SETTINGS: dict[str, Any] = {
    "run_id": "r1",
    "dataset": "demo",
    "name": "demo",
    "image_size": 32,
    "output_size": 32,
    "epochs": 1,
    "max_steps_per_epoch": 1,
    "batch_size": 4,
    "width_multiplier": 0.125,
    "num_images": 16,
    "weights": "none",
    "log_format": "console",
}


@dataclasses.dataclass(frozen=True)
class S3TestServer:
    """A running S3-compatible test endpoint.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``, for ``endpoint_url=`` of boto3 clients and stores.
        region: The region the dummy credentials are configured for.
    """

    endpoint_url: str
    region: str = "us-east-1"

    def client(self):
        """Returns a plain boto3 S3 client for the server (path-style addressing)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )


def _wait_until_answering(endpoint_url: str, deadline: float) -> None:
    """Polls ``endpoint_url`` until any HTTP answer comes back, failing the session at ``deadline``."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with opener.open(endpoint_url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an HTTP error status is still an answer
        except OSError as exc:
            last_error = exc
            time.sleep(0.1)
    pytest.fail(
        f"The moto S3 test server at {endpoint_url} did not answer within {S3_SERVER_START_TIMEOUT_S:.0f} s "
        f"(last error: {last_error!r})",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3TestServer]:
    """Starts moto's HTTP S3 server on 127.0.0.1 for the session and yields its :class:`S3TestServer`.

    The port is chosen by the kernel when the server binds port 0, so it is free without a probe-then-bind
    race. For the session the environment holds dummy credentials (``testing``/``testing``, region
    ``us-east-1``), ``NO_PROXY=127.0.0.1,localhost``, no proxy or profile variables, and config/credentials
    file paths that do not exist, so no developer or CI setting leaks in; everything is restored afterwards.
    """
    from moto.server import ThreadedMotoServer

    no_files = tmp_path_factory.mktemp("aws-config")
    werkzeug_logger = logging.getLogger("werkzeug")
    previous_level = werkzeug_logger.level
    with pytest.MonkeyPatch.context() as env:
        for name in _AWS_ENV_TO_CLEAR:
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", str(no_files / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_files / "credentials"))
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        env.setenv("no_proxy", "127.0.0.1,localhost")
        werkzeug_logger.setLevel(logging.WARNING)  # one access-log line per request is noise in reports

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        deadline = time.monotonic() + S3_SERVER_START_TIMEOUT_S
        # ThreadedMotoServer.start() waits without a timeout for the bind; bound it from a helper thread.
        starter = threading.Thread(target=server.start, name="moto-start", daemon=True)
        starter.start()
        starter.join(timeout=S3_SERVER_START_TIMEOUT_S)
        if starter.is_alive():
            pytest.fail(
                f"The moto S3 test server did not bind 127.0.0.1 within {S3_SERVER_START_TIMEOUT_S:.0f} s",
                pytrace=False,
            )
        host, port = server.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        try:
            _wait_until_answering(endpoint_url, deadline)
            yield S3TestServer(endpoint_url=endpoint_url)
        finally:
            server.stop()
            werkzeug_logger.setLevel(previous_level)


@pytest.fixture
def s3_bucket(s3_server: S3TestServer) -> Iterator[str]:
    """Creates a uniquely named bucket on the test server and returns its name; emptied and removed after."""
    client = s3_server.client()
    name = f"cxr-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    yield name
    # Free the server's memory (large-object tests upload megabytes); best effort.
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        objects = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
    client.delete_bucket(Bucket=name)


@pytest.fixture(params=["file", "s3"], ids=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, empty store: ``file://<tmp_path>/store`` or ``s3://<bucket>/root`` on the test server.

    The S3 server only starts for the ``s3`` variant, so ``-k file`` runs need no network at all.
    """
    if request.param == "file":
        return open_store((tmp_path / "store").as_uri())
    bucket: str = request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/root", s3=request.getfixturevalue("s3_options"))


@pytest.fixture(scope="session")
def s3_options(s3_server: S3TestServer) -> dict[str, str]:
    """``{"endpoint_url": <test server>, "addressing_style": "path"}``: for ``open_store(uri, s3=...)``,
    ``S3Settings(**s3_options)`` or a job Settings' ``s3=``."""
    return {"endpoint_url": s3_server.endpoint_url, "addressing_style": "path"}


@pytest.fixture
def file_store(tmp_path: Path) -> Store:
    """A fresh, empty ``file://<tmp_path>/store`` (where :func:`shrunk_settings` points by default)."""
    return open_store((tmp_path / "store").as_uri())


@pytest.fixture
def shrunk_settings(tmp_path: Path) -> Callable[..., Any]:
    """A factory of job Settings shrunk for tests: ``shrunk_settings(SettingsClass, *, store=None, **values)``.

    It fills the :data:`SHRUNK_SETTINGS` fields the class declares, then ``values`` (which win). ``store`` is a
    :class:`~cxrcore.storage.Store` (an S3 store brings its S3 options), a URI, or ``None`` for
    ``file://<tmp_path>/store`` (the ``file_store`` location). Example::

        settings = shrunk_settings(GanTrainSettings, store=store, class_name="NORMAL", max_steps_per_epoch=2)
    """

    def make(settings_class: type[SettingsT], *, store: Store | str | None = None, **values: Any) -> SettingsT:
        fields = settings_class.model_fields  # type: ignore[attr-defined]
        shrunk = {name: value for name, value in SHRUNK_SETTINGS.items() if name in fields}
        if store is None:
            location: dict[str, Any] = {"store": (tmp_path / "store").as_uri()}
        elif isinstance(store, str):
            location = {"store": store}
        else:
            location = {"store": store.uri, "s3": s3_options_for(store)}
        return settings_class(**{**shrunk, **location, **values})

    return make


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Jobs and ``cxr`` sub-commands configure logging process-wide; every test gets back the state it had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
