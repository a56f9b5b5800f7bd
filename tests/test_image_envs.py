"""Image environments (cxrcore.ops.images): each image's clean virtualenv, its job run in it, the import check.

The environments are real: built once per test session into ``$CXR_IMAGE_ENV_CACHE`` (default
``~/.cache/cxr-gan/image-envs``) and reused across sessions, so only the first run pays for the downloads
(tensorflow-cpu, ~250 MB). The seeded failure reproduces the issue that brought this in: the prepare image's lock
and pyproject.toml without scipy, which the demo phantoms (``cxrcore.data.phantom.render``) import.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cxrcore.ops import images
from cxrcore.ops.images import (
    ImageEnvError,
    ImageEnvironments,
    ImageSpec,
    base_kind,
    discover_images,
    image_python_version,
    missing_module_hint,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
IMAGES = ("cxr-gan-train", "cxr-prepare", "cxr-report", "cxr-synthesize", "cxr-train-classifier")
DEMO_SOURCE = "demo://?per_class=4&size=32&seed=0"
RUN_TIMEOUT_S = 300


def _base_tensorflow_version() -> str:
    text = (REPOSITORY_ROOT / "docker" / "gan-train" / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^FROM tensorflow/tensorflow:(\S+)-gpu(?:@sha256:[0-9a-f]{64})?$", text, flags=re.MULTILINE)
    assert match, "the gan-train image builds on tensorflow/tensorflow:<version>-gpu"
    return match.group(1)


def _job_env(tmp_path: Path) -> dict[str, str]:
    """A job's environment: nothing of the dev venv or the source tree reachable."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update({"CXR_LOG_FORMAT": "json", "MPLCONFIGDIR": str(tmp_path / "mpl"), "TF_CPP_MIN_LOG_LEVEL": "2"})
    return env


