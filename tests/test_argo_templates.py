"""``argo/templates.yaml`` is generated (cxrcore.ops.argo_templates) and agrees with the jobs' Settings classes.

The checked-in file is exactly what the generator writes; every template's arguments and environment parse with
its Settings class, and the parameter defaults are the Settings defaults; a Settings field added without
regenerating fails here with the command that fixes it.
"""

from __future__ import annotations

import os
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from cxrcore.config import parse_settings
from cxrcore.ops import argo_templates
from cxrcore.ops.argo_expr import substitute
from cxrcore.ops.argo_templates import COMMAND, TEMPLATES, TEMPLATES_FILE, TemplateError, check, main, settings_class
from cxrcore.ops.yaml_writer import Anchor, Comment, Flow, Folded, plain, render_yaml

ROOT = Path(__file__).resolve().parents[1]
#: Values for the parameters a template requires (the others use the template's default).
FAKE_VALUES = {
    "source": "/data/chest_xray",
    "store": "file:///tmp/cxr-store",
    "run-id": "run-1",
    "class-name": "PNEUMONIA",
    "model": "vgg16",
    "condition": "augmented",
    "models": '["custom_cnn", "vgg16"]',
    "seeds": "[0, 1]",
    "status": "Succeeded",
    "challenger": "runs/run-1/classifiers/baseline/vgg16/seed-0",
}


def _library() -> list[dict[str, Any]]:
    (document,) = [d for d in yaml.safe_load_all((ROOT / TEMPLATES_FILE).read_text(encoding="utf-8")) if d]
    return document["spec"]["templates"]


