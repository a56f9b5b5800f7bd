"""``cxr submit`` against a fake Argo Server on 127.0.0.1 that records every request."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from cxrcore.cli import main as cxr_main

ROOT = Path(__file__).resolve().parents[1]


_KINDS = {"workflow-templates": "template", "cron-workflows": "cronWorkflow"}


class _FakeArgo(http.server.BaseHTTPRequestHandler):
    """Answers the Argo Server endpoints cxr submit uses, like the real server's JSON API.

    Named objects (WorkflowTemplates, CronWorkflows) behave as in Kubernetes: a second create is 409
    AlreadyExists, an update must carry the current resourceVersion (else 409 Conflict) and bumps it.
    """

    requests: list[dict] = []
    objects: dict[tuple[str, str], dict] = {}

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        entry = {"method": self.command, "path": self.path, "body": body,
                 "authorization": self.headers.get("Authorization")}
        type(self).requests.append(entry)
        return body

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self._record()
        parts = self.path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "workflows"]:
            workflow = body["workflow"]
            name = workflow["metadata"].get("generateName", "wf-") + "x7k2p"
            self._reply(200, {"metadata": {"name": name, "namespace": parts[3], "uid": "uid-1"}, "spec": {}})
        elif parts[:2] == ["api", "v1"] and parts[2] in _KINDS:
            document = body[_KINDS[parts[2]]]
            key = (parts[2], document["metadata"]["name"])
            if key in type(self).objects:
                self._reply(409, {"code": 6, "message": f"{parts[2]} {key[1]} already exists"})
                return
            stored = {**document, "metadata": {**document["metadata"], "resourceVersion": "7", "uid": "uid-2"}}
            type(self).objects[key] = stored
            self._reply(200, stored)
        else:
            self._reply(404, {"message": "not found"})

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        parts = self.path.strip("/").split("/")
        key = (parts[2], parts[4]) if len(parts) == 5 else None
        if key in type(self).objects:
            self._reply(200, type(self).objects[key])
        else:
            self._reply(404, {"message": "not found"})

    def do_PUT(self) -> None:  # noqa: N802
        body = self._record()
        parts = self.path.strip("/").split("/")
        key = (parts[2], parts[4])
        document = body[_KINDS[parts[2]]]
        current = type(self).objects.get(key)
        if current is None:
            self._reply(404, {"message": "not found"})
            return
        if document["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            self._reply(409, {"code": 10, "message": "the object has been modified"})
            return
        version = str(int(current["metadata"]["resourceVersion"]) + 1)
        stored = {**document, "metadata": {**document["metadata"], "resourceVersion": version, "uid": "uid-2"}}
        type(self).objects[key] = stored
        self._reply(200, stored)


@pytest.fixture()
def fake_argo():
    _FakeArgo.requests = []
    _FakeArgo.objects = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeArgo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(60)
def test_submit_workflow_with_parameters_profile_and_token(fake_argo, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARGO_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("Bearer s3cr3t-token-value\n")
    code = cxr_main(
        ["submit", str(ROOT / "argo" / "paper.yaml"), "--server", fake_argo, "--namespace", "research",
         "--token-file", str(token_file), "--profile", "smoke", "-p", "store=s3://lab/study", "-p", "seeds=[0,1,2]"]
    )
    assert code == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"kind": "Workflow", "name": "cxr-paper-x7k2p", "namespace": "research", "uid": "uid-1"}
    (request,) = _FakeArgo.requests
    assert request["method"] == "POST" and request["path"] == "/api/v1/workflows/research"
    assert request["authorization"] == "Bearer s3cr3t-token-value"
    workflow = request["body"]["workflow"]
    assert workflow["metadata"]["generateName"] == "cxr-paper-" and workflow["metadata"]["namespace"] == "research"
    parameters = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert parameters["store"] == "s3://lab/study" and parameters["seeds"] == "[0,1,2]"
    assert parameters["gan-width"] == "0.125"  # from the smoke profile
    assert parameters["clf-epochs"] == "1"
    # The DAG itself goes through untouched.
    assert [t["name"] for t in workflow["spec"]["templates"][0]["dag"]["tasks"]][:2] == ["prepare", "matrix"]


@pytest.mark.timeout(60)
def test_submit_cron_workflow_and_apply_templates(fake_argo, capsys, monkeypatch):
    monkeypatch.setenv("ARGO_TOKEN", "env-token")
    args = ["submit", str(ROOT / "argo" / "retrain.yaml"), "--server", fake_argo, "--apply-templates"]
    assert cxr_main(args) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["kind"] == "CronWorkflow"
    paths = [(r["method"], r["path"]) for r in _FakeArgo.requests]
    assert paths == [("POST", "/api/v1/workflow-templates/cxr"), ("POST", "/api/v1/cron-workflows/cxr")]
    assert all(r["authorization"] == "Bearer env-token" for r in _FakeArgo.requests)
    cron = _FakeArgo.requests[1]["body"]["cronWorkflow"]
    assert cron["spec"]["schedules"] and cron["spec"]["concurrencyPolicy"] == "Forbid"

    # A second submit finds both and updates them in place (GET for the resourceVersion, then PUT).
    _FakeArgo.requests.clear()
    assert cxr_main(args) == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "CronWorkflow" and printed["name"] == "cxr-retrain"
    paths = [(r["method"], r["path"]) for r in _FakeArgo.requests]
    assert paths == [
        ("POST", "/api/v1/workflow-templates/cxr"),
        ("GET", "/api/v1/workflow-templates/cxr/cxr-gan"),
        ("PUT", "/api/v1/workflow-templates/cxr/cxr-gan"),
        ("POST", "/api/v1/cron-workflows/cxr"),
        ("GET", "/api/v1/cron-workflows/cxr/cxr-retrain"),
        ("PUT", "/api/v1/cron-workflows/cxr/cxr-retrain"),
    ]
    assert _FakeArgo.requests[2]["body"]["template"]["metadata"]["resourceVersion"] == "7"
    assert _FakeArgo.requests[5]["body"]["cronWorkflow"]["metadata"]["resourceVersion"] == "7"
    # A third submit still works (the server bumped the versions; the update reads them again).
    _FakeArgo.requests.clear()
    assert cxr_main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert _FakeArgo.objects[("cron-workflows", "cxr-retrain")]["metadata"]["resourceVersion"] == "9"


@pytest.mark.timeout(60)
def test_submit_refuses_unknown_parameters_and_reports_server_errors(fake_argo, capsys, monkeypatch):
    monkeypatch.setenv("ARGO_TOKEN", "AKIAABCDEFGHIJKLMNOP")
    code = cxr_main(["submit", str(ROOT / "argo" / "paper.yaml"), "--server", fake_argo, "-p", "nope=1"])
    assert code == 1
    assert "does not declare" in capsys.readouterr().err
    assert _FakeArgo.requests == []  # refused before any request

    code = cxr_main(["submit", str(ROOT / "argo" / "paper.yaml"), "--server", fake_argo + "/wrong-prefix"])
    err = capsys.readouterr().err
    assert code == 1 and "cxr submit:" in err and "AKIAABCDEFGHIJKLMNOP" not in err


def test_submit_needs_a_server(capsys, monkeypatch):
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    assert cxr_main(["submit", str(ROOT / "argo" / "paper.yaml")]) == 2
    assert "ARGO_SERVER" in capsys.readouterr().err


class _EchoingArgo(_FakeArgo):
    """An Argo Server (or a proxy before it) whose error answer quotes the request's Authorization header."""

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self._record()
        self._reply(401, {"message": f"token not valid: {self.headers.get('Authorization')}"})


@pytest.mark.timeout(60)
def test_submit_never_prints_the_token_and_warns_about_plain_http(tmp_path, capsys, monkeypatch):
    secret = "eyJhbGciOi.s3cr3t-t0ken-value"
    token_file = tmp_path / "token"
    token_file.write_text(f"Bearer {secret}\n")
    monkeypatch.delenv("ARGO_TOKEN", raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoingArgo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code = cxr_main(["submit", str(ROOT / "argo" / "paper.yaml"), "--server", url, "--token-file", str(token_file)])
    finally:
        server.shutdown()
        server.server_close()
    captured = capsys.readouterr()
    assert code == 1 and "token not valid" in captured.err
    assert secret not in captured.err and secret not in captured.out
    assert "WARNING: sending the bearer token over plain http://" in captured.err
