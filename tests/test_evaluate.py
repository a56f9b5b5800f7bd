"""``cxr evaluate``, ``cxr predict`` and ``cxr models``: trained classifiers used outside the pipeline."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.fixtures_images import gradient, image_bytes, jpeg_bytes, png_12bit_in_16bit, png_bytes, truncated_png

keras = pytest.importorskip("keras")

from cxrcore import cli  # noqa: E402
from cxrcore.data.images import REJECTION_REASONS, decode_image  # noqa: E402
from cxrcore.evaluate import evaluate_folder, load_model_uri, predict_images, predict_pixels  # noqa: E402
from cxrcore.models import build_custom_cnn  # noqa: E402
from cxrcore.storage import open_store  # noqa: E402

SIZE = 32



@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained custom CNN at 32 px, saved as a ``.keras`` file like cxr-train-classifier's ``model.keras``."""
    keras.utils.set_random_seed(0)
    model = build_custom_cnn(SIZE)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    keras.backend.clear_session()
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A NORMAL/ PNEUMONIA/ folder of mixed sizes, modes and bit depths, plus a corrupt and a hidden file."""
    root = tmp_path / "eval"
    files = {
        "NORMAL/rgb.jpeg": jpeg_bytes("RGB", (120, 90)),
        "NORMAL/gray.png": png_bytes("L", (SIZE, SIZE)),
        "NORMAL/alpha.png": image_bytes("RGBA", "PNG", (64, 80)),
        "NORMAL/.DS_Store": b"\x00\x01junk",
        "PNEUMONIA/sixteen_bit.png": png_12bit_in_16bit((200, 150)),
        "PNEUMONIA/large.jpeg": jpeg_bytes("L", (300, 220)),
        "PNEUMONIA/nested/palette.png": image_bytes("P", "PNG", (40, 40)),
        "PNEUMONIA/broken.png": truncated_png(),
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_cxr_evaluate_prints_metrics_and_skips_unreadable_files(
    model_file: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "eval.json"
    code = cli.main(["evaluate", str(model_file), str(data_dir), "--out", str(out)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed

    assert printed["n"] == 6 and printed["counts"] == {"NORMAL": 3, "PNEUMONIA": 3}
    assert printed["image_size"] == SIZE
    for key in ("accuracy", "accuracy_ci95", "precision_macro", "recall_macro", "f1_macro", "sensitivity",
                "specificity", "auc", "confusion_matrix", "collapsed"):
        assert key in printed, key
    assert np.asarray(printed["confusion_matrix"]).sum() == 6
    assert printed["skipped_count"] == 1
    (skipped,) = printed["skipped"]
    assert skipped["path"] == "PNEUMONIA/broken.png" and skipped["reason"] in REJECTION_REASONS

    # The metrics are those of the model on the decoded pixels, in label order.
    model = load_model_uri(str(model_file))
    names = ["NORMAL/alpha.png", "NORMAL/gray.png", "NORMAL/rgb.jpeg",
             "PNEUMONIA/large.jpeg", "PNEUMONIA/nested/palette.png", "PNEUMONIA/sixteen_bit.png"]
    pixels = np.stack([decode_image((data_dir / name).read_bytes(), size=SIZE).pixels for name in names])
    labels = np.array([0, 0, 0, 1, 1, 1])
    probabilities = predict_pixels(model, pixels)
    predicted = probabilities >= 0.5
    # Counted by hand (rows true NORMAL/PNEUMONIA, columns predicted); the AUC from scikit-learn.
    tn, fp = int(np.sum(~predicted[:3])), int(np.sum(predicted[:3]))
    fn, tp = int(np.sum(~predicted[3:])), int(np.sum(predicted[3:]))
    assert printed["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert printed["accuracy"] == pytest.approx((tn + tp) / 6)
    assert printed["auc"] == pytest.approx(roc_auc_score(labels, probabilities))


def test_evaluate_a_committed_prefix_on_s3(
    model_file: Path, data_dir: Path, s3_server, s3_bucket: str, s3_options: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    store = open_store(f"s3://{s3_bucket}/root", s3=s3_options)
    prefix = "runs/r1/classifiers/baseline/custom_cnn/seed-0"
    with store.commit(prefix, inputs={"test": True}) as tx:
        tx.put_file("model.keras", model_file)
    monkeypatch.setenv("CXR_S3__ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("CXR_S3__ADDRESSING_STYLE", "path")

    assert cli.main(["evaluate", f"s3://{s3_bucket}/root/{prefix}", str(data_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 6 and result["model_uri"] == f"s3://{s3_bucket}/root/{prefix}"

    assert cli.main(["evaluate", f"s3://{s3_bucket}/root/runs/absent", str(data_dir)]) == 1
    assert "runs/absent" in capsys.readouterr().err


def test_cxr_predict_prints_json_lines(model_file: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = [data_dir / "NORMAL/rgb.jpeg", data_dir / "PNEUMONIA/sixteen_bit.png"]
    assert cli.main(["predict", str(model_file), *map(str, images)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == [str(path) for path in images]
    for line in lines:
        assert 0.0 <= line["probability"] <= 1.0
        assert line["label_predicted"] == ("PNEUMONIA" if line["probability"] >= 0.5 else "NORMAL")

    # A corrupt image gets an error line and a non-zero exit status; the others are still predicted.
    assert cli.main(["predict", str(model_file), str(images[0]), str(data_dir / "PNEUMONIA/broken.png")]) == 1
    first, broken = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["probability"] == pytest.approx(lines[0]["probability"])
    assert broken["probability"] is None and broken["error"]


def test_predict_images_matches_the_model_on_decoded_pixels(model_file: Path) -> None:
    model = load_model_uri(str(model_file))
    pixels = gradient(SIZE, SIZE).astype(np.uint8)[None]
    direct = model.predict(np.repeat(pixels[..., None].astype("float32"), 3, axis=-1), verbose=0)[0, 0]
    assert predict_pixels(model, pixels)[0] == pytest.approx(float(direct), abs=1e-6)


def test_evaluate_folder_refuses_a_folder_without_class_folders(model_file: Path, tmp_path: Path) -> None:
    model = load_model_uri(str(model_file))
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="NORMAL and PNEUMONIA"):
        evaluate_folder(model, tmp_path / "images")
    with pytest.raises(FileNotFoundError):
        load_model_uri(str(tmp_path / "missing.keras"))
    assert predict_images(model, []) == []


def test_cxr_models_lists_every_model_beside_the_paper(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "--json"]) == 0
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(rows) == [
        "custom_cnn", "inceptionv3", "resnet50", "efficientnetb0", "vgg16", "densenet201", "xception",
        "generator", "discriminator",
    ]
    assert rows["generator"]["params_trainable"] == rows["generator"]["paper_params_trainable"] == 3_750_275
    assert rows["discriminator"]["params_trainable"] == rows["discriminator"]["paper_params_trainable"] == 404_801
    assert rows["generator"]["matches_paper"] is rows["discriminator"]["matches_paper"] is True
    assert rows["custom_cnn"]["paper_params_trainable"] == 1_177_801
    for name in ("inceptionv3", "resnet50", "efficientnetb0", "vgg16", "densenet201", "xception"):
        assert rows[name]["paper_params_trainable"] is None and rows[name]["matches_paper"] is None
        assert rows[name]["params_total"] > rows[name]["params_trainable"] > 0  # frozen ImageNet base
        assert rows[name]["input"] == "128x128x3"


def test_cxr_models_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {"model": "custom_cnn", "role": "classifier", "input": "128x128x3", "params_total": 6_259_209,
         "params_trainable": 6_259_209, "paper_params_trainable": 1_177_801, "matches_paper": False},
        {"model": "generator", "role": "generator", "input": "noise(100)", "params_total": 3_750_275,
         "params_trainable": 3_750_275, "paper_params_trainable": 3_750_275, "matches_paper": True},
        {"model": "vgg16", "role": "classifier", "input": "128x128x3", "params_total": 20_615_233,
         "params_trainable": 5_900_545, "paper_params_trainable": None, "matches_paper": None},
    ]
    monkeypatch.setattr("cxrcore.evaluate.study_parameter_counts", lambda: rows)
    assert cli.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["model", "role", "input"]
    assert lines[2].split() == ["custom_cnn", "classifier", "128x128x3", "6,259,209", "6,259,209", "1,177,801", "NO"]
    assert lines[3].split()[-2:] == ["3,750,275", "yes"]
    assert lines[4].split()[-2:] == ["-", "-"]


def test_uncommitted_model_is_refused_unless_allowed(
    model_file: Path, data_dir: Path, tmp_path: Path, s3_server, s3_bucket: str, s3_options: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    store = open_store(f"s3://{s3_bucket}/root", s3=s3_options)
    prefix = "runs/r1/classifiers/baseline/custom_cnn/seed-1"
    store.put_file(f"{prefix}/model.keras", model_file)  # the job died before its _SUCCESS
    monkeypatch.setenv("CXR_S3__ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("CXR_S3__ADDRESSING_STYLE", "path")
    folder = tmp_path / "seed-1"
    folder.mkdir()
    (folder / "model.keras").write_bytes(model_file.read_bytes())
    image = str(next((data_dir / "NORMAL").glob("*.png")))
    for uri in (f"s3://{s3_bucket}/root/{prefix}", str(folder)):
        capsys.readouterr()
        assert cli.main(["evaluate", uri, str(data_dir)]) == 1
        error = capsys.readouterr().err
        assert "no _SUCCESS marker" in error and uri in error and "--allow-uncommitted" in error
        assert cli.main(["predict", uri, image]) == 1
        assert "no _SUCCESS marker" in capsys.readouterr().err
        assert cli.main(["evaluate", uri, str(data_dir), "--allow-uncommitted"]) == 0
        assert cli.main(["predict", uri, image, "--allow-uncommitted"]) == 0
