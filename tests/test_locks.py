"""The checked-in locks (docker/requirements/*.txt) agree with pyproject.toml and the Dockerfiles, offline.

The real repository's locks must be current (their ``inputs-sha256`` header matches pyproject.toml and the
TensorFlow base version), exact (``name==version`` with sha256 hashes) and complete (every requirement of the
images' dependency set pinned at a satisfying version). Seeded copies of pyproject.toml and docker/ in
``tmp_path`` check that each kind of drift is reported with the command that fixes it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cxrcore.ops import locks
from cxrcore.ops.images import base_kind, discover_images
from cxrcore.ops.locks import LOCK_COMMAND, LOCKS, LockError, check_locks, inputs_digest, lock_requirements, parse_lock

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = locks._project(REPOSITORY_ROOT)
HASH_LINE = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def _lock(spec: locks.LockSpec, root: Path = REPOSITORY_ROOT) -> locks.LockFile:
    path = root / spec.path
    return parse_lock(path.read_text(encoding="utf-8"), path)


def _tensorflow_version(root: Path = REPOSITORY_ROOT) -> str:
    versions = {
        image.tensorflow_version for image in discover_images(root).values() if base_kind(image) == "tensorflow"
    }
    assert len(versions) == 1, versions
    return versions.pop()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A copy of what the locks depend on: pyproject.toml and docker/."""
    shutil.copy2(REPOSITORY_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPOSITORY_ROOT / "docker", tmp_path / "docker")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# ----------------------------------------------------------------------------------- the real repository


def test_checked_in_locks_are_current_and_complete() -> None:
    assert check_locks(REPOSITORY_ROOT) == []


@pytest.mark.parametrize("spec", LOCKS, ids=[spec.name for spec in LOCKS])
def test_every_lock_line_is_an_exact_hashed_pin(spec: locks.LockSpec) -> None:
    text = (REPOSITORY_ROOT / spec.path).read_text(encoding="utf-8")
    lock = parse_lock(text, Path(spec.path))
    assert lock.pins
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*==[^\s=]+ \\", stripped) or re.fullmatch(
            rf"{HASH_LINE.pattern}( \\)?", stripped
        ), line
    for pin in lock.pins.values():
        assert pin.name == canonicalize_name(pin.name)
        assert pin.hashes and all(re.fullmatch(r"[0-9a-f]{64}", value) for value in pin.hashes), pin


@pytest.mark.parametrize("spec", LOCKS, ids=[spec.name for spec in LOCKS])
def test_every_requirement_of_the_image_is_pinned_at_a_satisfying_version(spec: locks.LockSpec) -> None:
    lock = _lock(spec)
    project = PYPROJECT
    expected = [Requirement(text) for text in project["dependencies"]]
    for extra in spec.extras:
        expected += [Requirement(text) for text in project["optional-dependencies"][extra]]
    assert any(canonicalize_name(item.name) == "scipy" for item in expected)  # the missing module
    for requirement in expected:
        if requirement.marker is not None and not requirement.marker.evaluate(locks.TARGET_MARKERS):
            continue
        pin = lock.pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{spec.path} does not pin {requirement}"
        assert requirement.specifier.contains(pin.version, prereleases=True), (requirement, pin.version)


def test_header_records_the_inputs_of_pyproject() -> None:
    for spec in LOCKS:
        lock = _lock(spec)
        tensorflow_version = _tensorflow_version() if spec.tensorflow else None
        assert lock.header["inputs-sha256"] == inputs_digest(spec, PYPROJECT, tensorflow_version), spec.path
        assert lock.header["lock"] == spec.name
        assert "make lock" in (REPOSITORY_ROOT / spec.path).read_text(encoding="utf-8").splitlines()[0]


def test_tensorflow_lock_is_resolved_with_the_base_images_tensorflow_and_leaves_it_out() -> None:
    spec = next(spec for spec in LOCKS if spec.tensorflow)
    lock = _lock(spec)
    version = _tensorflow_version()
    assert lock.header["base-image-provides"].startswith(f"tensorflow=={version} ")
    assert not locks.TENSORFLOW_DISTRIBUTIONS & set(lock.pins)
    _, provided = lock_requirements(spec, PYPROJECT)
    assert provided, "the tf extra names the TensorFlow the base provides"
    assert all(requirement.specifier.contains(version) for requirement in provided)
    # TensorFlow's own dependencies are pinned, consistent with it.
    assert {"keras", "numpy", "protobuf", "h5py"} <= set(lock.pins)


def test_each_dockerfile_installs_the_lock_of_its_kind_hash_checked() -> None:
    images = discover_images(REPOSITORY_ROOT)
    wanted = {
        "cxr-prepare": "base.txt",
        "cxr-report": "report.txt",
        "cxr-gan-train": "tf.txt",
        "cxr-synthesize": "tf.txt",
        "cxr-train-classifier": "tf.txt",
    }
    assert {name: [path.name for path in image.requirements] for name, image in images.items()} == {
        name: [lock] for name, lock in wanted.items()
    }
    for image in images.values():
        text = image.dockerfile.read_text(encoding="utf-8")
        assert "--require-hashes --only-binary=:all: --requirement" in text, image.dockerfile


def test_check_command_exits_zero_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert locks.main(["--check", "--root", str(REPOSITORY_ROOT)]) == 0
    assert capsys.readouterr().err == ""


