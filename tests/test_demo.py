"""Tests of ``cxrcore.data.demo``: the procedural chest-X-ray-like phantoms used as the demo dataset."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrcore.data import demo

KAGGLE_STYLE_NAME = re.compile(r"^(?P<prefix>[A-Z0-9]+)-IM-(?P<patient>\d{4})-(?P<image>\d{4})\.jpeg$")


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative POSIX path, with its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def _images(root: Path, split: str, class_name: str) -> list[Path]:
    """The JPEG files of one split and class."""
    return sorted((root / split / class_name).glob("*.jpeg"))


def _patients(root: Path, split: str, class_name: str) -> set[str]:
    """Patient ids (``<prefix>-<patient>``) parsed from the file names of one split and class."""
    patients = set()
    for path in _images(root, split, class_name):
        match = KAGGLE_STYLE_NAME.match(path.name)
        assert match is not None, path.name
        patients.add(f"{match['prefix']}-{match['patient']}")
    return patients


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A small demo dataset shared by the read-only layout tests."""
    out_dir = tmp_path_factory.mktemp("demo") / "chest_xray"
    summary = demo.write_demo_dataset(out_dir, per_class=40, size=32, seed=7, test_fraction=0.2)
    return out_dir, summary


# --------------------------------------------------------------------------------------------------------------
# generate_phantom
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "pneumonia"),
    [(16, False), (32, False), (32, True), (64, False), (64, True), (100, True)],
)
def test_generate_phantom_shape_and_dtype(size: int, pneumonia: bool) -> None:
    image = demo.generate_phantom(np.random.default_rng(0), size=size, pneumonia=pneumonia)
    assert image.shape == (size, size)
    assert image.dtype == np.uint8
    # Not blank: dark background and lungs, bright tissue and bone.
    assert int(image.max()) - int(image.min()) > 100


def test_generate_phantom_is_deterministic_per_seed() -> None:
    first = demo.generate_phantom(np.random.default_rng(123), size=48, pneumonia=True)
    again = demo.generate_phantom(np.random.default_rng(123), size=48, pneumonia=True)
    other = demo.generate_phantom(np.random.default_rng(124), size=48, pneumonia=True)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_generate_phantom_background_is_dark_and_lungs_darker_than_mediastinum() -> None:
    images = np.stack(
        [demo.generate_phantom(np.random.default_rng(seed), size=64, pneumonia=False) for seed in range(10)]
    ).astype(np.float64)
    corners = images[:, 40:, :2].mean()  # Lower corners: air beside the torso.
    lung = images[:, 24:34, 10:18].mean()  # Middle of the image-left lung field.
    mediastinum = images[:, 40:48, 28:36].mean()  # Heart and spine.
    assert corners < lung < mediastinum


