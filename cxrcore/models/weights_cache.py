"""ImageNet weights in the Keras cache: baked into images at build time, checked by jobs before they train.

`keras.applications.<Backbone>(include_top=False, weights="imagenet")` looks for its no-top weight file in
`$KERAS_HOME/models/<file name>` (default `~/.keras/models`), checks Keras' own hash of it, and downloads it
only when it is absent or does not match. On a cluster without egress that download fails deep inside model
construction, so container images bake the files at build time and jobs check the cache before they start:

    python -m cxrcore.models.weights_cache                    # all six backbones of `BACKBONES`, Keras' origins
    python -m cxrcore.models.weights_cache --backbones vgg16 resnet50 --keras-home /opt/keras
    python -m cxrcore.models.weights_cache --mirror https://artifacts.internal/keras-applications/
    python -m cxrcore.models.weights_cache --check            # exit 1 unless every file is present and valid

Baking goes through Keras' own download path (`keras.utils.get_file(fname, origin, cache_subdir="models",
file_hash=...)`) with Keras' own file names, origins and hashes (`IMAGENET_NO_TOP`, checked against the
installed Keras by the tests, so a Keras upgrade that changes them fails loudly), so afterwards
`keras.applications` finds the files offline.

Mirrors (`--mirror URL` or `CXR_WEIGHTS_MIRROR`): a flat folder holding the files under Keras' file names, e.g.
`URL/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`; only the origin changes. A mirror of Keras' files is
verified against Keras' own hashes, exactly as the official origin, because `weights="imagenet"` re-checks them
at every load. A mirror serving other files (re-trained or test weights) must publish their sha256 in
`sha256sum` format (`--hashes FILE_OR_URL` or `CXR_WEIGHTS_HASHES`, e.g. `URL/SHA256SUMS`): every requested file
must be listed there and is verified against it. Such files do not match Keras' hashes, so they are usable as
`--weights <path>` of a job, not as `weights=imagenet` (a warning says so).

Exit codes of the command: 0 ok, 1 a download, hash or cache check failed (the log names the backbone, the URL
or path and the fix), 2 bad arguments.

Jobs call `require_imagenet_weights` before loading any data: it names the missing file, `KERAS_HOME` and the
two fixes (bake with `BAKE_IMAGENET_WEIGHTS=true`, or pass a weights path / `s3://` URI) instead of letting Keras
try to download.

Read-only homes: the images bake as root and leave `KERAS_HOME=/opt/keras` read-only for the job user, so a job
cannot alter its weights. Keras caches only in a home it may write (`os.access(home, os.W_OK)`), else in
`/tmp/.keras`; `require_imagenet_weights` therefore links the verified baked file into `/tmp/.keras/models/`
(the pod's scratch emptyDir) and Keras loads it from there, offline, without writing to the home.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrcore.logging import configure_logging, get_logger

__all__ = [
    "CACHE_SUBDIR",
    "HASHES_ENV",
    "IMAGENET_NO_TOP",
    "MIRROR_ENV",
    "WeightsCacheError",
    "WeightsFile",
    "bake",
    "check",
    "default_keras_home",
    "effective_cache_dir",
    "file_hash_matches",
    "keras_home",
    "main",
    "read_hash_manifest",
    "require_imagenet_weights",
]

#: Subdirectory of the Keras home that `keras.applications` caches weights in.
CACHE_SUBDIR = "models"
#: Environment variable with the default of `--mirror`.
MIRROR_ENV = "CXR_WEIGHTS_MIRROR"
#: Environment variable with the default of `--hashes`.
HASHES_ENV = "CXR_WEIGHTS_HASHES"
#: Seconds a stalled download or manifest fetch may wait for data before it fails.
DEFAULT_TIMEOUT_S = 120.0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_ARGUMENTS = 2

_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_MIRROR_SCHEMES = ("http", "https", "file")
_LOGGER = "cxrcore.models.weights_cache"  # also when run as `python -m` (__name__ is then "__main__")


class WeightsCacheError(RuntimeError):
    """A weight file could not be fetched or verified, or the Keras cache lacks one (the message says which)."""


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """The no-top ImageNet weight file of one backbone, as `keras.applications` fetches it.

    Attributes:
        backbone: Key of `cxrcore.models.transfer.BACKBONES`.
        fname: Keras' file name in `$KERAS_HOME/models/`.
        origin: Keras' download URL.
        file_hash: Keras' expected hash (md5 hex for 32 characters, sha256 for 64, as `keras.utils.get_file`).
        keras_module: The `keras.src.applications` module holding these constants.
    """

    backbone: str
    fname: str
    origin: str
    file_hash: str
    keras_module: str

    def mirror_origin(self, mirror: str) -> str:
        """The file's URL on a flat mirror (`mirror` ends with `/`)."""
        return mirror + urllib.parse.quote(self.fname)


