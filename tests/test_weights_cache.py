"""``python -m cxrcore.models.weights_cache`` and ImageNet weights in the training job, offline.

A local HTTP server on 127.0.0.1 plays the weights mirror: it serves no-top weight files generated here (random
initialisation, Keras' legacy ``.h5`` format under Keras' own file names, as the official ``*_notop.h5`` files)
and their ``SHA256SUMS``. Every other network access fails the test. Covered: the table of file names, origins
and hashes against the installed Keras (all six backbones), baking through Keras' download path, re-runs that
fetch nothing, ``--check``, failures that name the backbone and URL, Keras' own ``weights="imagenet"`` loader
finding the baked file (also from a read-only home, through links in the writable fallback cache), classifiers
loading a baked file from a path and from an ``s3://`` URI (moto), and the training job failing fast when the
ImageNet cache is empty.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses
import functools
import hashlib
import http.server
import importlib
import inspect
import json
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras.src.backend import config as keras_config  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402
from keras.src.utils import file_utils  # noqa: E402

from cxrcore.steps import train_classifier as train_classifier_step  # noqa: E402
from cxrcore.config import S3Settings, TrainClassifierSettings  # noqa: E402
from cxrcore.models import BACKBONES, build_classifier, get_base_model  # noqa: E402
from cxrcore.models import weights_cache  # noqa: E402
from cxrcore.models.weights_cache import IMAGENET_NO_TOP, WeightsCacheError  # noqa: E402
from tests.helpers import make_demo_dataset  # noqa: E402

#: Backbones whose weight files are generated and served (the smallest two: 16 MB and 59 MB).
SERVED = ("efficientnetb0", "vgg16")
REPO_ROOT = Path(__file__).resolve().parents[1]
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails any Keras download that is not for 127.0.0.1 and returns the list of attempted URLs."""
    attempts: list[str] = []
    real_urlretrieve = file_utils.urlretrieve

    def guarded(url, *args, **kwargs):
        attempts.append(url)
        if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
            raise AssertionError(f"Network access outside 127.0.0.1 attempted: {url}")
        return real_urlretrieve(url, *args, **kwargs)

    monkeypatch.setattr(file_utils, "urlretrieve", guarded)
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in (weights_cache.MIRROR_ENV, weights_cache.HASHES_ENV):
        monkeypatch.delenv(name, raising=False)
    return attempts


@dataclasses.dataclass
class Mirror:
    """The weights mirror: ``url`` serves ``root`` (files under Keras' names and ``SHA256SUMS``)."""

    url: str
    root: Path
    generated: dict[str, list[np.ndarray]]
    requests: list[str]

    def file_requests(self) -> list[str]:
        return [path for path in self.requests if path.endswith(".h5")]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, requests: list[str], **kwargs):
        self._requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


