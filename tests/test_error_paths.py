"""Error paths of the jobs and ``cxr`` commands: transient store trouble exits 75 everywhere, settings errors exit 2
with a clear message, no credential reaches stderr or the log, and nothing replaces a more complete output.

A :class:`FlakyStore` is a real :class:`~cxrcore.storage.local.FileStore` whose reads of chosen keys fail with
:class:`~cxrcore.storage.TransientStoreError`, the way an S3 store reports an outage after its retries.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cxrcore.layout import classifier_prefix, report_prefix
from cxrcore.storage import Store, TransientStoreError, join_key
from cxrcore.storage.local import FileStore
from tests.test_report import DATASET, RUN_ID, _plant_classifier, _plant_dataset

SECRET = "s3cr3t-Pa55w0rd"


class FlakyStore(FileStore):
    """A file store whose reads of keys containing one of ``failing`` raise :class:`TransientStoreError`."""

    def __init__(self, uri: str | os.PathLike[str], failing: tuple[str, ...] = ()) -> None:
        """Opens the store.

        Args:
            uri: The store's directory.
            failing: Substrings; a read or listing of a key holding one fails transiently.
        """
        super().__init__(uri)
        self.failing = failing

    def _fails(self, key: str) -> bool:
        return any(part in key for part in self.failing)

    def _get_bytes(self, key: str) -> bytes:
        if self._fails(key):
            raise TransientStoreError(f"Could not connect to the endpoint URL reading {key} (test outage)")
        return super()._get_bytes(key)

    def _get_file(self, key: str, path: Path) -> None:
        if self._fails(key):
            raise TransientStoreError(f"Could not connect to the endpoint URL reading {key} (test outage)")
        super()._get_file(key, path)

    def list(self, prefix: str = "") -> list:
        if self._fails(prefix + "/"):
            raise TransientStoreError(f"Could not connect to the endpoint URL listing {prefix} (test outage)")
        return super().list(prefix)


@pytest.fixture
def flaky_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., FlakyStore]:
    """``flaky_store(*failing)``: a :class:`FlakyStore` on ``tmp_path/store`` that every job's settings open."""
    from cxrcore.config import JobSettings

    def make(*failing: str) -> FlakyStore:
        store = FlakyStore(tmp_path / "store", failing)
        monkeypatch.setattr(JobSettings, "open_store", lambda settings: store)
        return store

    return make


@pytest.fixture
def fast_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skips matplotlib's drawing (a stand-in PNG)."""
    from cxrcore.report import figures
    from tests.test_report import _png

    monkeypatch.setattr(figures, "_png", lambda figure: _png(99))


# ------------------------------------------------------------------------------------------------ defect 2: report
def _report_argv(store: Store) -> list[str]:
    return ["--store", store.uri, "--run-id", RUN_ID, "--dataset", DATASET, "--log-format", "json"]


