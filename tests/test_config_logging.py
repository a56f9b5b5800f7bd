"""Settings precedence and messages; structured logging with secret redaction; job exit codes."""

from __future__ import annotations

import io
import json
import re

import pytest

from cxrcore.config import PrepareSettings, SettingsError, parse_settings
from cxrcore.logging import configure_logging, get_logger, progress, redact
from cxrcore.runtime import EXIT_BAD_SETTINGS, run_job


def test_flags_beat_env_beat_defaults(monkeypatch):
    monkeypatch.setenv("CXR_IMAGE_SIZE", "64")
    monkeypatch.setenv("CXR_SEED", "5")
    monkeypatch.setenv("CXR_S3__ENDPOINT_URL", "http://127.0.0.1:9000")
    settings = parse_settings(PrepareSettings, ["--source", "x", "--image-size", "128", "--s3.addressing-style", "path"])
    assert settings.image_size == 128  # flag
    assert settings.seed == 5  # env
    assert settings.split == "patient"  # default
    assert settings.s3.endpoint_url == "http://127.0.0.1:9000"
    assert settings.s3.addressing_style == "path"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--source", "x", "--image-size", "5"], "image_size"),
        (["--source", "x", "--split", "random"], "split"),
        (["--source", "x", "--test-fraction", "1.5"], "test_fraction"),
        (["--source", "x", "--store", "ftp://host/x"], "store"),
        (["--source", "x", "--s3.endpoint-url", "minio:9000"], "s3.endpoint_url"),
        ([], "source: field required"),
        (["--source", "x", "--bogus", "1"], "--bogus"),
    ],
)
def test_bad_settings_name_the_field_and_value(argv, expected):
    with pytest.raises(SettingsError, match=expected.replace(".", r"\.")) as info:
        parse_settings(PrepareSettings, argv)
    if "Received" in str(info.value):
        assert "Received:" in str(info.value)


def test_endpoint_with_credentials_is_refused():
    with pytest.raises(SettingsError, match="credentials"):
        parse_settings(PrepareSettings, ["--source", "x", "--s3.endpoint-url", "http://user:pw@minio:9000"])


def test_redact_keys_values_and_nested():
    event = {
        "aws_secret_access_key": "abc123secretvalue",
        "token": "t0k3n-value",
        "note": "key AKIAABCDEFGHIJKLMNOP used at https://user:hunter2@minio:9000/x",
        "nested": {"password": "pw", "list": ["Bearer abcdefghijklmnop"]},
        "empty_token": None,
    }
    clean = redact(event)
    text = json.dumps(clean)
    for secret in ("abc123secretvalue", "t0k3n-value", "AKIAABCDEFGHIJKLMNOP", "hunter2", "abcdefghijklmnop"):
        assert secret not in text
    assert clean["nested"]["password"] == "***"
    assert clean["empty_token"] is None


