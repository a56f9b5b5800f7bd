"""Grad-CAM explanations (``cxrcore.explain``) and ``cxr predict --explain``."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures_images import gradient, jpeg_bytes, png_bytes, truncated_png

keras = pytest.importorskip("keras")

from cxrcore import cli
from cxrcore.data.images import REJECTION_REASONS, decode_image
from cxrcore.explain import grad_cam, jet_colors, overlay, render_explanation
from cxrcore.inference import predict_pixels
from cxrcore.models import build_classifier

SIZE = 32
CORNER = 10


def _corner_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dim noise; label 1 images hold a bright square in the top-left corner, which alone decides the class."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, size=(count, SIZE, SIZE), dtype=np.uint8)
    labels = np.arange(count) % 2
    pixels[labels == 1, :CORNER, :CORNER] = 255
    return pixels, labels


@pytest.fixture(scope="module")
def corner_model():
    """The custom CNN trained for a few steps to tell images by their top-left corner."""
    keras.utils.set_random_seed(0)
    model = build_classifier("custom_cnn", input_size=SIZE)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    pixels, labels = _corner_images(64, seed=0)
    inputs = np.repeat(pixels[..., None].astype("float32"), 3, axis=-1)
    model.fit(inputs, labels.astype("float32"), epochs=6, batch_size=16, verbose=0)
    return model


def test_heatmaps_have_the_images_shape_and_lie_in_the_unit_range(corner_model) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, size=(3, 48, 40), dtype=np.uint8)
    backbone = build_classifier("vgg16", input_size=SIZE, weights=None)
    for model in (corner_model, backbone):
        heatmaps = grad_cam(model, pixels)
        assert heatmaps.shape == pixels.shape and heatmaps.dtype == np.float32
        assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    assert grad_cam(corner_model, pixels[:0]).shape == (0, 48, 40)
    with pytest.raises(ValueError, match="uint8"):
        grad_cam(corner_model, pixels.astype(np.float32))


def test_heatmap_concentrates_where_the_class_is_decided(corner_model) -> None:
    pixels, labels = _corner_images(8, seed=1)
    positives = pixels[labels == 1]
    assert (predict_pixels(corner_model, positives) > 0.5).all()
    assert (predict_pixels(corner_model, pixels[labels == 0]) < 0.5).all()
    heatmaps = grad_cam(corner_model, positives)
    inside = np.zeros((SIZE, SIZE), dtype=bool)
    inside[:CORNER, :CORNER] = True
    assert heatmaps[:, inside].mean() > 2 * heatmaps[:, ~inside].mean()


def test_overlay_blends_a_colour_ramp_over_the_xray() -> None:
    assert np.allclose(jet_colors(np.array([0.0, 1.0])), [[0.0, 0.0, 0.5], [0.5, 0.0, 0.0]])
    pixels = gradient(SIZE, SIZE).astype(np.uint8)
    heatmap = np.zeros((SIZE, SIZE), dtype=np.float32)
    heatmap[:8, :8] = 1.0
    rgb = overlay(pixels, heatmap)
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] > rgb[0, 0, 2] and rgb[-1, -1, 2] > rgb[-1, -1, 0]  # red where hot, blue where cold
    assert np.array_equal(overlay(pixels, heatmap, alpha=0.0)[..., 0], pixels)
    with pytest.raises(ValueError, match="same"):
        overlay(pixels, heatmap[:4])
    png = Image.open(io.BytesIO(render_explanation(pixels, heatmap, 0.25)))
    assert png.format == "PNG" and png.width >= 256 and png.height > png.width


def test_cxr_predict_explain_writes_one_png_per_readable_image(
    corner_model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path = tmp_path / "model.keras"
    corner_model.save(model_path)
    images = {"a/chest.png": png_bytes("L", (SIZE, SIZE)), "b/chest.jpeg": jpeg_bytes("RGB", (90, 70))}
    images["broken.png"] = truncated_png()
    paths = []
    for name, data in images.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    out = tmp_path / "explanations"

    code = cli.main(["predict", str(model_path), *map(str, paths), str(tmp_path / "absent.png"), "--explain", str(out)])

    assert code == 1  # the unreadable images make the exit status 1; the others are explained
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line.get("explanation") for line in lines] == [
        str(out / "chest.gradcam.png"), str(out / "chest-2.gradcam.png"), None, None
    ]
    assert sorted(path.name for path in out.iterdir()) == ["chest-2.gradcam.png", "chest.gradcam.png"]
    for line, path in zip(lines[:2], paths[:2]):
        pixels = decode_image(path.read_bytes(), size=SIZE).pixels[None]
        assert line["probability"] == pytest.approx(float(predict_pixels(corner_model, pixels)[0]), abs=1e-6)
        assert Image.open(line["explanation"]).format == "PNG"
    for line in lines[2:]:
        assert line["probability"] is None
        assert line["error"].split(":")[0] in {*REJECTION_REASONS, "unreadable"}
