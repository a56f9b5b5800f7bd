"""Running one pod template on this machine as the Argo controller would (``cxr run``'s executors).

:class:`StepExecutor` turns a container template into a process: it resolves the command for the executor
(``subprocess``: this environment's console scripts; ``image-env``: the clean virtualenv of the template's image,
:mod:`cxrcore.ops.images`; ``docker``: ``docker run`` of the image), then runs attempts under the template's
``retryStrategy`` and time bounds (:mod:`cxrcore.ops.retry`): a slot wait that ``timeout`` counts, the pod's
deadline (``timeout`` replaces ``activeDeadlineSeconds``), ``maxDuration``'s execution deadline and the
Workflow's deadline. Each attempt runs in its own process group: a deadline sends SIGTERM, then SIGKILL after a
grace period, and a signal death reads as ``128 + signal`` (137, 143), as a container runtime reports it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrcore.logging import get_logger
from cxrcore.ops import argo_expr, liveness
from cxrcore.ops.argo_expr import ExpressionError
from cxrcore.ops.nodes import NodeResult, WorkflowError
from cxrcore.ops.retry import DEADLINE_MESSAGE, STEP_DEADLINE_MESSAGE, Attempt, RetryStrategy, StepBounds
from cxrcore.ops.slots import SlotQueue

__all__ = ["EXECUTORS", "StepExecutor", "substitute"]

log = get_logger(__name__)

EXECUTORS = ("subprocess", "image-env", "docker")
_LOG_TAIL_LINES = 40


def substitute(value: Any, context: Mapping[str, Any], *, strict: bool = True) -> Any:
    """Replaces ``{{name}}`` in strings (recursively) with ``context`` values (:func:`argo_expr.substitute`).

    Raises:
        WorkflowError: An unknown variable (with ``strict``) or a ``{{=expression}}`` tag.
    """
    try:
        return argo_expr.substitute(value, context, strict=strict)
    except ExpressionError as exc:
        raise WorkflowError(str(exc)) from exc


class StepExecutor:
    """Runs container templates of one workflow run.

    Args:
        executor: One of :data:`EXECUTORS`.
        work_dir: The run's folder; each step gets ``steps/NNN-<node>/`` (logs, stdout, scratch ``tmp/``).
        parallelism: Steps running at once (like pod capacity: a template's ``timeout`` counts the wait).
        store: The workflow's ``store`` parameter (``docker`` mounts a ``file://`` store).
        env: Extra environment for every step.
        project_root: The repository whose ``docker/`` folder defines the images (``image-env``).
        termination_grace_seconds: Between SIGTERM and SIGKILL when a deadline kills a step.
    """

    def __init__(
        self,
        executor: str,
        work_dir: Path,
        *,
        parallelism: int,
        store: str = "",
        env: Mapping[str, str] | None = None,
        project_root: Path,
        termination_grace_seconds: float = 10.0,
    ) -> None:
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}. Received: executor={executor!r}")
        self.executor = executor
        self.work_dir = work_dir
        self.store = store
        self.env = dict(env or {})
        self.project_root = project_root
        self.termination_grace_seconds = termination_grace_seconds
        self.deadline: float | None = None  # the Workflow's, set by the runner (None for the exit handler)
        self.failures: list[dict[str, Any]] = []
        self.slots = SlotQueue(parallelism)
        self._lock = threading.Lock()
        self._counter = 0
        self._images: Any = None
        self._processes: set[subprocess.Popen[bytes]] = set()

    def _step_dir(self, node: str) -> Path:
        with self._lock:
            self._counter += 1
            index = self._counter
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", node)[:80]
        path = self.work_dir / "steps" / f"{index:03d}-{safe}"
        (path / "tmp").mkdir(parents=True, exist_ok=True)
        return path

    def _map_path(self, value: str, step_dir: Path) -> str:
        """Container paths under /tmp live in the step's scratch folder on this machine.

        Applied to the template's own text *before* parameters are substituted, so a user's parameter value
        that happens to live under /tmp (``-p source=/tmp/data``) is never rewritten.
        """
        if self.executor == "docker":
            return value
        return re.sub(r"(?<![A-Za-z0-9_./{}-])/tmp(?=/|$)", str(step_dir / "tmp"), value)

    def _render(self, parts: Sequence[Any], context: Mapping[str, Any], step_dir: Path) -> list[str]:
        return [str(substitute(self._map_path(str(part), step_dir), context)) for part in parts]

    def _command(self, container: Mapping[str, Any], context: Mapping[str, Any], step_dir: Path) -> list[str]:
        command = self._render(container.get("command", []), context, step_dir)
        args = self._render(container.get("args", []), context, step_dir)
        if not command:
            raise WorkflowError("container templates must give command: the local runner does not read images")
        return command + args

    def _resolve_program(self, program: str, image: str) -> tuple[str, dict[str, str]]:
        """The executable for ``program`` and the environment changes its executor needs."""
        if self.executor == "image-env":
            environments = self._image_environments()
            try:
                venv = environments.ensure(environments.image_for_reference(image))
            except Exception as exc:  # ImageEnvError and build failures: the manifest cannot run here
                raise WorkflowError(f"image {image!r}: {exc}") from exc
            executable = venv / "bin" / program
            if not executable.exists():
                raise WorkflowError(f"image {image!r} does not provide the command {program!r}")
            path = os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")])
            return str(executable), {"PATH": path, "VIRTUAL_ENV": str(venv)}
        local = Path(sys.executable).parent / program
        resolved = str(local) if local.exists() else shutil.which(program)
        if resolved is None:
            raise WorkflowError(f"command {program!r} is not installed here (pip install -e '.[all]')")
        return resolved, {}

    def _image_environments(self) -> Any:
        with self._lock:
            if self._images is None:
                from cxrcore.ops.images import ImageEnvironments

                self._images = ImageEnvironments(self.project_root)
            return self._images

    def _environment(self, container: Mapping[str, Any], context: Mapping[str, Any], step_dir: Path) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = self._render([entry["value"]], context, step_dir)[0]
            # valueFrom (secretKeyRef, ...): the local environment's own variables are used instead.
        env.update(self.env)
        return env

    def _docker_command(self, image: str, command: list[str], env: Mapping[str, str], step_dir: Path) -> list[str]:
        mounts = ["-v", f"{step_dir / 'tmp'}:/tmp"]
        store = self.store
        if store.startswith("file://"):
            store_dir = store[len("file://") :]
            Path(store_dir).mkdir(parents=True, exist_ok=True)
            mounts += ["-v", f"{store_dir}:{store_dir}"]
        passthrough = [
            name
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                         "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "CXR_PATIENT_SALT")
            if name in os.environ
        ]
        env_flags = [flag for name, value in env.items() for flag in ("-e", f"{name}={value}")]
        env_flags += [flag for name in passthrough for flag in ("-e", name)]  # value from our env, not argv
        return [
            "docker", "run", "--rm", "--network", "host", "--user", "10001:10001", *mounts, *env_flags,
            "--entrypoint", command[0], image, *command[1:],
        ]

    def _prepare(self, template: Mapping[str, Any], context: Mapping[str, Any], step_dir: Path) -> _Launch:
        container = template["container"]
        command = self._command(container, context, step_dir)
        env = self._environment(container, context, step_dir)
        image = str(substitute(container.get("image", ""), context))
        if self.executor == "docker":
            return _Launch(self._docker_command(image, command, env, step_dir), dict(os.environ), image)
        program, executor_env = self._resolve_program(command[0], image)
        process_env = {**os.environ, **env, **executor_env}
        if self.executor == "image-env":
            for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"):
                process_env.pop(name, None)  # nothing of this environment's Python leaks into the image's
        return _Launch([program, *command[1:]], process_env, image)

    def run(
        self, template: Mapping[str, Any], context: Mapping[str, Any], node: str, priority: Sequence[int] = ()
    ) -> NodeResult:
        """Runs one pod template as Argo would: attempts under ``retryStrategy``, each bounded by its deadlines.

        Each attempt waits for one of :attr:`slots`; among waiting steps the lowest ``priority`` (the step's
        position in the manifest, see :mod:`cxrcore.ops.slots`) starts first.
        """
        try:
            strategy = RetryStrategy.from_template(template)
            bounds = StepBounds.from_template(template)
        except ValueError as exc:
            raise WorkflowError(f"template {template['name']!r}: {exc}") from exc
        step_dir = self._step_dir(node)
        launch = self._prepare(template, context, step_dir)
        # What exactly ran, for debugging and for tests (argv holds no secrets: those come from the environment).
        (step_dir / "command.json").write_text(
            json.dumps({"executor": self.executor, "image": launch.image, "argv": launch.command}, indent=2)
        )
        attempts: list[Attempt] = []
        execution_deadline: float | None = None
        reason = ""
        while True:
            attempt = self._attempt(template, node, launch, step_dir, bounds, execution_deadline, len(attempts),
                                    priority)
            attempts.append(attempt)
            if attempt.status == "Succeeded" or strategy is None or attempt.message == "timeout":
                break  # a Pending node's "timeout" fails the retry node itself: no retry (as in the controller)
            decision = strategy.decide(attempts, now=time.monotonic(), workflow_deadline=self.deadline)
            if not decision.retry:
                reason = decision.reason if decision.reason != attempt.message else ""
                log.info("step_not_retried", node=node, reason=decision.reason)
                break
            log.warning("step_retry", node=node, status=attempt.status, exit_code=attempt.exit_code,
                        message=attempt.message.splitlines()[0] if attempt.message else "",
                        attempt=len(attempts) + 1, wait_seconds=decision.wait_seconds)
            execution_deadline = decision.execution_deadline
            if not self._sleep(decision.wait_seconds):
                reason = STEP_DEADLINE_MESSAGE
                break
        return self._finish(template, node, step_dir, attempts, reason)

    def _sleep(self, seconds: float) -> bool:
        """Waits ``seconds`` for a backoff; ``False`` when the workflow deadline comes first."""
        if self.deadline is not None and time.monotonic() + seconds >= self.deadline:
            return False
        with self.slots.idle():
            time.sleep(seconds)
        return True

    def _attempt(
        self,
        template: Mapping[str, Any],
        node: str,
        launch: _Launch,
        step_dir: Path,
        bounds: StepBounds,
        execution_deadline: float | None,
        index: int,
        priority: Sequence[int] = (),
    ) -> Attempt:
        """One attempt: waits for a slot (Pending), then runs the process until it exits or a deadline."""
        node_started = time.monotonic()
        pending_deadline = _earliest(
            None if bounds.timeout_seconds is None else node_started + bounds.timeout_seconds, self.deadline
        )
        wait = None if pending_deadline is None else max(0.0, pending_deadline - node_started)
        acquired = self.slots.acquire(priority, timeout=wait)
        if acquired and pending_deadline is not None and time.monotonic() >= pending_deadline:
            self.slots.release()  # got the slot only once the deadline had passed: still Pending at the deadline
            acquired = False
        if not acquired:
            message = "timeout" if pending_deadline != self.deadline else STEP_DEADLINE_MESSAGE
            return Attempt("Failed", None, message, node_started, time.monotonic())
        try:
            pod_started = time.monotonic()
            pod_deadline = bounds.pod_deadline(node_started, pod_started)
            deadline = _earliest(pod_deadline, execution_deadline, self.deadline)
            log.info("step_start", node=node, template=template["name"], attempt=index + 1)
            exit_code, killed = self._spawn(launch, step_dir, deadline)
        finally:
            self.slots.release()
        finished = time.monotonic()
        if exit_code is None:
            return Attempt("Error", None, killed or "the step's command could not be started", pod_started, finished)
        if exit_code == 0:
            return Attempt("Succeeded", 0, "", pod_started, finished)
        if killed:
            message = DEADLINE_MESSAGE if deadline == pod_deadline else STEP_DEADLINE_MESSAGE
            return Attempt("Failed", exit_code, message, pod_started, finished)
        return Attempt("Failed", exit_code, f"main: Error (exit code {exit_code})", pod_started, finished)

    def _spawn(self, launch: _Launch, step_dir: Path, deadline: float | None) -> tuple[int | None, str | None]:
        """Runs the command in its own process group; ``(exit code, kill reason)``.

        At the deadline the group gets SIGTERM, then SIGKILL after :attr:`termination_grace_seconds`, like a pod
        whose ``activeDeadlineSeconds`` passed. A signal death reads as ``128 + signal`` (137, 143), as a container
        runtime reports it. ``(None, reason)`` when the command cannot be started.
        """
        stdout_path, log_path = step_dir / "stdout.txt", step_dir / "log.txt"
        with open(stdout_path, "wb") as stdout, open(log_path, "ab") as stderr:
            try:
                process = subprocess.Popen(  # noqa: S603 - the manifest's own command
                    launch.command, stdout=stdout, stderr=stderr, env=launch.env, cwd=step_dir,
                    start_new_session=True,
                )
            except OSError as exc:
                return None, f"cannot start {launch.command[0]!r}: {exc}"
            with self._lock:
                self._processes.add(process)
            liveness.record(step_dir, process.pid)
            try:
                with self.slots.idle():
                    killed = self._wait(process, deadline)
            finally:
                with self._lock:
                    self._processes.discard(process)
        liveness.clear(step_dir)
        code = process.returncode
        return (128 - code if code < 0 else code), killed

    def _wait(self, process: subprocess.Popen[bytes], deadline: float | None) -> str | None:
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                process.wait(timeout=timeout)
                return None
            except subprocess.TimeoutExpired:
                _terminate_group(process, self.termination_grace_seconds)
                return "deadline"

    def _finish(
        self, template: Mapping[str, Any], node: str, step_dir: Path, attempts: list[Attempt], reason: str = ""
    ) -> NodeResult:
        last = attempts[-1]
        result = NodeResult(node, template["name"], last.status)
        result.exit_code = last.exit_code
        result.seconds = sum(a.finished - a.started for a in attempts)
        result.log_path = str(step_dir / "log.txt")
        result.attempts = [dataclasses.asdict(a) for a in attempts]
        stdout = step_dir / "stdout.txt"
        result.result = stdout.read_text(errors="replace").strip() if stdout.exists() else ""
        if last.status != "Succeeded":
            return self._failed(template, node, step_dir, result, last, reason)
        self._collect_outputs(template, step_dir, result)
        if result.status == "Succeeded":
            log.info("step_done", node=node, seconds=round(result.seconds, 1), attempts=len(attempts))
        return result

    def _failed(
        self,
        template: Mapping[str, Any],
        node: str,
        step_dir: Path,
        result: NodeResult,
        last: Attempt,
        reason: str,
    ) -> NodeResult:
        log_path = step_dir / "log.txt"
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        tail = "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])
        hint = self._missing_module(text, template)
        result.status = "Errored" if last.status == "Error" else "Failed"
        attempts = f" after {len(result.attempts)} attempts" if len(result.attempts) > 1 else ""
        why = f" (not retried: {reason})" if reason else ""
        result.message = f"{last.message}{attempts}{why}{hint}; last log lines:\n{tail}"
        with self._lock:
            self.failures.append(
                {"displayName": node, "templateName": template["name"], "phase": last.status,
                 "message": last.message + hint}
            )
        log.error("step_failed", node=node, status=last.status, exit_code=last.exit_code, message=last.message,
                  log=str(log_path))
        return result

    def _missing_module(self, log_text: str, template: Mapping[str, Any]) -> str:
        """Names the image and the module when a step died of ``ModuleNotFoundError`` in image-env mode."""
        if self.executor != "image-env":
            return ""
        from cxrcore.ops.images import missing_module_hint

        module = missing_module_hint(log_text)
        if not module:
            return ""
        image = template.get("container", {}).get("image", "")
        return (f" (image {image} lacks the Python module {module!r}: add it to pyproject.toml and regenerate the "
                "locks with `make lock`)")

    def _collect_outputs(self, template: Mapping[str, Any], step_dir: Path, result: NodeResult) -> None:
        for parameter in template.get("outputs", {}).get("parameters", []):
            source = parameter.get("valueFrom", {})
            if "path" in source:
                path = Path(self._map_path(source["path"], step_dir))
                if not path.is_file():
                    if "default" in source:
                        result.parameters[parameter["name"]] = str(source["default"])
                        continue
                    result.status = "Failed"
                    result.message = f"output parameter {parameter['name']!r}: {source['path']} was not written"
                    return
                result.parameters[parameter["name"]] = path.read_text().strip()
        for artifact in template.get("outputs", {}).get("artifacts", []):
            path = Path(self._map_path(artifact["path"], step_dir))
            if path.exists():
                result.artifacts[artifact["name"]] = str(path)

    def terminate(self) -> None:
        """Ends every running step's process group (SIGTERM, then SIGKILL after the grace period)."""
        with self._lock:
            running = list(self._processes)
        for process in running:
            _terminate_group(process, self.termination_grace_seconds)


@dataclasses.dataclass(frozen=True)
class _Launch:
    """A step's command line and process environment, ready to start."""

    command: list[str]
    env: dict[str, str]
    image: str


def _earliest(*times: float | None) -> float | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _terminate_group(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace_seconds`` if it is still there."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