@pytest.mark.parametrize(("size", "message"), [(15, "Received: size=15"), (1025, "Received: size=1025")])
def test_generate_phantom_rejects_bad_size(size: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        demo.generate_phantom(np.random.default_rng(0), size=size, pneumonia=False)


def test_generate_phantom_rejects_non_generator() -> None:
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        demo.generate_phantom(0, size=32, pneumonia=False)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------
# Statistics (no training)
# --------------------------------------------------------------------------------------------------------------


def _best_threshold_accuracy(values: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the best single threshold on ``values``, in either direction."""
    best = 0.0
    for threshold in values:
        above = (values > threshold) == labels.astype(bool)
        best = max(best, float(above.mean()), float(1.0 - above.mean()))
    return best


def test_pneumonia_brightens_lungs_but_no_global_statistic_separates_classes() -> None:
    size, count = 64, 50

    def window(x_start: float, x_stop: float, y_start: float, y_stop: float) -> tuple[slice, slice]:
        to_pixel = lambda value: int(round((value + 1.0) / 2.0 * size))  # noqa: E731
        return slice(to_pixel(y_start), to_pixel(y_stop)), slice(to_pixel(x_start), to_pixel(x_stop))

    # Central parts of both lung fields, above the heart and the diaphragm domes.
    lung_windows = (window(-0.58, -0.25, -0.4, 0.25), window(0.28, 0.58, -0.4, 0.1))
    lung_means: dict[bool, np.ndarray] = {}
    global_means: dict[bool, np.ndarray] = {}
    for pneumonia in (False, True):
        rng = np.random.default_rng([2024, int(pneumonia)])
        images = [demo.generate_phantom(rng, size=size, pneumonia=pneumonia) for _ in range(count)]
        lung_means[pneumonia] = np.array([np.mean([image[w].mean() for w in lung_windows]) for image in images])
        global_means[pneumonia] = np.array([image.mean() for image in images])

    assert lung_means[True].mean() > lung_means[False].mean() + 10.0
    # The distributions overlap: some NORMAL lungs are brighter than some PNEUMONIA lungs.
    assert lung_means[False].max() > lung_means[True].min()
    labels = np.r_[np.zeros(count), np.ones(count)]
    global_accuracy = _best_threshold_accuracy(np.concatenate([global_means[False], global_means[True]]), labels)
    assert global_accuracy < 0.9
    lung_accuracy = _best_threshold_accuracy(np.concatenate([lung_means[False], lung_means[True]]), labels)
    assert lung_accuracy < 0.9


# --------------------------------------------------------------------------------------------------------------
# write_demo_dataset
# --------------------------------------------------------------------------------------------------------------


def test_layout_counts_and_summary(small_dataset: tuple[Path, dict]) -> None:
    out_dir, summary = small_dataset
    assert summary["out_dir"] == str(out_dir.resolve())
    assert summary["synthetic"] is True
    assert (summary["seed"], summary["size"], summary["per_class"]) == (7, 32, 40)
    assert sorted(path.name for path in out_dir.iterdir()) == sorted(
        ["train", "test", demo.MANIFEST_NAME, demo.README_NAME]
    )
    for split in ("train", "test"):
        assert sorted(path.name for path in (out_dir / split).iterdir()) == ["NORMAL", "PNEUMONIA"]
        for class_name in ("NORMAL", "PNEUMONIA"):
            assert summary["counts"][split][class_name] == len(_images(out_dir, split, class_name))
            assert summary["patients"][split][class_name] == len(_patients(out_dir, split, class_name))
    for class_name in ("NORMAL", "PNEUMONIA"):
        assert summary["counts"]["train"][class_name] + summary["counts"]["test"][class_name] == 40
        assert abs(summary["counts"]["test"][class_name] - 8) <= 2  # About test_fraction * per_class.


def test_images_are_grayscale_jpegs_of_the_requested_size(small_dataset: tuple[Path, dict]) -> None:
    out_dir, _ = small_dataset
    paths = list(out_dir.rglob("*.jpeg"))
    assert len(paths) == 80
    for path in paths[:10]:
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.mode == "L"
            assert image.size == (32, 32)


def test_file_names_follow_the_kaggle_scheme(small_dataset: tuple[Path, dict]) -> None:
    out_dir, _ = small_dataset
    expected_prefix = {"NORMAL": "PHANTOMN", "PNEUMONIA": "PHANTOMP"}
    for class_name, prefix in expected_prefix.items():
        images_by_patient: dict[str, list[int]] = {}
        for split in ("train", "test"):
            for path in _images(out_dir, split, class_name):
                match = KAGGLE_STYLE_NAME.match(path.name)
                assert match is not None, path.name
                assert match["prefix"] == prefix
                assert demo.FILENAME_PATTERN.match(path.name)
                images_by_patient.setdefault(match["patient"], []).append(int(match["image"]))
        for patient, images in images_by_patient.items():
            assert sorted(images) == list(range(1, len(images) + 1)), patient
            assert 1 <= len(images) <= 3, patient
        assert len(images_by_patient) < 40  # Some patients have several views.


def test_patients_never_straddle_the_split(small_dataset: tuple[Path, dict]) -> None:
    out_dir, _ = small_dataset
    for class_name in ("NORMAL", "PNEUMONIA"):
        train_patients = _patients(out_dir, "train", class_name)
        test_patients = _patients(out_dir, "test", class_name)
        assert train_patients and test_patients
        assert not train_patients & test_patients


def test_manifest_and_readme_label_the_data_as_synthetic(small_dataset: tuple[Path, dict]) -> None:
    out_dir, summary = small_dataset
    manifest = json.loads((out_dir / "DEMO_SYNTHETIC.json").read_text(encoding="utf-8"))
    assert manifest["synthetic"] is True
    assert manifest["generator"] == "cxrcore.data.demo"
    assert manifest["version"] == 1
    assert (manifest["seed"], manifest["size"], manifest["per_class"]) == (7, 32, 40)
    assert manifest["counts"] == summary["counts"]
    readme = (out_dir / "README.txt").read_text(encoding="utf-8")
    assert "NOT MEDICAL DATA" in readme.upper()
    assert "phantom" in readme.lower()


def test_views_of_one_patient_share_anatomy_but_differ(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    demo.write_demo_dataset(out_dir, per_class=30, size=64, seed=3)
    second_views = sorted(out_dir.rglob("PHANTOMN-IM-*-0002.jpeg"))
    assert second_views
    second_view = second_views[0]
    first_view = second_view.with_name(second_view.name.replace("-0002.jpeg", "-0001.jpeg"))
    assert first_view.is_file()
    first = np.asarray(Image.open(first_view), dtype=np.float64)
    second = np.asarray(Image.open(second_view), dtype=np.float64)
    assert not np.array_equal(first, second)
    assert np.corrcoef(first.ravel(), second.ravel())[0, 1] > 0.8


def test_same_parameters_give_byte_identical_files(tmp_path: Path) -> None:
    first = demo.write_demo_dataset(tmp_path / "first", per_class=6, size=32, seed=11)
    second = demo.write_demo_dataset(tmp_path / "second", per_class=6, size=32, seed=11)
    other = demo.write_demo_dataset(tmp_path / "other", per_class=6, size=32, seed=12)
    assert first["counts"] == second["counts"]
    assert _files(tmp_path / "first") == _files(tmp_path / "second")
    first_images = {name: data for name, data in _files(tmp_path / "first").items() if name.endswith(".jpeg")}
    other_images = {name: data for name, data in _files(tmp_path / "other").items() if name.endswith(".jpeg")}
    assert other["synthetic"] is True
    assert first_images != other_images


def test_patients_do_not_depend_on_other_patients(tmp_path: Path) -> None:
    small = tmp_path / "small"
    large = tmp_path / "large"
    demo.write_demo_dataset(small, per_class=6, size=32, seed=5, test_fraction=0.5)
    demo.write_demo_dataset(large, per_class=20, size=32, seed=5, test_fraction=0.5)
    large_by_name = {path.name: path.read_bytes() for path in large.rglob("*.jpeg")}
    shared = 0
    for path in small.rglob("*.jpeg"):
        if path.name in large_by_name:
            assert path.read_bytes() == large_by_name[path.name], path.name
            shared += 1
    assert shared >= 4


def test_rerun_with_identical_parameters_is_a_no_op(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    summary = demo.write_demo_dataset(out_dir, per_class=6, size=32, seed=1)
    modification_times = {path: path.stat().st_mtime_ns for path in out_dir.rglob("*")}
    again = demo.write_demo_dataset(str(out_dir), per_class=6, size=32, seed=1)
    assert again == summary
    assert {path: path.stat().st_mtime_ns for path in out_dir.rglob("*")} == modification_times
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo"]


def test_empty_existing_directory_is_filled(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    out_dir.mkdir()
    summary = demo.write_demo_dataset(out_dir, per_class=4, size=16, seed=0)
    assert (out_dir / demo.MANIFEST_NAME).is_file()
    assert sum(sum(classes.values()) for classes in summary["counts"].values()) == 8
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo"]


def test_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    out_dir = tmp_path / "precious"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(out_dir))):
        demo.write_demo_dataset(out_dir, per_class=4, size=16)
    assert [path.name for path in out_dir.iterdir()] == ["notes.txt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["precious"]


def test_refuses_a_demo_dataset_with_other_parameters(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    demo.write_demo_dataset(out_dir, per_class=4, size=16, seed=0)
    before = _files(out_dir)
    with pytest.raises(ValueError, match=r"seed: existing=0, requested=1"):
        demo.write_demo_dataset(out_dir, per_class=4, size=16, seed=1)
    with pytest.raises(ValueError, match=re.escape(str(out_dir))):
        demo.write_demo_dataset(out_dir, per_class=4, size=32, seed=0)
    assert _files(out_dir) == before


def test_refuses_an_incomplete_demo_dataset(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    demo.write_demo_dataset(out_dir, per_class=4, size=16, seed=0)
    next((out_dir / "train" / "NORMAL").glob("*.jpeg")).unlink()
    with pytest.raises(ValueError, match="incomplete or modified"):
        demo.write_demo_dataset(out_dir, per_class=4, size=16, seed=0)


def test_refuses_a_file_in_place_of_the_directory(tmp_path: Path) -> None:
    out_path = tmp_path / "demo"
    out_path.write_text("not a directory", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(out_path))):
        demo.write_demo_dataset(out_path, per_class=4, size=16)


def test_interrupted_run_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original_render = demo._render
    calls = {"count": 0}

    def failing_render(*arguments, **keyword_arguments):
        calls["count"] += 1
        if calls["count"] > 5:
            raise KeyboardInterrupt
        return original_render(*arguments, **keyword_arguments)

    monkeypatch.setattr(demo, "_render", failing_render)
    with pytest.raises(KeyboardInterrupt):
        demo.write_demo_dataset(tmp_path / "demo", per_class=10, size=16)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("keyword_arguments", "message"),
    [
        ({"per_class": 1}, "Received: per_class=1"),
        ({"per_class": 0}, "Received: per_class=0"),
        ({"size": 15}, "Received: size=15"),
        ({"size": 1025}, "Received: size=1025"),
        ({"test_fraction": 0.0}, "Received: test_fraction=0.0"),
        ({"test_fraction": 1.0}, "Received: test_fraction=1.0"),
        ({"test_fraction": -0.2}, "Received: test_fraction=-0.2"),
        ({"seed": -1}, "Received: seed=-1"),
    ],
)
def test_validation_errors(tmp_path: Path, keyword_arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        demo.write_demo_dataset(tmp_path / "demo", **keyword_arguments)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------------------
# Learnability (slow)
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tiny_cnn_learns_the_task_but_not_perfectly(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    size = 48
    out_dir = tmp_path / "demo"
    demo.write_demo_dataset(out_dir, per_class=200, size=size, seed=0, test_fraction=0.2)

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        pixels, labels = [], []
        for label, class_name in enumerate(("NORMAL", "PNEUMONIA")):
            for path in _images(out_dir, split, class_name):
                pixels.append(np.asarray(Image.open(path), dtype=np.float32) / 255.0)
                labels.append(label)
        return np.stack(pixels)[..., None], np.asarray(labels, dtype=np.float32)

    train_pixels, train_labels = load("train")
    test_pixels, test_labels = load("test")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((size, size, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(train_pixels, train_labels, epochs=15, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(test_pixels, test_labels, verbose=0)
    assert 0.7 <= accuracy <= 0.99, accuracy


def _tree_digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes, in path order."""
    digest = hashlib.sha256()
    for name, data in _files(root).items():
        digest.update(name.encode())
        digest.update(data)
    return digest.hexdigest()


def test_phantoms_and_demo_files_are_pinned(tmp_path: Path) -> None:
    """Pixels of four phantoms and every byte of a small demo dataset, pinned before the renderer was split up."""
    phantoms = b"".join(
        demo.generate_phantom(np.random.default_rng(seed), size=size, pneumonia=pneumonia).tobytes()
        for seed in (0, 5)
        for pneumonia in (False, True)
        for size in (64, 100)
    )
    assert hashlib.sha256(phantoms).hexdigest() == (
        "4f196deedfb3f59acf941ca58af8a9d8c85e9e07c0b08cd1f5eda7f9d1437a52"
    )
    summary = demo.write_demo_dataset(tmp_path / "demo", per_class=6, size=48, seed=11, test_fraction=0.3)
    assert summary.pop("out_dir") == str(tmp_path / "demo")
    assert _tree_digest(tmp_path / "demo") == "36dadb97e37950bcd4f5ee78728473655377283593fc8fd2ded5bf47fa5f2a6d"
    assert hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest() == (
        "a868d1ff3170ab51f85c4d8ec96679e428e6576d3b552f4f3f93bdf6e8327114"
    )