def test_inputs_digest_ignores_order_and_formatting_but_not_content() -> None:
    spec = LOCKS[0]
    project = {**PYPROJECT, "dependencies": list(reversed(PYPROJECT["dependencies"]))}
    assert inputs_digest(spec, project, None) == inputs_digest(spec, PYPROJECT, None)
    spaced = {**PYPROJECT, "dependencies": [text.replace(">=", " >= ") for text in PYPROJECT["dependencies"]]}
    assert inputs_digest(spec, spaced, None) == inputs_digest(spec, PYPROJECT, None)
    bumped = {**PYPROJECT, "dependencies": [*PYPROJECT["dependencies"], "rich>=13"]}
    assert inputs_digest(spec, bumped, None) != inputs_digest(spec, PYPROJECT, None)
    # An extra the lock does not use does not matter; one it uses does.
    extras = {**PYPROJECT["optional-dependencies"], "test": ["pytest>=9"]}
    assert inputs_digest(spec, {**PYPROJECT, "optional-dependencies": extras}, None) == inputs_digest(
        spec, PYPROJECT, None
    )
    report = next(spec for spec in LOCKS if spec.name == "report")
    extras = {**PYPROJECT["optional-dependencies"], "report": ["matplotlib>=3.9"]}
    assert inputs_digest(report, {**PYPROJECT, "optional-dependencies": extras}, None) != inputs_digest(
        report, PYPROJECT, None
    )


# ------------------------------------------------------------------------------------------ seeded drift


def test_pyproject_edit_without_regenerating_names_the_command(repository: Path) -> None:
    _edit(repository / "pyproject.toml", '    "scipy>=1.11",\n', '    "scipy>=1.11",\n    "rich>=13",\n')
    problems = check_locks(repository)
    assert any("base.txt is out of date with pyproject.toml" in problem for problem in problems), problems
    assert any("does not pin rich" in problem for problem in problems), problems
    assert all(f"`{LOCK_COMMAND}`" in problem for problem in problems), problems


def test_tensorflow_base_bump_without_regenerating_is_reported(repository: Path) -> None:
    version = _tensorflow_version()
    major, minor, _ = version.split(".")
    older = f"{major}.{int(minor) - 1}.0"
    for folder in ("gan-train", "synthesize", "classifier-train"):
        _edit(repository / "docker" / folder / "Dockerfile", f"tensorflow:{version}-gpu", f"tensorflow:{older}-gpu")
    problems = check_locks(repository)
    assert problems == [
        f"docker/requirements/tf.txt is out of date with pyproject.toml (dependencies, extras or the TensorFlow "
        f"base version changed since it was generated): run `{LOCK_COMMAND}`"
    ]


def test_tensorflow_images_on_different_versions_are_reported(repository: Path) -> None:
    version = _tensorflow_version()
    _edit(repository / "docker" / "synthesize" / "Dockerfile", f"tensorflow:{version}-gpu", "tensorflow:2.16.1-gpu")
    problems = check_locks(repository)
    assert any(
        "different TensorFlow versions" in problem and "cxr-synthesize: 2.16.1" in problem for problem in problems
    ), problems


def test_unhashed_or_loose_lock_line_is_reported_with_its_line(repository: Path) -> None:
    path = repository / "docker" / "requirements" / "base.txt"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "rich>=13\n", encoding="utf-8")
    problems = check_locks(repository)
    assert len(problems) == 1
    assert "docker/requirements/base.txt:" in problems[0] and "'rich>=13'" in problems[0], problems
    assert LOCK_COMMAND in problems[0]


def test_pin_outside_the_specifier_is_reported(repository: Path) -> None:
    path = repository / "docker" / "requirements" / "base.txt"
    pinned = _lock(LOCKS[0]).pins["numpy"].version
    _edit(path, f"numpy=={pinned} ", "numpy==1.20.0 ")
    problems = check_locks(repository)
    assert problems == [
        f"docker/requirements/base.txt pins numpy==1.20.0, which does not satisfy numpy>=1.26: run `{LOCK_COMMAND}`"
    ]


def test_missing_pin_is_reported(repository: Path) -> None:
    path = repository / "docker" / "requirements" / "base.txt"
    text = path.read_text(encoding="utf-8")
    without = re.sub(r"^scipy==.*?(?=^\S)", "", text, flags=re.MULTILINE | re.DOTALL)
    assert "scipy==" not in without
    path.write_text(without, encoding="utf-8")
    assert check_locks(repository) == [
        f"docker/requirements/base.txt does not pin scipy (pyproject.toml: scipy>=1.11): run `{LOCK_COMMAND}`"
    ]


def test_tensorflow_image_installing_the_plain_lock_is_reported(repository: Path) -> None:
    _edit(repository / "docker" / "gan-train" / "Dockerfile", "requirements/tf.txt", "requirements/base.txt")
    problems = check_locks(repository)
    assert "image cxr-gan-train is built on a TensorFlow base but installs docker/requirements/base.txt" in problems


def test_tf_extra_that_excludes_the_base_tensorflow_is_reported(repository: Path) -> None:
    _edit(repository / "pyproject.toml", "tensorflow-cpu>=2.16,<2.22", "tensorflow-cpu>=2.16,<2.19")
    problems = check_locks(repository)
    assert any("which the tf extra's tensorflow-cpu" in problem for problem in problems), problems
    assert any("tf.txt is out of date" in problem for problem in problems), problems


def test_parse_lock_rejects_duplicates() -> None:
    line = "numpy==2.0.0 --hash=sha256:" + "a" * 64
    with pytest.raises(LockError, match="pinned twice"):
        parse_lock(f"{line}\n{line.replace('numpy', 'NumPy')}\n", Path("x.txt"))


def test_generator_refuses_another_platform(monkeypatch: pytest.MonkeyPatch, repository: Path) -> None:
    monkeypatch.setattr(locks.platform, "machine", lambda: "arm64")
    with pytest.raises(LockError, match="resolves for CPython 3.11 on Linux x86_64"):
        locks.write_locks(repository)
    with pytest.raises(LockError, match="unknown lock 'nope'"):
        locks.write_locks(repository, ["nope"])