def test_json_logs_are_json_and_redacted(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    get_logger("t", job="x").info("hello", detail="leaked wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY here")
    get_logger("t").debug("hidden")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["event"] == "hello" and lines[0]["job"] == "x" and lines[0]["level"] == "info"
    assert "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY" not in stream.getvalue()


def test_console_format_is_readable():
    stream = io.StringIO()
    configure_logging("INFO", "console", stream=stream)
    get_logger("t").info("hello", n=3)
    text = stream.getvalue()
    assert "hello" in text and "n=3" in text and not text.lstrip().startswith("{")


def test_env_forces_json(monkeypatch):
    monkeypatch.setenv("CXR_LOG_FORMAT", "json")
    stream = io.StringIO()
    configure_logging("INFO", "auto", stream=stream)
    get_logger().info("x")
    assert json.loads(stream.getvalue())["event"] == "x"


def test_progress_logs_final_item():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    assert list(progress(range(5), total=5, event="work", every_seconds=3600)) == list(range(5))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert events[-1]["event"] == "work" and events[-1]["done"] == 5 and events[-1]["percent"] == 100.0


def test_run_job_exit_codes(capsys):
    assert run_job("t", PrepareSettings, lambda s: {"ok": True}, ["--image-size", "3"]) == EXIT_BAD_SETTINGS
    assert "image_size" in capsys.readouterr().err
    assert run_job("t", PrepareSettings, lambda s: {"ok": True}, ["--source", "x"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True}

    def boom(_settings):
        raise ValueError("bad file /data/x.jpeg: truncated")

    assert run_job("t", PrepareSettings, boom, ["--source", "x"]) == 1
    assert "bad file /data/x.jpeg" in capsys.readouterr().err


def test_result_dir_files_for_argo_output_parameters(tmp_path, capsys):
    result = {"version": "v123", "images": 5, "created": True, "counts": {"NORMAL": 2}}
    code = run_job("t", PrepareSettings, lambda s: result, ["--source", "x", "--result-dir", str(tmp_path / "out")])
    assert code == 0
    capsys.readouterr()
    assert (tmp_path / "out" / "version").read_text() == "v123"
    assert (tmp_path / "out" / "images").read_text() == "5"
    assert (tmp_path / "out" / "created").read_text() == "true"
    assert not (tmp_path / "out" / "counts").exists()
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == result


def test_loggers_created_before_configuration_follow_it():
    early = get_logger("module.level", stage="x")  # as modules do at import time
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    early.info("late_event")
    event = json.loads(stream.getvalue())
    assert event["event"] == "late_event" and event["component"] == "module.level" and event["stage"] == "x"


def test_one_job_table_drives_console_scripts_and_cxr_subcommands():
    import ast
    import importlib.util
    import tomllib
    from pathlib import Path

    from cxrcore.cli import build_parser
    from cxrcore.config import JobSettings
    from cxrcore.jobs_table import JOBS, find_job, job, resolve

    root = Path(__file__).resolve().parents[1]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    console = {entry.script: entry for entry in JOBS if entry.script}
    assert set(console) == set(scripts) - {"cxr"}
    for script, entry in console.items():
        assert scripts[script] == f"{entry.entry_module}:main"
        assert find_job(script=script) is entry and find_job(module=entry.entry_module) is entry
        # The entrypoint is one call into the table: the job's name, nothing else.
        tree = ast.parse((root / Path(*entry.entry_module.split("."))).with_suffix(".py").read_text())
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
        named = [call.args[0].value for call in calls if getattr(call.func, "id", "") == "run_entry"]
        assert named == [entry.name]
    for entry in JOBS:
        assert issubclass(entry.settings_class(), JobSettings)
        for module in entry.modules:
            assert importlib.util.find_spec(module) is not None, module
    subcommands = build_parser()._subparsers._group_actions[0].choices
    commands = [entry.command for entry in JOBS if entry.command]
    assert list(subcommands)[-len(commands):] == commands
    assert callable(resolve("cxrcore.steps.matrix:run")) and job("matrix").log_name == "cxr-matrix"
    with pytest.raises(ValueError, match="No job 'nope'"):
        job("nope")
    with pytest.raises(ValueError, match="module:attribute"):
        resolve("cxrcore.steps.matrix")


@pytest.mark.parametrize(
    ("value", "model", "expected"),
    [
        ("0.0003", "vgg16", 3e-4),  # a number (or its text) is the rate of every model
        (3e-4, "custom_cnn", 3e-4),
        ('{"vgg16": 5e-5, "custom_cnn": 1e-3}', "vgg16", 5e-5),
        ('{"vgg16": 5e-5, "custom_cnn": 1e-3}', "custom_cnn", 1e-3),
        (' {"vgg16": 5e-5, "default": 2e-4}', "resnet50", 2e-4),
        ({"xception": 1, "default": 2e-4}, "xception", 1.0),
    ],
)
def test_learning_rate_for_model(value, model, expected):
    from cxrcore.config.training import learning_rate_for_model

    assert learning_rate_for_model(value, model) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"vgg": 1e-4, "default": 1e-4}', "names no such model: vgg"),
        ('{"vgg16": -1, "default": 1e-4}', "learning_rate of vgg16 must be a positive number"),
        ('{"vgg16": "fast", "default": 1e-4}', "learning_rate of vgg16 must be a positive number"),
        ('{"vgg16": NaN, "default": 1e-4}', "learning_rate of vgg16 must be a positive number"),
        ('{"custom_cnn": 1e-3}', "no entry for vgg16 and no 'default' one"),
        ('{"vgg16": 1e-4,}', "is not a JSON object"),
        ("-1", "must be a positive number or a JSON object of them"),
        ("inf", "must be a positive number or a JSON object of them"),
        ("fast", "must be a positive number or a JSON object of them"),
    ],
)
def test_learning_rate_for_model_refuses(value, message):
    from cxrcore.config.training import learning_rate_for_model

    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        learning_rate_for_model(value, "vgg16")
    assert f"Received: learning_rate={value!r}" in str(caught.value)