_TF_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"

#: Keras' no-top ImageNet weight files of the six backbones, in `BACKBONES` order. Copied from
#: `keras/src/applications/*.py`; `tests/test_weights_cache.py` checks every field against the installed Keras.
IMAGENET_NO_TOP: dict[str, WeightsFile] = {
    entry.backbone: entry
    for entry in (
        WeightsFile(
            backbone="inceptionv3",
            fname="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            origin=f"{_TF_KERAS_APPLICATIONS}inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            file_hash="bcbd6486424b2319ff4ef7d526e38f63",
            keras_module="keras.src.applications.inception_v3",
        ),
        WeightsFile(
            backbone="resnet50",
            fname="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            origin=f"{_TF_KERAS_APPLICATIONS}resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            file_hash="4d473c1dd8becc155b73f8504c6f6626",
            keras_module="keras.src.applications.resnet",
        ),
        WeightsFile(
            backbone="efficientnetb0",
            fname="efficientnetb0_notop.h5",
            origin="https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
            file_hash="50bc09e76180e00e4465e1a485ddc09d",
            keras_module="keras.src.applications.efficientnet",
        ),
        WeightsFile(
            backbone="vgg16",
            fname="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            origin=f"{_TF_KERAS_APPLICATIONS}vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            file_hash="6d6bbae143d832006294945121d1f1fc",
            keras_module="keras.src.applications.vgg16",
        ),
        WeightsFile(
            backbone="densenet201",
            fname="densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
            origin=f"{_TF_KERAS_APPLICATIONS}densenet/densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
            file_hash="c13680b51ded0fb44dff2d8f86ac8bb1",
            keras_module="keras.src.applications.densenet",
        ),
        WeightsFile(
            backbone="xception",
            fname="xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
            origin=f"{_TF_KERAS_APPLICATIONS}xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
            file_hash="b0042744bf5b25fce3cb969f33bebb97",
            keras_module="keras.src.applications.xception",
        ),
    )
}

_FIXES = (
    "Fix: bake the weights into the image (docker build --build-arg BAKE_IMAGENET_WEIGHTS=true, which runs "
    "`python -m cxrcore.models.weights_cache`), or pass --weights with a local file or an s3:// URI of the base "
    "network's weights (e.g. Keras' {fname}), or --weights none."
)


# ---------------------------------------------------------------------------------------------------- locations
def keras_home() -> Path:
    """The Keras home that `keras.applications` reads: `KERAS_HOME` as Keras saw it at import, else `~/.keras`."""
    try:
        from keras.src.backend.config import keras_home as _keras_home
    except ImportError:  # pragma: no cover - a Keras without the private accessor
        base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    else:
        base = _keras_home()
    return Path(os.path.expanduser(base))


def default_keras_home() -> Path:
    """Where the command bakes by default: `$KERAS_HOME` now, else Keras' own default (see `keras_home`)."""
    configured = os.environ.get("KERAS_HOME")
    return Path(os.path.expanduser(configured)) if configured else keras_home()


def effective_cache_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """The folder `keras.utils.get_file(..., cache_subdir="models")` really uses for a Keras home.

    Keras falls back to `<tmp>/.keras` when the home is missing or not writable by the current user, so a baked
    `/opt/keras` is ignored by a pod running as another uid.

    Args:
        home: A Keras home; default `keras_home()`.

    Returns:
        `<home>/models`, or `<tmp>/.keras/models` when Keras would fall back.
    """
    base = Path(home) if home is not None else keras_home()
    if not os.access(base, os.W_OK):
        base = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / ".keras"
    return base / CACHE_SUBDIR