def _write_legacy_h5(model, path: Path) -> None:
    """Saves weights in Keras' legacy HDF5 layout, the format of Keras' ``*_notop.h5`` ImageNet files."""
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """Generates the served files (bases at the ImageNet input shape, 224 px) and serves them on 127.0.0.1."""
    root = tmp_path_factory.mktemp("mirror")
    generated: dict[str, list[np.ndarray]] = {}
    for index, name in enumerate(SERVED):
        keras.utils.set_random_seed(index)
        base = BACKBONES[name].constructor(include_top=False, weights=None, input_shape=(224, 224, 3))
        _write_legacy_h5(base, root / IMAGENET_NO_TOP[name].fname)
        generated[name] = base.get_weights()
        keras.backend.clear_session()
    (root / "SHA256SUMS").write_text(
        "".join(f"{_sha256(root / IMAGENET_NO_TOP[name].fname)}  {IMAGENET_NO_TOP[name].fname}\n" for name in SERVED)
    )
    # A corrupted copy (same size, other bytes) and an empty folder, for the failure tests.
    (root / "corrupt").mkdir()
    good = (root / IMAGENET_NO_TOP["efficientnetb0"].fname).read_bytes()
    (root / "corrupt" / IMAGENET_NO_TOP["efficientnetb0"].fname).write_bytes(good[:-4096] + b"\0" * 4096)
    (root / "empty").mkdir()

    requests: list[str] = []
    handler = functools.partial(_QuietHandler, requests=requests, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="weights-mirror", daemon=True)
    thread.start()
    try:
        yield Mirror(f"http://127.0.0.1:{server.server_address[1]}/", root, generated, requests)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def baked(mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras home baked from the mirror (through the Python API)."""
    home = tmp_path_factory.mktemp("keras-home")
    weights_cache.bake(SERVED, keras_home=home, mirror=mirror.url, hashes=mirror.url + "SHA256SUMS")
    return home


def _assert_same_weights(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------------------- the table
def test_table_covers_every_backbone():
    assert list(IMAGENET_NO_TOP) == list(BACKBONES)
    for name, entry in IMAGENET_NO_TOP.items():
        assert entry.backbone == name
        assert entry.origin.endswith("/" + entry.fname) and entry.fname.endswith("_notop.h5")


#: Per backbone: ``(origin, hash or None)`` from the constants of its ``keras.src.applications`` module.
_KERAS_CONSTANTS = {
    "inceptionv3": lambda module, fname: (module.WEIGHTS_PATH_NO_TOP, None),
    "resnet50": lambda module, fname: (module.BASE_WEIGHTS_PATH + fname, module.WEIGHTS_HASHES["resnet50"][1]),
    "efficientnetb0": lambda module, fname: (module.BASE_WEIGHTS_PATH + fname, module.WEIGHTS_HASHES["b0"][1]),
    "vgg16": lambda module, fname: (module.WEIGHTS_PATH_NO_TOP, None),
    "densenet201": lambda module, fname: (module.DENSENET201_WEIGHT_PATH_NO_TOP, None),
    "xception": lambda module, fname: (module.WEIGHTS_PATH_NO_TOP, None),
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_table_matches_installed_keras(name: str, monkeypatch: pytest.MonkeyPatch):
    """Each entry is exactly what the installed ``keras.applications`` asks ``get_file`` for (and in its source)."""
    entry = IMAGENET_NO_TOP[name]
    module = importlib.import_module(entry.keras_module)
    origin, file_hash = _KERAS_CONSTANTS[name](module, entry.fname)
    assert entry.origin == origin, f"{entry.keras_module} changed the no-top origin of {name}"
    # Hashes are dict constants (ResNet, EfficientNet) or literals in the get_file call (the others).
    assert entry.file_hash == (file_hash or entry.file_hash) and entry.file_hash in inspect.getsource(module)

    calls: list[tuple[tuple, dict]] = []

    class Intercepted(Exception):
        pass

    def fake_get_file(*args, **kwargs):
        calls.append((args, kwargs))
        raise Intercepted

    monkeypatch.setattr(file_utils, "get_file", fake_get_file)
    spec = BACKBONES[name]
    size = spec.min_input_size
    with pytest.raises(Intercepted):
        spec.constructor(include_top=False, weights="imagenet", input_shape=(size, size, 3))
    keras.backend.clear_session()
    [(args, kwargs)] = calls
    assert tuple(args) == (entry.fname, entry.origin), f"Keras now fetches {args} for {name}; update IMAGENET_NO_TOP"
    assert kwargs == {"cache_subdir": "models", "file_hash": entry.file_hash}


# ---------------------------------------------------------------------------------------------------- baking
def test_bake_from_mirror_then_rerun_and_check(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    home = tmp_path / "keras"
    hashes = mirror.url + "SHA256SUMS"
    flags = ["--backbones", *SERVED, "--keras-home", str(home), "--hashes", hashes, "--log-format", "json"]
    before = len(mirror.file_requests())

    assert weights_cache.main([*flags, "--mirror", mirror.url]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["keras_home"] == str(home)
    for name in SERVED:
        fname = IMAGENET_NO_TOP[name].fname
        path = home / "models" / fname
        assert result["files"][name] == str(path)
        assert path.read_bytes() == (mirror.root / fname).read_bytes()
        assert f"/{fname}" in mirror.file_requests()[before:]
    events = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert {"weights_download", "weights_baked", "weights_not_keras_imagenet", "weights_bake_done"} <= {
        event["event"] for event in events
    }
    mtimes = {path: path.stat().st_mtime_ns for path in (home / "models").iterdir()}

    # A rerun (mirror from the environment this time) fetches no weight file and changes nothing.
    requests_after_bake = len(mirror.file_requests())
    monkeypatch.setenv(weights_cache.MIRROR_ENV, mirror.url)
    assert weights_cache.main(flags) == 0
    assert len(mirror.file_requests()) == requests_after_bake
    assert {path: path.stat().st_mtime_ns for path in (home / "models").iterdir()} == mtimes
    assert "weights_cached" in capsys.readouterr().err

    # --check: complete for the mirror's hashes; not Keras' files, and the other four backbones are missing.
    assert weights_cache.main([*flags, "--check"]) == 0
    capsys.readouterr()
    assert weights_cache.main(["--backbones", *SERVED, "--keras-home", str(home), "--check"]) == 1
    assert "does not match hash" in capsys.readouterr().err
    with pytest.raises(WeightsCacheError) as error:
        weights_cache.check(keras_home=home)
    for name, entry in IMAGENET_NO_TOP.items():
        assert name in str(error.value) and (name in SERVED or entry.fname in str(error.value))


def test_bake_failures_name_the_backbone_and_url(mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture):
    home = tmp_path / "keras"
    hashes = mirror.url + "SHA256SUMS"
    target = home / "models" / IMAGENET_NO_TOP["efficientnetb0"].fname

    # Wrong content (hash mismatch): fails and leaves no file behind.
    corrupt = mirror.url + "corrupt/"
    code = weights_cache.main(
        ["--backbones", "efficientnetb0", "--keras-home", str(home), "--mirror", corrupt, "--hashes", hashes]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "efficientnetb0" in err and corrupt + IMAGENET_NO_TOP["efficientnetb0"].fname in err
    assert not target.exists()

    # Absent on the mirror (HTTP 404).
    empty = mirror.url + "empty/"
    code = weights_cache.main(
        ["--backbones", "vgg16", "--keras-home", str(home), "--mirror", empty, "--hashes", hashes]
    )
    err = capsys.readouterr().err
    assert code == 1 and "vgg16" in err and empty + IMAGENET_NO_TOP["vgg16"].fname in err and "404" in err

    # A corrupt file already in the cache is replaced, not trusted.
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"not an hdf5 file")
    weights_cache.bake(["efficientnetb0"], keras_home=home, mirror=mirror.url, hashes=hashes)
    assert _sha256(target) == _sha256(mirror.root / target.name)

    # Without a manifest entry nothing is downloaded unverified; Keras' own hashes reject the generated files.
    with pytest.raises(WeightsCacheError, match="resnet50"):
        weights_cache.bake(["resnet50"], keras_home=home, mirror=mirror.url, hashes=hashes)
    with pytest.raises(WeightsCacheError, match="vgg16") as error:
        weights_cache.bake(["vgg16"], keras_home=home, mirror=mirror.url)
    assert mirror.url + IMAGENET_NO_TOP["vgg16"].fname in str(error.value)
    assert not (home / "models" / IMAGENET_NO_TOP["vgg16"].fname).exists()

    # Bad arguments: exit 2.
    assert weights_cache.main(["--keras-home", str(home), "--mirror", "ftp://mirror/"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        weights_cache.main(["--backbones", "alexnet"])
    assert exit_info.value.code == 2


def test_hash_manifest_format(tmp_path: Path):
    manifest = tmp_path / "SHA256SUMS"
    digest = "ab" * 32
    manifest.write_text(f"# comment\n\n{digest.upper()}  ./a_notop.h5\n{digest} *b_notop.h5\n")
    assert weights_cache.read_hash_manifest(str(manifest)) == {"a_notop.h5": digest, "b_notop.h5": digest}
    manifest.write_text("d41d8cd98f00b204e9800998ecf8427e  a_notop.h5\n")  # md5 is not accepted
    with pytest.raises(ValueError, match="Line 1"):
        weights_cache.read_hash_manifest(str(manifest))
    with pytest.raises(WeightsCacheError, match="absent"):
        weights_cache.read_hash_manifest(str(tmp_path / "absent"))


# ---------------------------------------------------------------------------------------------------- loading
def test_keras_imagenet_loader_finds_the_baked_file_offline(
    mirror: Mirror, baked: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
):
    """``keras.applications.VGG16(weights="imagenet")`` reads the baked file from KERAS_HOME without a download.

    The generated file cannot have Keras' md5, so only the expected hash is swapped for its sha256; file name,
    origin, cache folder and Keras home are Keras' own.
    """
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(baked))
    entry = IMAGENET_NO_TOP["vgg16"]
    real_get_file = file_utils.get_file
    seen: list[str] = []

    def get_file_with_mirror_hash(fname, origin, **kwargs):
        assert (fname, origin, kwargs["file_hash"]) == (entry.fname, entry.origin, entry.file_hash)
        path = real_get_file(fname, origin, **{**kwargs, "file_hash": _sha256(mirror.root / fname)})
        seen.append(path)
        return path

    monkeypatch.setattr(file_utils, "get_file", get_file_with_mirror_hash)
    base = keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=(64, 64, 3))
    assert seen == [str(baked / "models" / entry.fname)] and no_network == []
    _assert_same_weights(base.get_weights(), mirror.generated["vgg16"])
    keras.backend.clear_session()

    # Keras would refuse (and re-download) a file without its own hash: the job check says so up front.
    with pytest.raises(WeightsCacheError, match="does not match Keras' hash"):
        weights_cache.require_imagenet_weights("vgg16")


@pytest.mark.parametrize("name", SERVED)
def test_classifier_loads_the_baked_file_by_path(mirror: Mirror, baked: Path, name: str):
    path = baked / "models" / IMAGENET_NO_TOP[name].fname
    model = build_classifier(name, input_size=BACKBONES[name].min_input_size, weights=str(path))
    _assert_same_weights(get_base_model(model).get_weights(), mirror.generated[name])
    keras.backend.clear_session()


def test_weights_from_an_s3_uri_are_resolved_at_the_job_edge(
    mirror: Mirror, baked: Path, s3_server, s3_bucket: str, s3_options: dict[str, str], tmp_path: Path
):
    entry = IMAGENET_NO_TOP["efficientnetb0"]
    s3_server.client().upload_file(str(baked / "models" / entry.fname), s3_bucket, f"weights/{entry.fname}")
    uri = f"s3://{s3_bucket}/weights/{entry.fname}"

    def settings(weights: str) -> TrainClassifierSettings:
        return TrainClassifierSettings(
            store=f"s3://{s3_bucket}/study",
            run_id="r1",
            model="efficientnetb0",
            condition="baseline",
            weights=weights,
            s3=S3Settings(**s3_options),
        )

    local, info = train_classifier_step._resolve_weights(settings(uri), tmp_path)
    assert Path(local).name == entry.fname and Path(local).is_relative_to(tmp_path)
    assert info == {"weights": uri, "weights_sha256": _sha256(baked / "models" / entry.fname)}
    model = build_classifier("efficientnetb0", input_size=32, weights=local)
    _assert_same_weights(get_base_model(model).get_weights(), mirror.generated["efficientnetb0"])
    keras.backend.clear_session()

    with pytest.raises(FileNotFoundError, match="absent_notop.h5"):
        train_classifier_step._resolve_weights(settings(f"s3://{s3_bucket}/weights/absent_notop.h5"), tmp_path)


# ---------------------------------------------------------------------------------------------------- jobs
def test_imagenet_without_cache_fails_fast(
    tmp_path: Path, file_store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, no_network: list[str]
):
    store = file_store
    make_demo_dataset(store, tmp_path, per_class=8, size=32)
    empty_home = tmp_path / "keras-home"
    empty_home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(empty_home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(empty_home))  # what Keras read at import

    def no_dataset(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the weights check")

    monkeypatch.setattr(train_classifier_step, "load_dataset", no_dataset)
    from jobs.train_classifier import main

    capsys.readouterr()
    code = main([
        f"--store={store.uri}", "--run-id=r1", "--dataset=demo", "--model=resnet50", "--condition=baseline",
        "--epochs=1", "--image-size=32", "--weights=imagenet", "--log-format=json",
    ])
    err = capsys.readouterr().err
    assert code == 1  # README: 1 = the job failed, the log names the file and the problem
    failure = next(json.loads(line) for line in err.splitlines() if '"job_failed"' in line)["error"]
    fname = IMAGENET_NO_TOP["resnet50"].fname
    assert str(empty_home / "models" / fname) in failure and f"KERAS_HOME={empty_home}" in failure
    assert "BAKE_IMAGENET_WEIGHTS=true" in failure and "s3://" in failure
    assert no_network == []
    assert not (empty_home / "models" / fname).exists()


def test_require_imagenet_weights_explains_an_unwritable_keras_home(
    baked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(baked))
    fallback = tmp_path / ".keras" / "models"
    monkeypatch.setattr(weights_cache, "effective_cache_dir", lambda home=None: fallback)
    with pytest.raises(WeightsCacheError, match="not writable") as error:
        weights_cache.require_imagenet_weights("vgg16")
    assert str(fallback) in str(error.value)
    with pytest.raises(ValueError, match="alexnet"):
        weights_cache.require_imagenet_weights("alexnet")


def _snapshot(root: Path) -> dict[str, tuple[int, int, float]]:
    return {
        str(path.relative_to(root)): (path.stat().st_mode, path.stat().st_size, path.stat().st_mtime)
        for path in sorted([root, *root.rglob("*")])
    }


def test_read_only_keras_home_is_used_through_links_in_tmp(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
):
    """The images' baked KERAS_HOME is read-only for the job user: Keras would cache in <tmp>/.keras and miss it.

    The job edge links the verified baked file into that writable cache; `keras.applications.VGG16(weights=
    "imagenet")` then loads it offline, and nothing is written into the home. Tests run as root, so "not
    writable" is simulated for the home through `os.access` (what Keras and the job edge both ask), besides
    chmod 0555; Keras' /tmp is redirected to a folder of this test (the same `gettempdir()` fallback Keras has).
    """
    entry = IMAGENET_NO_TOP["vgg16"]
    served = mirror.root / entry.fname
    # The generated file cannot have Keras' md5: the table entry (and Keras' check below) take its sha256.
    monkeypatch.setitem(IMAGENET_NO_TOP, "vgg16", dataclasses.replace(entry, file_hash=_sha256(served)))
    home = tmp_path / "opt-keras"
    (home / "models").mkdir(parents=True)
    baked_file = home / "models" / entry.fname
    baked_file.write_bytes(served.read_bytes())
    baked_file.chmod(0o444)
    (home / "models").chmod(0o555)
    home.chmod(0o555)
    before = _snapshot(home)

    real_access, real_isdir = os.access, os.path.isdir
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(os.fspath(path)).absolute().is_relative_to(home):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os.path, "isdir", lambda path: False if path == "/tmp" else real_isdir(path))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))  # what Keras read at import (KERAS_HOME)

    path = weights_cache.require_imagenet_weights("vgg16")
    link = scratch / ".keras" / "models" / entry.fname
    assert path == link and link.is_symlink() and link.resolve() == baked_file.resolve()
    assert weights_cache.require_imagenet_weights("vgg16") == link  # again: the link is reused

    real_get_file = file_utils.get_file
    seen: list[str] = []

    def get_file_with_mirror_hash(fname, origin, **kwargs):
        path = real_get_file(fname, origin, **{**kwargs, "file_hash": _sha256(served)})
        seen.append(path)
        return path

    monkeypatch.setattr(file_utils, "get_file", get_file_with_mirror_hash)
    base = keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=(64, 64, 3))
    assert seen == [str(link)] and no_network == []
    _assert_same_weights(base.get_weights(), mirror.generated["vgg16"])
    keras.backend.clear_session()
    assert _snapshot(home) == before

    # A baked file that is not Keras' is never linked: the job fails up front instead of Keras downloading.
    link.unlink()
    monkeypatch.setitem(IMAGENET_NO_TOP, "vgg16", entry)
    with pytest.raises(WeightsCacheError, match="not writable") as error:
        weights_cache.require_imagenet_weights("vgg16")
    assert "does not match Keras' hash" in str(error.value) and not link.exists()
    assert _snapshot(home) == before


def test_module_runs_as_a_command(tmp_path: Path):
    """``python -m cxrcore.models.weights_cache --check`` (what the Dockerfiles run after baking) on an empty home."""
    env = {**os.environ, "CXR_LOG_FORMAT": "json", "KERAS_HOME": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-m", "cxrcore.models.weights_cache", "--check"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 1, completed.stderr
    failure = next(json.loads(line) for line in completed.stderr.splitlines() if "weights_cache_failed" in line)
    for entry in IMAGENET_NO_TOP.values():
        assert str(tmp_path / "models" / entry.fname) in failure["error"]