def test_a_per_model_learning_rate_reaches_each_classifier_and_the_matrix_checks_it_first(capsys):
    import json

    from cxrcore.cli import main
    from cxrcore.config import MatrixSettings, TrainClassifierSettings

    rates = '{"vgg16": 5e-5, "custom_cnn": 1e-3}'
    argv = ["--run-id=r1", "--condition=baseline", f"--learning-rate={rates}"]
    vgg16 = parse_settings(TrainClassifierSettings, [*argv, "--model=vgg16"])
    custom = parse_settings(TrainClassifierSettings, [*argv, "--model=custom_cnn"])
    assert (vgg16.learning_rate, custom.learning_rate) == (5e-5, 1e-3)
    # The rate in effect is what identifies the output: another model's entry changes nothing here.
    other = parse_settings(TrainClassifierSettings, 
        ["--run-id=r1", "--condition=baseline", "--model=vgg16", '--learning-rate={"vgg16": 5e-5, "custom_cnn": 1}']
    )
    assert other.model_dump() == vgg16.model_dump()
    with pytest.raises(SettingsError, match="no entry for resnet50"):
        parse_settings(TrainClassifierSettings, [*argv, "--model=resnet50"])

    assert main(["matrix", "--models", '["vgg16", "custom_cnn"]', f"--learning-rate={rates}"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 2
    assert main(["matrix", "--models", '["vgg16", "resnet50"]', f"--learning-rate={rates}"]) == EXIT_BAD_SETTINGS
    assert "no entry for resnet50 and no 'default' one" in capsys.readouterr().err
    for bad in ("-1", "fast", "nan"):
        with pytest.raises(ValueError, match="learning_rate must be"):
            MatrixSettings(models='["custom_cnn"]', learning_rate=bad)
    assert MatrixSettings(models='["custom_cnn"]').learning_rate == "0.0001"


def test_job_subcommands_run_through_the_table(tmp_path, capsys):
    import json

    from cxrcore.cli import main

    assert main(["matrix", "--models", '["vgg16", "custom_cnn"]', "--seeds", "[0, 1]"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 4
    assert json.loads(result["augmented"])[1] == {"model": "vgg16", "seed": 1, "condition": "augmented"}
    store = tmp_path / "store"
    assert main(["outcome", f"--store={store.as_uri()}", "--run-id=r1", "--status=Failed", "--failures=oops"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["uri"] == f"{store.as_uri()}/runs/r1/workflow.json" and record["failures"] == [{"message": "oops"}]
    assert json.loads((store / "runs/r1/workflow.json").read_text())["status"] == "Failed"
    assert main(["outcome", "--run-id=r1"]) == EXIT_BAD_SETTINGS
    assert "cxr-outcome: invalid settings" in capsys.readouterr().err