def _entries(backbones: Sequence[str] | None) -> list[WeightsFile]:
    if backbones is None:
        return list(IMAGENET_NO_TOP.values())
    if isinstance(backbones, str) or not backbones:
        raise ValueError(f"`backbones` must be a non-empty list of names. Received: backbones={backbones!r}")
    unknown = [name for name in backbones if name not in IMAGENET_NO_TOP]
    if unknown:
        raise ValueError(
            f"Unknown backbone; expected some of {list(IMAGENET_NO_TOP)}. Received: backbones={list(backbones)!r}"
        )
    return [IMAGENET_NO_TOP[name] for name in dict.fromkeys(backbones)]


def _normalized_mirror(mirror: str | None) -> str | None:
    if mirror is None or not mirror.strip():
        return None
    mirror = mirror.strip()
    parsed = urllib.parse.urlsplit(mirror)
    if parsed.scheme not in _MIRROR_SCHEMES or not (parsed.netloc or parsed.scheme == "file"):
        raise ValueError(f"`mirror` must be an http://, https:// or file:// URL. Received: mirror={mirror!r}")
    return mirror if mirror.endswith("/") else mirror + "/"


# ---------------------------------------------------------------------------------------------------- hashes
def file_hash_matches(path: str | os.PathLike[str], expected: str) -> bool:
    """Whether a file has hash `expected`: sha256 for 64 hex characters, md5 otherwise (Keras' `auto` rule)."""
    hasher = hashlib.sha256() if len(expected) == 64 else hashlib.md5()  # noqa: S324 - Keras' published md5s
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest() == expected.lower()


def read_hash_manifest(source: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, str]:
    """Reads a `sha256sum`-format manifest (`<sha256>  <file name>` per line) from a path or URL.

    Args:
        source: Local path, or `http(s)://` / `file://` URL (e.g. `<mirror>/SHA256SUMS`).
        timeout_s: Seconds a URL fetch may stall.

    Returns:
        `{file name: lower-case sha256}`.

    Raises:
        WeightsCacheError: The manifest cannot be read (names the source).
        ValueError: A line is not `<64 hex> <name>`.
    """
    try:
        if urllib.parse.urlsplit(source).scheme in _MIRROR_SCHEMES:
            with urllib.request.urlopen(source, timeout=timeout_s) as response:  # noqa: S310 - http(s)/file only
                text = response.read().decode("utf-8")
        else:
            text = Path(source).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsCacheError(
            f"Could not read the hash manifest {source}: {exc}. Received: hashes={source!r}"
        ) from exc
    hashes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SHA256_LINE.match(line)
        if match is None:
            raise ValueError(
                f"Line {number} of the hash manifest {source} is not `<sha256>  <file name>`. Received: line={line!r}"
            )
        hashes[match.group(2).strip().removeprefix("./")] = match.group(1).lower()
    return hashes


def _expected_hashes(
    entries: Sequence[WeightsFile], manifest: Mapping[str, str] | None, source: str | None
) -> dict[str, str]:
    if manifest is None:
        return {entry.backbone: entry.file_hash for entry in entries}
    missing = [entry for entry in entries if entry.fname not in manifest]
    if missing:
        names = ", ".join(f"{entry.backbone} ({entry.fname})" for entry in missing)
        raise WeightsCacheError(
            f"The hash manifest {source} does not list the weights of {names}; every file must be verified. "
            f"Received: hashes={source!r}"
        )
    return {entry.backbone: manifest[entry.fname] for entry in entries}


# ---------------------------------------------------------------------------------------------------- baking
@contextlib.contextmanager
def _download_environment(timeout_s: float) -> Iterator[None]:
    """A socket timeout (urllib waits forever otherwise) and no interactive Keras progress bar in build logs."""
    import keras

    previous_timeout = socket.getdefaulttimeout()
    interactive = keras.config.is_interactive_logging_enabled()
    socket.setdefaulttimeout(timeout_s)
    keras.config.disable_interactive_logging()
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous_timeout)
        if interactive:
            keras.config.enable_interactive_logging()