def _fake(name: str, annotation: Any) -> str:
    if name in FAKE_VALUES:
        return FAKE_VALUES[name]
    if typing.get_origin(annotation) is typing.Literal:
        return str(typing.get_args(annotation)[0])
    return {int: "1", float: "0.5", bool: "true"}.get(annotation, "x")


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("CXR_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_checked_in_file_is_what_the_generator_writes() -> None:
    problem = check(ROOT / TEMPLATES_FILE)
    if problem is not None:
        pytest.fail(problem)


@pytest.mark.parametrize("description", TEMPLATES, ids=lambda template: template.name)
def test_arguments_and_environment_parse_with_the_settings_class(
    description: argo_templates.JobTemplate, clean_environment: pytest.MonkeyPatch
) -> None:
    (template,) = [t for t in _library() if t["name"] == description.name]
    settings_cls = settings_class(description.settings)
    fields = settings_cls.model_fields
    args = template["container"]["args"]
    if description.subcommand:
        assert args[0] == description.subcommand
        args = args[1:]
    field_of: dict[str, str] = {}  # parameter -> the Settings field its flag sets
    for argument in args:
        flag, _, value = argument.partition("=")
        field = flag[2:].replace("-", "_")
        assert flag.startswith("--") and field in fields, f"{description.name}: {flag} is not a flag of {settings_cls}"
        if value.startswith("{{inputs.parameters."):
            field_of[value[len("{{inputs.parameters.") : -2]] = field
    inputs = {parameter["name"]: parameter for parameter in template["inputs"]["parameters"]}
    values = {
        f"inputs.parameters.{name}": parameter["value"]
        if "value" in parameter
        else _fake(name, fields[field_of[name]].annotation if name in field_of else str)
        for name, parameter in inputs.items()
    }
    for variable in template["container"].get("env", []):
        if "value" in variable:
            clean_environment.setenv(variable["name"], substitute(variable["value"], values))
    settings = parse_settings(settings_cls, substitute(args, values))
    for name, field in field_of.items():
        if "value" in inputs[name]:  # the template's default is the Settings default
            default = fields[field].get_default(call_default_factory=True)
            parsed = getattr(settings, field)
            given = inputs[name]["value"]
            assert parsed == default, f"{description.name}: {name}={given!r} reads as {parsed!r}, not {default!r}"
    if description.uses_store:
        assert settings.s3.endpoint_url is None and settings.s3.addressing_style == "auto"
        assert settings.log_format == "json"


def test_every_template_is_described_and_every_description_written() -> None:
    assert [template["name"] for template in _library()] == [template.name for template in TEMPLATES]


def test_a_settings_field_added_without_regenerating_fails_with_the_command() -> None:
    base = settings_class("TrainClassifierSettings")

    class Extended(base):  # type: ignore[misc, valid-type]
        dropout: float = Field(default=0.25, ge=0.0, lt=1.0)

    problem = check(ROOT / TEMPLATES_FILE, overrides={"TrainClassifierSettings": Extended})
    assert problem is not None
    assert COMMAND in problem.splitlines()[0]
    assert '+          - {name: dropout, value: "0.25"}' in problem
    assert "+          - --dropout={{inputs.parameters.dropout}}" in problem


def test_a_description_naming_a_missing_field_is_refused() -> None:
    base = settings_class("JobSettings")

    class Bare(base):  # type: ignore[misc, valid-type]
        run_id: str = "x"

    with pytest.raises(TemplateError, match="template 'report': ReportSettings has no field 'dataset'"):
        argo_templates.render(overrides={"ReportSettings": Bare})


def test_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "argo").mkdir()
    shutil.copy(ROOT / TEMPLATES_FILE, tmp_path / TEMPLATES_FILE)
    assert main(["--check", "--root", str(tmp_path)]) == 0
    stale = (tmp_path / TEMPLATES_FILE).read_text(encoding="utf-8").replace("timeout: 5h", "timeout: 6h")
    (tmp_path / TEMPLATES_FILE).write_text(stale, encoding="utf-8")
    assert main(["--check", "--root", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert COMMAND in error and "-      timeout: 6h" in error and "+      timeout: 5h" in error
    assert main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / TEMPLATES_FILE).read_text(encoding="utf-8") == (ROOT / TEMPLATES_FILE).read_text(
        encoding="utf-8"
    )


def test_yaml_writer_quotes_what_would_read_back_differently() -> None:
    tricky = ["", "true", "no", "null", "~", "0.1.0", "224", "1e-4", "a: b", "{}", "[]", "#x", "- x", "x #y",
              "*alias", "&anchor", "'single'", '"double"', 'both \' and "', "{{inputs.parameters.x}}", "--flag={{x}}",
              "100m", "4Gi", "nvidia.com/gpu", "line\nbreak"]
    data = {
        "block": list(tricky),
        "flow": Flow({"values": list(tricky)}),
        "shared": Anchor("shared", {"a": Comment(("note",), 1), "b": Folded(("one", "two"))}),
        "again": Anchor("shared", {"a": Comment(("note",), 1), "b": Folded(("one", "two"))}),
        "items": [Comment(("", "section"), {"name": "x", "value": Flow({"k": ["v"]})})],
    }
    text = render_yaml(data, header=["title", ""])
    assert yaml.safe_load(text) == plain(data)
    assert text.startswith("# title\n#\n") and "shared: &shared\n" in text and "again: *shared\n" in text
    assert "  # note\n  a: 1\n" in text and "  b: >-\n    one\n    two\n" in text
    assert "\n\n  # section\n  - name: x\n    value: {k: [v]}\n" in text


def test_every_pod_is_hardened_and_writes_only_to_its_scratch() -> None:
    """seccompProfile RuntimeDefault for the pods, read-only root filesystem for every container, and so the
    scratch emptyDir on /tmp for every template (Python's temporary files, matplotlib, the Keras cache links)."""
    (library,) = [d for d in yaml.safe_load_all((ROOT / TEMPLATES_FILE).read_text()) if d]
    assert library["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert library["spec"]["securityContext"]["runAsNonRoot"] is True
    for template in library["spec"]["templates"]:
        container = template["container"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, template["name"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        volumes = {volume["name"]: volume for volume in template.get("volumes", [])}
        mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
        assert mounts.get("/tmp") == "scratch" and "emptyDir" in volumes["scratch"], template["name"]
        fixed = [arg.split("=", 1)[1] for arg in container["args"] if arg.startswith(("--result-dir=", "--export-dir="))]
        assert all(path.startswith("/tmp/") for path in fixed), template["name"]
    assert all(template.scratch for template in TEMPLATES)