def test_report_transient_read_exits_75_and_keeps_the_report(
    file_store: Store, flaky_store, fast_figures: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs.report import main

    _plant_dataset(file_store)
    _plant_classifier(file_store, "baseline", "custom_cnn", 0)
    _plant_classifier(file_store, "baseline", "vgg16", 0)
    assert main(_report_argv(file_store)) == 0
    before = file_store.read_marker(report_prefix(RUN_ID))
    vgg16 = classifier_prefix(RUN_ID, "baseline", "vgg16", 0)
    for failing in (join_key(vgg16, "predictions.csv"), join_key(vgg16, "_SUCCESS"), "datasets/"):
        flaky_store(failing)
        capsys.readouterr()
        assert main(_report_argv(file_store)) == 75, failing
        assert "job_failed_transient" in capsys.readouterr().err
        assert file_store.read_marker(report_prefix(RUN_ID)) == before


def test_report_refuses_to_replace_a_more_complete_report(
    file_store: Store, fast_figures: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs.report import main

    _plant_dataset(file_store)
    _plant_classifier(file_store, "baseline", "custom_cnn", 0)
    _plant_classifier(file_store, "baseline", "vgg16", 0)
    assert main(_report_argv(file_store)) == 0
    before = file_store.read_marker(report_prefix(RUN_ID))
    vgg16 = classifier_prefix(RUN_ID, "baseline", "vgg16", 0)
    file_store.delete(join_key(vgg16, "_SUCCESS"))  # being rewritten by a re-run
    capsys.readouterr()
    assert main(_report_argv(file_store)) == 1
    error = capsys.readouterr().err
    assert "Refusing to replace the committed report" in error and vgg16 in error
    assert file_store.read_marker(report_prefix(RUN_ID)) == before
    # Allowed explicitly: replaced, and the new report says what it lost.
    assert main([*_report_argv(file_store), "--allow-degraded", "true"]) == 0
    metrics = file_store.get_json(join_key(report_prefix(RUN_ID), "metrics.json"))
    assert any("allow_degraded" in warning and vgg16 in warning for warning in metrics["warnings"])
    page = file_store.get_bytes(join_key(report_prefix(RUN_ID), "index.html")).decode()
    assert "replaced a committed report" in page


# ------------------------------------------------------------------------- defect 4: transient is 75 everywhere
def _plant_committed(store: Store, prefix: str, files: dict[str, bytes]) -> None:
    with store.commit(prefix, inputs={"planted": True}) as transaction:
        for name, data in files.items():
            transaction.put_bytes(name, data)


def test_dataset_load_during_an_outage_is_transient(file_store: Store, flaky_store) -> None:
    from cxrcore.data.dataset import load_prefix

    _plant_committed(file_store, "datasets/chest-xray/v1", {"dataset.json": b"{}"})
    store = flaky_store("datasets/chest-xray/v1/_SUCCESS")
    with pytest.raises(TransientStoreError):
        load_prefix(store, "datasets/chest-xray/v1")


def test_prepare_with_a_base_version_during_an_outage_exits_75(
    file_store: Store, flaky_store, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs.prepare import main

    _plant_committed(file_store, "datasets/chest-xray/v1", {"dataset.json": b"{}"})
    file_store.put_json("datasets/chest-xray/latest.json", {"version": "v1"})
    flaky_store("datasets/chest-xray/v1/_SUCCESS")
    argv = ["--source", "demo://?per_class=2&size=32", "--image-size", "32", "--base-version", "latest"]
    assert main([*argv, "--store", file_store.uri, "--log-format", "json"]) == 75
    assert "job_failed_transient" in capsys.readouterr().err


def test_promote_during_an_outage_exits_75(
    file_store: Store, flaky_store, capsys: pytest.CaptureFixture[str]
) -> None:
    from cxrcore import cli

    challenger = classifier_prefix("run-9", "baseline", "custom_cnn", 0)
    _plant_committed(file_store, challenger, {"model.keras": b"not used", "metrics.json": b"{}"})
    flaky_store(join_key(challenger, "_SUCCESS"))
    argv = ["promote", "--store", file_store.uri, "--run-id", "run-9", "--challenger", challenger]
    assert cli.main([*argv, "--log-format", "json"]) == 75
    error = capsys.readouterr().err
    assert "job_failed_transient" in error and "not a committed classifier output" not in error


def test_predict_during_an_outage_exits_75(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cxrcore import cli, inference

    def outage(*args, **kwargs):
        raise TransientStoreError("Could not connect to the endpoint URL (test outage)")

    monkeypatch.setattr(inference, "fetch_model", outage)
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    assert cli.main(["predict", "s3://bucket/runs/r/classifiers/baseline/custom_cnn/seed-0", str(image)]) == 75
    assert cli.main(["evaluate", "s3://bucket/runs/r/classifiers/baseline/custom_cnn/seed-0", str(tmp_path)]) == 75
    assert "failed_transient" in capsys.readouterr().err


# --------------------------------------------------------------------------- defect 5: credentials on error paths
def test_settings_errors_never_print_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    from jobs.report import main

    for argv in (
        ["--s3.endpoint-url", f"ftp://admin:{SECRET}@minio:9000"],
        ["--s3.endpoint-url", f"https://admin:{SECRET}@minio:9000"],
        ["--store", f"https://admin:{SECRET}@minio:9000/bucket"],
        ["--store", f"https:/admin:{SECRET}@minio:9000/bucket"],
        ["--no-such-flag", f"https://admin:{SECRET}@minio:9000"],
    ):
        assert main(["--run-id", "r1", *argv]) == 2, argv
        captured = capsys.readouterr()
        assert SECRET not in captured.err + captured.out, argv
        assert "invalid settings" in captured.err


def test_source_errors_never_carry_credentials(tmp_path: Path) -> None:
    from cxrcore.data.sources import open_source

    for source in (f"https://user:{SECRET}@host/data.zip", f"https:/user:{SECRET}@host/data.zip"):
        with pytest.raises((ValueError, FileNotFoundError)) as caught:
            open_source(source)
        assert SECRET not in str(caught.value), source
    missing = tmp_path / f"user:{SECRET}@host"
    with pytest.raises(FileNotFoundError) as caught:
        open_source(f"{tmp_path}/https:/user:{SECRET}@host")
    assert SECRET not in str(caught.value) and not missing.exists()


def test_import_of_a_url_with_credentials_keeps_them_out_of_the_log(
    file_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs.prepare import main

    argv = ["--source", f"https://user:{SECRET}@host/chest_xray.zip", "--store", file_store.uri, "--log-format", "json"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert SECRET not in captured.err + captured.out


def test_redaction_covers_a_url_whose_slashes_collapsed() -> None:
    from cxrcore.logging import redact_text

    for text in (f"https:/user:{SECRET}@host/x", f"https://user:{SECRET}@host", f"s3:/user:{SECRET}@bucket"):
        assert SECRET not in redact_text(text), text


# ------------------------------------------------------------------------- defect 9: bad settings exit 2, clearly
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--store", "s3:/x"], "store: must be s3://bucket/prefix"),
        (["--store", "file://relative"], "file:// URIs must name a local absolute path"),
        (["--store", "s3://bucket/../.."], "must not contain '..'"),
        (["--store", "gs://bucket/x"], "the scheme 'gs' is not supported"),
        (["--dataset-version", "../../x"], "Received: dataset_version='../../x'"),
    ],
)
def test_bad_store_uris_and_versions_are_bad_settings(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs.report import main

    base = ["--run-id", "r1", "--store", (tmp_path / "store").as_uri()]
    assert main([*base, *argv]) == 2
    assert expected in capsys.readouterr().err


def test_zero_epochs_is_named_with_the_value_given(capsys: pytest.CaptureFixture[str]) -> None:
    from cxrcore.config import SettingsError, TrainClassifierSettings, parse_settings

    argv = ["--run-id", "r1", "--model", "custom_cnn", "--condition", "baseline", "--epochs", "0"]
    with pytest.raises(SettingsError) as caught:
        parse_settings(TrainClassifierSettings, argv)
    assert "epochs: Input should be greater than or equal to 1" in str(caught.value)
    assert "epochs=None" not in str(caught.value) and "epochs='0'" in str(caught.value)


def test_gan_resume_during_an_outage_is_transient_but_a_bad_checkpoint_is_skipped(monkeypatch, tmp_path) -> None:
    import cxrcore.training.gan as gan
    from cxrcore.logging import get_logger

    class Candidate:
        key, epoch = "runs/r1/gan/NORMAL/checkpoints/epoch-0002", 2

    class Series:
        store = None

        def resume_candidates(self, epochs: int) -> list:
            return [Candidate()]

    class Network:
        def get_weights(self) -> list:
            return []

        def set_weights(self, weights: list) -> None:
            pass

    class Model:
        generator, discriminator = Network(), Network()

    class Record:
        resets = 0

        def reset(self) -> None:
            self.resets += 1

    monkeypatch.setattr(gan, "optimizer_arrays", lambda model: [])
    monkeypatch.setattr(gan, "assign_optimizer_arrays", lambda model, arrays: None)

    def outage(*args, **kwargs):
        raise TransientStoreError("Could not connect to the endpoint URL (test outage)")

    monkeypatch.setattr(gan, "restore_checkpoint", outage)
    with pytest.raises(TransientStoreError):  # exit 75; the retry resumes from this checkpoint
        gan.resume(Series(), Model(), Record(), epochs=3, work_dir=tmp_path, logger=get_logger("test"))

    def corrupt(*args, **kwargs):
        raise ValueError("not a checkpoint")

    monkeypatch.setattr(gan, "restore_checkpoint", corrupt)
    record = Record()
    assert gan.resume(Series(), Model(), record, epochs=3, work_dir=tmp_path, logger=get_logger("test")) == (0, None)
    assert record.resets == 1