def _prepare_cache(home: Path) -> None:
    """Creates `home/models/` and checks that Keras will cache there (the home is writable by this user).

    Raises:
        WeightsCacheError: The folder cannot be created, or Keras would cache elsewhere (not writable).
    """
    try:
        (home / CACHE_SUBDIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsCacheError(
            f"Could not create {home / CACHE_SUBDIR}: {exc}. Received: keras_home={str(home)!r}"
        ) from exc
    if effective_cache_dir(home) != home / CACHE_SUBDIR:
        raise WeightsCacheError(
            f"The Keras home {home} is not writable by uid {_uid()}, so Keras would cache elsewhere; "
            f"run as its owner or pick a writable --keras-home. Received: keras_home={str(home)!r}"
        )


def _download(
    entry: WeightsFile, url: str, expected_hash: str, *, home: Path, timeout_s: float, log: Any, fields: dict[str, str]
) -> None:
    """Fetches one file into `home/models/` through `keras.utils.get_file`, checked against `expected_hash`.

    Raises:
        WeightsCacheError: The download or the hash check failed (the bad file is removed), or Keras stored the
            file elsewhere.
    """
    import keras

    target = home / CACHE_SUBDIR / entry.fname
    try:
        with _download_environment(timeout_s):
            path = keras.utils.get_file(
                entry.fname, url, cache_subdir=CACHE_SUBDIR, file_hash=expected_hash, cache_dir=str(home)
            )
    except Exception as exc:  # noqa: BLE001 - Keras raises bare Exception on HTTP/URL errors
        target.unlink(missing_ok=True)  # Keras keeps a downloaded file that failed its hash check
        log.error("weights_download_failed", url=url, error=f"{type(exc).__name__}: {exc}", **fields)
        raise WeightsCacheError(
            f"Could not bake the ImageNet weights of {entry.backbone}: fetching {url} into {target} failed "
            f"({type(exc).__name__}: {exc}). Received: backbone={entry.backbone!r}"
        ) from exc
    if Path(path) != target:
        raise WeightsCacheError(
            f"Keras stored the weights of {entry.backbone} at {path} instead of {target}. "
            f"Received: keras_home={str(home)!r}"
        )


def bake(
    backbones: Sequence[str] | None = None,
    *,
    keras_home: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    hashes: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Path]:
    """Fills `<keras_home>/models/` with the no-top ImageNet weight files through `keras.utils.get_file`.

    Files already present with the expected hash are not fetched again.

    Args:
        backbones: Keys of `IMAGENET_NO_TOP`; default all six.
        keras_home: The Keras home to fill; default `default_keras_home()`.
        mirror: Base URL of a flat mirror replacing Keras' origins (default: Keras' origins).
        hashes: Path or URL of a `sha256sum` manifest whose hashes replace Keras' (see the module docstring).
        timeout_s: Seconds a stalled download may wait for data.

    Returns:
        `{backbone: path of its file}`.

    Raises:
        ValueError: Unknown backbone, bad mirror URL, bad manifest line or non-positive timeout.
        WeightsCacheError: A download failed, a file does not match its hash (the bad file is removed), the
            manifest lacks a file, or the Keras home is not writable. The message names the backbone and URL.
    """
    if not timeout_s > 0:
        raise ValueError(f"`timeout_s` must be > 0. Received: timeout_s={timeout_s}")
    entries = _entries(backbones)
    mirror = _normalized_mirror(mirror)
    manifest = read_hash_manifest(hashes, timeout_s=timeout_s) if hashes else None
    expected = _expected_hashes(entries, manifest, hashes)
    home = (Path(keras_home).expanduser() if keras_home is not None else default_keras_home()).absolute()
    log = get_logger(_LOGGER, keras_home=str(home))
    _prepare_cache(home)
    log.info("weights_bake_start", backbones=[entry.backbone for entry in entries], mirror=mirror, hashes=hashes)
    baked: dict[str, Path] = {}
    for number, entry in enumerate(entries, start=1):
        target = home / CACHE_SUBDIR / entry.fname
        url = entry.origin if mirror is None else entry.mirror_origin(mirror)
        fields = {"backbone": entry.backbone, "file": entry.fname, "step": f"{number}/{len(entries)}"}
        if target.is_file() and file_hash_matches(target, expected[entry.backbone]):
            log.info("weights_cached", path=str(target), **fields)
            baked[entry.backbone] = target
            continue
        log.info("weights_download", url=url, path=str(target), **fields)
        started = time.monotonic()
        _download(entry, url, expected[entry.backbone], home=home, timeout_s=timeout_s, log=log, fields=fields)
        log.info(
            "weights_baked",
            path=str(target),
            bytes=target.stat().st_size,
            seconds=round(time.monotonic() - started, 2),
            **fields,
        )
        if manifest is not None and not file_hash_matches(target, entry.file_hash):
            log.warning(
                "weights_not_keras_imagenet",
                path=str(target),
                reason="the file differs from Keras' published hash, so weights=imagenet would re-download it; "
                "use it as --weights <path>",
                **fields,
            )
        baked[entry.backbone] = target
    log.info("weights_bake_done", files=len(baked))
    return baked


def check(
    backbones: Sequence[str] | None = None,
    *,
    keras_home: str | os.PathLike[str] | None = None,
    hashes: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Path]:
    """Verifies that the cache holds every requested file with the expected hash.

    Args:
        backbones: Keys of `IMAGENET_NO_TOP`; default all six.
        keras_home: The Keras home to check; default `default_keras_home()`.
        hashes: Path or URL of a `sha256sum` manifest whose hashes replace Keras' (as for `bake`).
        timeout_s: Seconds a manifest fetch may stall.

    Returns:
        `{backbone: path of its file}`.

    Raises:
        ValueError: Unknown backbone or bad manifest line.
        WeightsCacheError: Some files are missing or do not match; the message lists every one.
    """
    entries = _entries(backbones)
    manifest = read_hash_manifest(hashes, timeout_s=timeout_s) if hashes else None
    expected = _expected_hashes(entries, manifest, hashes)
    home = (Path(keras_home).expanduser() if keras_home is not None else default_keras_home()).absolute()
    log = get_logger(_LOGGER, keras_home=str(home))
    problems: list[str] = []
    found: dict[str, Path] = {}
    for entry in entries:
        path = home / CACHE_SUBDIR / entry.fname
        if not path.is_file():
            problems.append(f"{entry.backbone}: {path} is missing")
        elif not file_hash_matches(path, expected[entry.backbone]):
            problems.append(f"{entry.backbone}: {path} does not match hash {expected[entry.backbone]}")
        else:
            found[entry.backbone] = path
            log.info("weights_ok", backbone=entry.backbone, path=str(path))
    if problems:
        raise WeightsCacheError(
            f"The Keras cache {home / CACHE_SUBDIR} is incomplete: " + "; ".join(problems) + ". "
            "Run `python -m cxrcore.models.weights_cache` to fill it. "
            f"Received: keras_home={str(home)!r}"
        )
    return found


# ---------------------------------------------------------------------------------------------------- jobs
def require_imagenet_weights(backbone: str) -> Path:
    """Returns the cached ImageNet file `keras.applications` will load for `backbone`, or fails without downloading.

    Looks exactly where Keras will (`effective_cache_dir()`) and checks Keras' own hash, which Keras re-checks
    at load time and answers with a download on mismatch. When `KERAS_HOME` is read-only (images bake the
    weights as root and make them read-only), Keras caches in `<tmp>/.keras/models` instead: a baked file that
    matches Keras' hash is then symlinked there, so Keras finds it offline and nothing is written to the home.

    Args:
        backbone: Key of `IMAGENET_NO_TOP`.

    Returns:
        The path of the weight file.

    Raises:
        ValueError: Unknown backbone.
        WeightsCacheError: The file is missing or not Keras' file; the message names the file, `KERAS_HOME`
            and the fixes.
    """
    entry = _entries([backbone])[0]
    home = keras_home()
    cache = effective_cache_dir(home)
    path = cache / entry.fname
    fixes = _FIXES.format(fname=entry.fname)
    baked = home / CACHE_SUBDIR / entry.fname
    read_only_home = cache != home / CACHE_SUBDIR
    if not path.is_file() and read_only_home and baked.is_file() and file_hash_matches(baked, entry.file_hash):
        _link_baked_file(baked, path, home=home, backbone=backbone)
    if not path.is_file():
        if read_only_home and baked.is_file():
            reason = (
                f"{baked} exists, but KERAS_HOME={home} is not writable by uid {_uid()}, so Keras reads {cache} "
                f"instead, and {baked} does not match Keras' hash {entry.file_hash}, so it is not linked there: "
                f"Keras would download {entry.origin}. Bake Keras' own file ({fixes})"
            )
        else:
            where = f"KERAS_HOME={home}"
            if cache != home / CACHE_SUBDIR:
                where += f", not writable by uid {_uid()}, so Keras reads {cache}"
            reason = (
                f"{path} is missing ({where}), so Keras would download {entry.origin}, which fails "
                f"without network access. {fixes}"
            )
        raise WeightsCacheError(
            f"ImageNet weights of {backbone} are not in the Keras cache: {reason} Received: weights='imagenet'"
        )
    if not file_hash_matches(path, entry.file_hash):
        raise WeightsCacheError(
            f"ImageNet weights of {backbone} in the Keras cache are not Keras' file: {path} does not match "
            f"Keras' hash {entry.file_hash} (KERAS_HOME={home}), so Keras would download {entry.origin} again. "
            f"{fixes} Received: weights='imagenet'"
        )
    return path


def _link_baked_file(baked: Path, link: Path, *, home: Path, backbone: str) -> None:
    """Links a verified baked file of a read-only Keras home into the writable cache Keras falls back to.

    Images bake the weights as root and leave `KERAS_HOME` read-only, so Keras (which caches only in a home it
    may write) reads `<tmp>/.keras/models` instead; a symlink there to the baked file lets
    `keras.applications.<Backbone>(weights="imagenet")` find it offline. Nothing is written into `KERAS_HOME`.

    Raises:
        WeightsCacheError: The fallback cache cannot be written (no writable /tmp, e.g. no scratch emptyDir).
    """
    temporary = link.with_name(f".{link.name}.{os.getpid()}.link")
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(baked)
        os.replace(temporary, link)  # also replaces a dangling link left by an earlier image
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise WeightsCacheError(
            f"KERAS_HOME={home} is read-only and holds the ImageNet weights of {backbone} ({baked}), but linking "
            f"them into the writable Keras cache {link.parent} failed: {exc}. Mount a writable emptyDir on /tmp "
            f"(the job templates' scratch volume). Received: weights='imagenet'"
        ) from exc
    get_logger(_LOGGER, keras_home=str(home)).info(
        "weights_linked", backbone=backbone, path=str(link), target=str(baked), reason="KERAS_HOME is read-only"
    )


def _uid() -> int | str:
    getuid = getattr(os, "getuid", None)
    return getuid() if getuid is not None else "?"


# ---------------------------------------------------------------------------------------------------- command
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cxrcore.models.weights_cache",
        description="Bake Keras' no-top ImageNet weight files of the transfer backbones into the Keras cache "
        "($KERAS_HOME/models), or --check that it is complete.",
    )
    parser.add_argument(
        "--backbones", nargs="+", choices=list(IMAGENET_NO_TOP), default=None, metavar="NAME",
        help=f"Backbones (default all): {', '.join(IMAGENET_NO_TOP)}.",
    )
    parser.add_argument("--keras-home", default=None, help="Keras home to fill (default $KERAS_HOME, else ~/.keras).")
    parser.add_argument(
        "--mirror", default=os.environ.get(MIRROR_ENV) or None,
        help=f"Base URL of a flat mirror holding the files under Keras' names (default ${MIRROR_ENV}, else Keras' "
        "origins).",
    )
    parser.add_argument(
        "--hashes", default=os.environ.get(HASHES_ENV) or None,
        help=f"Path or URL of a sha256sum manifest replacing Keras' hashes, for mirrors of non-Keras files "
        f"(default ${HASHES_ENV}).",
    )
    parser.add_argument("--check", action="store_true", help="Only verify that every file is present and valid.")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="Seconds a stalled download waits.")
    parser.add_argument("--log-level", default=os.environ.get("CXR_LOG_LEVEL", "INFO"))
    parser.add_argument("--log-format", default="auto", choices=["auto", "json", "console"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command entry point; prints `{"keras_home", "files"}` as JSON on success and returns the exit code."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    log = get_logger(_LOGGER)
    home = (Path(args.keras_home).expanduser() if args.keras_home else default_keras_home()).absolute()
    try:
        if args.check:
            files = check(args.backbones, keras_home=home, hashes=args.hashes, timeout_s=args.timeout)
        else:
            files = bake(
                args.backbones, keras_home=home, mirror=args.mirror, hashes=args.hashes, timeout_s=args.timeout
            )
    except ValueError as exc:
        log.error("weights_cache_bad_arguments", error=str(exc))
        return EXIT_BAD_ARGUMENTS
    except WeightsCacheError as exc:
        log.error("weights_cache_failed", error=str(exc))
        return EXIT_FAILED
    print(json.dumps({"keras_home": str(home), "files": {name: str(path) for name, path in files.items()}}, indent=2))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