def _run_prepare(env_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    store = tmp_path / "store"
    command = [str(env_dir / "bin" / "cxr-prepare"), "--source", DEMO_SOURCE, "--store", f"file://{store}"]
    command += ["--name", "demo", "--image-size", "32"]
    return subprocess.run(
        command,
        cwd=tmp_path,
        env=_job_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def environments() -> ImageEnvironments:
    return ImageEnvironments(REPOSITORY_ROOT)


@pytest.fixture(scope="module")
def prepare_env(environments: ImageEnvironments) -> Path:
    return environments.ensure("cxr-prepare")


#: scipy and the core dependency that requires it: the issue's state lacks both (a lock pinning scikit-learn
#: without scipy cannot even be installed in hash-checking mode).
_SEEDED_OUT = ("scipy", "scikit-learn")


def _seeded_root(destination: Path, *, scipy_in_pyproject: bool) -> Path:
    """A repository with only the prepare image, whose lock lacks scipy (and pyproject too, unless asked)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    destination.mkdir(parents=True)
    for name in ("README.md", "pyproject.toml"):
        shutil.copy2(REPOSITORY_ROOT / name, destination / name)
    for name in ("cxrcore", "jobs"):
        shutil.copytree(REPOSITORY_ROOT / name, destination / name, ignore=ignore)
    (destination / "docker" / "prepare").mkdir(parents=True)
    (destination / "docker" / "requirements").mkdir()
    shutil.copy2(REPOSITORY_ROOT / "docker/prepare/Dockerfile", destination / "docker/prepare/Dockerfile")
    lock = (REPOSITORY_ROOT / "docker/requirements/base.txt").read_text(encoding="utf-8")
    without = lock
    for name in _SEEDED_OUT:
        without = re.sub(rf"^{re.escape(name)}==.*?(?=^\S|\Z)", "", without, flags=re.MULTILINE | re.DOTALL)
    assert "scipy" in lock and "scipy==" not in without and "scikit-learn==" not in without
    (destination / "docker/requirements/base.txt").write_text(without, encoding="utf-8")
    pyproject = destination / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    for name in _SEEDED_OUT if not scipy_in_pyproject else _SEEDED_OUT[1:]:
        line = next(line for line in text.splitlines(keepends=True) if line.strip().startswith(f'"{name}>='))
        text = text.replace(line, "", 1)
    pyproject.write_text(text, encoding="utf-8")
    return destination


@pytest.fixture(scope="module")
def seeded_without_scipy(tmp_path_factory: pytest.TempPathFactory) -> ImageEnvironments:
    """The issue's state: scipy in neither pyproject.toml nor the prepare lock."""
    root = _seeded_root(tmp_path_factory.mktemp("seeded") / "repo", scipy_in_pyproject=False)
    return ImageEnvironments(root)


# ------------------------------------------------------------------------------------------- discovery


def test_discover_images_finds_the_five_images() -> None:
    images = discover_images(REPOSITORY_ROOT)
    assert sorted(images) == sorted(IMAGES)
    tensorflow_version = _base_tensorflow_version()
    requirements = REPOSITORY_ROOT / "docker" / "requirements"
    expected = {
        "cxr-prepare": ("prepare", "python", None, "base.txt", "3.11"),
        "cxr-report": ("report", "python", None, "report.txt", "3.11"),
        "cxr-gan-train": ("gan-train", "tensorflow", tensorflow_version, "tf.txt", "3.11"),
        "cxr-synthesize": ("synthesize", "tensorflow", tensorflow_version, "tf.txt", "3.11"),
        "cxr-train-classifier": ("classifier-train", "tensorflow", tensorflow_version, "tf.txt", "3.11"),
    }
    for name, (folder, kind, version, lock, python) in expected.items():
        spec = images[name]
        assert spec.name == name
        assert spec.dockerfile == REPOSITORY_ROOT / "docker" / folder / "Dockerfile"
        assert base_kind(spec) == kind
        if kind == "python":
            assert spec.base_image.startswith("python:3.11")
        else:
            assert spec.base_image.split("@")[0] == f"tensorflow/tensorflow:{tensorflow_version}-gpu"
        assert spec.tensorflow_version == version
        assert spec.requirements == (requirements / lock,)
        assert spec.entrypoint == (name,)
        assert image_python_version(spec) == python


def test_image_names_are_the_argo_templates_repositories() -> None:
    templates = (REPOSITORY_ROOT / "argo" / "templates.yaml").read_text(encoding="utf-8")
    used = set(re.findall(r"image:\s*\"\{\{inputs\.parameters\.registry\}\}/([a-z0-9-]+):", templates))
    assert used == set(IMAGES)


def test_dockerfile_parsing_follows_args_workdir_and_copy_rules(tmp_path: Path) -> None:
    (tmp_path / "docker" / "app").mkdir(parents=True)
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "app.txt").write_text("", encoding="utf-8")
    (tmp_path / "docker" / "app" / "Dockerfile").write_text(
        "ARG TF=2.20.0\n"
        "FROM --platform=linux/amd64 tensorflow/tensorflow:${TF}-gpu AS final\n"
        "LABEL maintainer=someone org.opencontainers.image.title=app-image\n"
        "WORKDIR /srv\n"
        "COPY locks/ /deps/\n"
        "RUN python -m pip install --no-cache-dir \\\n"
        "      -r /deps/app.txt && pip check\n"
        "COPY pyproject.toml ./\n"
        "COPY cxrcore cxrcore\n"
        "RUN pip3 install --no-deps .\n"
        "ENTRYPOINT python -m jobs.app\n",
        encoding="utf-8",
    )
    spec = discover_images(tmp_path)["app-image"]
    assert spec == ImageSpec(
        name="app-image",
        dockerfile=tmp_path / "docker" / "app" / "Dockerfile",
        base_image="tensorflow/tensorflow:2.20.0-gpu",
        tensorflow_version="2.20.0",
        requirements=(tmp_path / "locks" / "app.txt",),
        entrypoint=("/bin/sh", "-c", "python -m jobs.app"),
    )


def test_dockerfile_without_title_label_or_with_a_duplicate_name_is_an_error(tmp_path: Path) -> None:
    for folder in ("one", "two"):
        (tmp_path / "docker" / folder).mkdir(parents=True)
        (tmp_path / "docker" / folder / "Dockerfile").write_text(
            'FROM python:3.11-slim\nLABEL org.opencontainers.image.title="same"\nENTRYPOINT ["x"]\n', encoding="utf-8"
        )
    with pytest.raises(ImageEnvError, match="image same is built by two Dockerfiles: docker/one/Dockerfile and"):
        discover_images(tmp_path)
    (tmp_path / "docker" / "two" / "Dockerfile").write_text('FROM python:3.11-slim\nENTRYPOINT ["x"]\n')
    with pytest.raises(ImageEnvError, match=r"docker/two/Dockerfile: no LABEL org\.opencontainers\.image\.title"):
        discover_images(tmp_path)


def test_image_for_reference(environments: ImageEnvironments) -> None:
    assert environments.image_for_reference("ghcr.io/cxr-gan/cxr-prepare:0.1.0") == "cxr-prepare"
    assert environments.image_for_reference("localhost:5000/team/cxr-report@sha256:" + "0" * 64) == "cxr-report"
    assert environments.image_for_reference("cxr-gan-train") == "cxr-gan-train"
    assert environments.image_for_reference("registry.example/cxr-train-classifier:{{inputs.parameters.tag}}") == (
        "cxr-train-classifier"
    )
    with pytest.raises(ImageEnvError, match="no Dockerfile under docker/ builds image 'busybox'"):
        environments.image_for_reference("docker.io/library/busybox:1.36")
    with pytest.raises(ImageEnvError, match="unknown image 'nope'"):
        environments.ensure("nope")


def test_import_check_follows_the_job_table_from_each_entrypoint(environments: ImageEnvironments) -> None:
    # The entrypoints are one call into cxrcore.jobs_table; the check imports what that call will.
    prepare = environments._entry_modules("cxr-prepare")
    assert prepare[:2] == ["jobs.prepare", "cxrcore.jobs_table"]
    assert {"cxrcore.config", "cxrcore.data.ingest", "cxrcore.data.demo"} <= set(prepare)
    assert not {"cxrcore.steps.gan_train", "cxrcore.steps.synthesize", "cxrcore.report.job"} & set(prepare)
    assert "cxrcore.report.job" in environments._entry_modules("cxr-report")
    assert "cxrcore.steps.gan_train" in environments._entry_modules("cxr-gan-train")


def test_blank_lines_inside_a_continuation_are_skipped_as_docker_does() -> None:
    from cxrcore.ops.dockerfile import instructions

    text = "# escape=`\nFROM python:3.11 AS base\nRUN a `\n\n    # comment\n    b\nUSER 10001\n"
    assert instructions(text) == [(2, "FROM", "python:3.11 AS base"), (3, "RUN", "a  b"), (7, "USER", "10001")]


def test_missing_module_hint() -> None:
    assert missing_module_hint("ModuleNotFoundError: No module named 'scipy'") == "scipy"
    assert missing_module_hint('{"error": "No module named \'scipy.ndimage\'"}') == "scipy.ndimage"
    assert missing_module_hint("everything fine") is None


def _dockerignore_matcher(text: str):
    """Docker's .dockerignore semantics for plain patterns: ``*``/``?`` within a name, ``**`` across folders; a
    path is excluded when it or a folder above it matches."""
    expressions = []
    for line in text.splitlines():
        pattern = line.strip().strip("/")
        if not pattern or pattern.startswith("#"):
            continue
        assert not pattern.startswith("!"), "exceptions are not modelled here"
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                regex, index = regex + "(?:.*/)?", index + 3
            elif pattern.startswith("**", index):
                regex, index = regex + ".*", index + 2
            else:
                character = pattern[index]
                regex += {"*": "[^/]*", "?": "[^/]"}.get(character, re.escape(character))
                index += 1
        expressions.append(re.compile(regex))

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
        return any(expression.fullmatch(prefix) for expression in expressions for prefix in prefixes)

    return ignored


def test_dockerignore_keeps_what_the_images_copy_and_drops_the_rest() -> None:
    ignored = _dockerignore_matcher((REPOSITORY_ROOT / ".dockerignore").read_text(encoding="utf-8"))
    dropped = [".venv", "cxr-store", "cxr-runs", "__pycache__", "cxrcore/data/__pycache__", "cxr_gan.egg-info"]
    dropped += [".git", ".pytest_cache", "build", "bench/results", "tests", "tests/test_locks.py"]
    for path in dropped:
        assert ignored(path), path
    copied = set()
    for spec in discover_images(REPOSITORY_ROOT).values():
        text = spec.dockerfile.read_text(encoding="utf-8")
        for line in re.findall(r"^COPY (.+)$", text, flags=re.MULTILINE):
            copied.update(word for word in line.split()[:-1] if not word.startswith("--"))
    assert copied == {"pyproject.toml", "README.md", "cxrcore", "jobs", *(
        f"docker/requirements/{name}" for name in ("base.txt", "report.txt", "tf.txt")
    )}
    for path in [*copied, "cxrcore/data/demo.py", "jobs/prepare.py"]:
        assert not ignored(path), path


# ----------------------------------------------------------------------------------------- environments


def test_build_lock_is_exclusive(tmp_path: Path) -> None:
    lock = tmp_path / "env-x.lock"
    with images._file_lock(lock, image="cxr-prepare"):
        with pytest.raises(ImageEnvError, match="image cxr-prepare: another process has held"):
            with images._file_lock(lock, image="cxr-prepare", timeout_s=0.3):
                pass
    with images._file_lock(lock, image="cxr-prepare", timeout_s=0.3):
        pass


def test_prepare_image_env_runs_cxr_prepare_on_demo_data(prepare_env: Path, tmp_path: Path) -> None:
    config = (prepare_env / "pyvenv.cfg").read_text(encoding="utf-8")
    assert re.search(r"include-system-site-packages\s*=\s*false", config)
    code = (
        "import importlib.util, json, cxrcore; print(json.dumps([cxrcore.__file__, "
        "importlib.util.find_spec('tensorflow') is None, importlib.util.find_spec('matplotlib') is None]))"
    )
    probe = subprocess.run(
        [str(prepare_env / "bin" / "python"), "-I", "-c", code],
        cwd=tmp_path,
        env=_job_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=True,
    )
    origin, no_tensorflow, no_matplotlib = json.loads(probe.stdout)
    assert Path(origin).resolve().is_relative_to(prepare_env.resolve())  # installed, not the source tree
    assert no_tensorflow and no_matplotlib  # the CPU image carries neither

    result = _run_prepare(prepare_env, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert summary
    latest = tmp_path / "store" / "datasets" / "demo" / "latest.json"
    assert latest.is_file()
    version = json.loads(latest.read_text(encoding="utf-8"))
    assert version


def test_ensure_reuses_the_environment(environments: ImageEnvironments, prepare_env: Path) -> None:
    marker = prepare_env / ".cxr-third-party.json"
    project_marker = prepare_env / ".cxr-project.json"
    before = (marker.stat().st_mtime_ns, project_marker.stat().st_mtime_ns)
    assert environments.ensure("cxr-prepare") == prepare_env
    assert (marker.stat().st_mtime_ns, project_marker.stat().st_mtime_ns) == before


def test_seeded_missing_module_fails_the_import_check_naming_image_and_module(
    seeded_without_scipy: ImageEnvironments, tmp_path: Path
) -> None:
    problems = seeded_without_scipy.check_import_closure("cxr-prepare")
    assert problems == [
        "image cxr-prepare: module 'scipy' missing (imported by cxrcore.data.phantom.render); add it to "
        "pyproject.toml and run make lock"
    ]
    # What the cluster saw: the job itself exits 1 and its log names the module.
    result = _run_prepare(seeded_without_scipy.ensure("cxr-prepare"), tmp_path)
    assert result.returncode == 1
    assert missing_module_hint(result.stdout + result.stderr) == "scipy"


def test_seeded_lock_missing_a_pyproject_dependency_fails_pip_check(tmp_path: Path) -> None:
    environments = ImageEnvironments(_seeded_root(tmp_path / "repo", scipy_in_pyproject=True))
    with pytest.raises(ImageEnvError, match=r"(?s)image cxr-prepare: pip check found conflicts.*requires scipy"):
        environments.ensure("cxr-prepare")
    problems = environments.check_import_closure("cxr-prepare")
    assert len(problems) == 1 and problems[0].startswith("image cxr-prepare: pip check") and "scipy" in problems[0]


def test_project_edit_reinstalls_only_the_project(seeded_without_scipy: ImageEnvironments) -> None:
    env_dir = seeded_without_scipy.ensure("cxr-prepare")
    third_party = (env_dir / ".cxr-third-party.json").stat().st_mtime_ns
    project = json.loads((env_dir / ".cxr-project.json").read_text(encoding="utf-8"))
    module = seeded_without_scipy.root / "jobs" / "prepare.py"
    module.write_text(module.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert seeded_without_scipy.ensure("cxr-prepare") == env_dir
    assert (env_dir / ".cxr-third-party.json").stat().st_mtime_ns == third_party
    assert json.loads((env_dir / ".cxr-project.json").read_text(encoding="utf-8")) != project
    installed = next((env_dir / "lib").glob("python*/site-packages/jobs/prepare.py"))
    assert installed.read_text(encoding="utf-8").endswith("# edited\n")


@pytest.mark.parametrize("image", IMAGES)
def test_import_closure_passes_for_every_image(environments: ImageEnvironments, image: str) -> None:
    assert environments.check_import_closure(image) == []
