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
from cxrcore.explain import (
    OUTCOMES,
    PANEL_TILE,
    cell_positions,
    explained_layer,
    grad_cam,
    jet_colors,
    overlay,
    panel_size,
    render_explanation,
    render_panel,
    select_examples,
)
from cxrcore.inference import predict_pixels
from cxrcore.models import build_classifier, classifier_min_input_size
from cxrcore.vocab import MODEL_NAMES

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


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_classifier_is_explained_at_its_last_convolutional_block(name: str) -> None:
    # As cxr-train-classifier builds them with weights=none: backbones trained end to end (from_scratch).
    size = classifier_min_input_size(name)
    keras.utils.set_random_seed(0)
    model = build_classifier(name, input_size=size, from_scratch=name != "custom_cnn")
    expected = "conv_3" if name == "custom_cnn" else next(
        layer.name for layer in model.layers if isinstance(layer, keras.Model)
    )
    assert explained_layer(model) == expected
    pixels = np.random.default_rng(2).integers(0, 256, size=(2, size, size), dtype=np.uint8)
    heatmaps = grad_cam(model, pixels)
    assert heatmaps.shape == pixels.shape and np.isfinite(heatmaps).all()
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    keras.backend.clear_session()


def test_a_model_without_a_convolutional_block_is_refused() -> None:
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match="no convolutional layer"):
        explained_layer(keras.Model(inputs, outputs))


def test_examples_are_the_most_confident_of_each_outcome() -> None:
    ids = ["e", "d", "c", "b", "a", "f", "g", "h", "i"]
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0, 1])
    probabilities = np.array([0.9, 0.99, 0.9, 0.2, 0.01, 0.7, 0.1, 0.5, 0.3])
    examples = select_examples(ids, labels, probabilities, per_outcome=2)
    assert [(example.outcome, example.image_id) for example in examples] == [
        ("true_positive", "d"), ("true_positive", "c"),  # 0.99, then the tie 0.9 by image id
        ("true_negative", "a"), ("true_negative", "b"),
        ("false_positive", "f"), ("false_positive", "h"),  # 0.5 is at the threshold: predicted PNEUMONIA
        ("false_negative", "g"), ("false_negative", "i"),
    ]
    assert examples[0].index == 1 and examples[0].label == 1 and examples[0].probability == 0.99
    assert cell_positions(examples) == [(row, column) for row in range(4) for column in range(2)]
    assert [example.outcome for example in select_examples(ids, labels, probabilities, per_outcome=1)] == list(OUTCOMES)
    assert select_examples(ids, labels, probabilities, per_outcome=0) == []
    at_08 = select_examples(ids, labels, probabilities, per_outcome=5, threshold=0.8)
    assert {example.image_id for example in at_08 if example.outcome == "false_negative"} == {"g", "i"}
    for bad, match in (
        ({"labels": np.array([2] * 9)}, "labels must be 0 or 1"),
        ({"probabilities": np.full(9, 1.5)}, "probabilities must be finite"),
        ({"image_ids": ids[:3]}, "one entry per image"),
        ({"per_outcome": -1}, "per_outcome=-1"),
        ({"threshold": 1.0}, "threshold=1.0"),
    ):
        arguments = {"image_ids": ids, "labels": labels, "probabilities": probabilities, "per_outcome": 2, **bad}
        with pytest.raises(ValueError, match=match):
            select_examples(**arguments)


def test_panel_has_a_row_per_outcome_and_an_xray_beside_each_overlay() -> None:
    labels = np.array([1, 0, 0, 1, 1])
    probabilities = np.array([0.8, 0.3, 0.1, 0.95, 0.6])
    examples = select_examples([f"id{index}" for index in range(5)], labels, probabilities, per_outcome=2)
    assert [example.outcome for example in examples] == ["true_positive", "true_positive", "true_negative",
                                                        "true_negative"]  # no wrong prediction: two empty rows
    pixels = np.stack([gradient(SIZE, SIZE).astype(np.uint8)] * len(examples))
    heatmaps = np.zeros(pixels.shape, dtype=np.float32)
    heatmaps[:, :8, :8] = 1.0
    png = render_panel(pixels, heatmaps, examples, per_outcome=2)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    width, height = panel_size(2)
    assert image.shape == (height, width, 3) and (width, height) == (8 + 2 * (2 * PANEL_TILE + 8), 20 + 4 * 176)
    # The first cell: the X-ray (gray) at the left, its overlay (red where the heatmap is hot) beside it.
    top, left = 20 + 18, 8
    xray = image[top : top + PANEL_TILE, left : left + PANEL_TILE].astype(int)
    heat = image[top : top + PANEL_TILE, left + PANEL_TILE : left + 2 * PANEL_TILE].astype(int)
    assert (xray[..., 0] == xray[..., 1]).all() and (xray[..., 1] == xray[..., 2]).all()
    assert heat[2, 2, 0] > heat[2, 2, 2] + 50 and heat[-3, -3, 2] > heat[-3, -3, 0]
    # Rows without examples hold no tile (only their title and a "none" line: few lit pixels).
    false_positive_row = image[20 + 2 * 176 + 18 : 20 + 2 * 176 + 18 + PANEL_TILE]
    assert (false_positive_row.max(axis=-1) > 0).mean() < 0.05
    with pytest.raises(ValueError, match="more than per_outcome"):
        render_panel(pixels, heatmaps, examples, per_outcome=1)
    with pytest.raises(ValueError, match="one image per example"):
        render_panel(pixels[:2], heatmaps[:2], examples, per_outcome=2)
