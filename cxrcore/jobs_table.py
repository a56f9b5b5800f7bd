"""The one table of cxr-gan's jobs: each job's Settings class, its ``run()`` and how the command line reaches it.

See docs/architecture.md#command-line. Every containerised job (the console scripts ``cxr-prepare``,
``cxr-gan-train``, ``cxr-synthesize``, ``cxr-train-classifier``, ``cxr-report`` of ``jobs/``) and every ``cxr``
sub-command that runs a job (``cxr data import``, ``cxr matrix``, ``cxr outcome``, ``cxr incoming``,
``cxr promote``, ``cxr external-test``) is one :class:`Job` of :data:`JOBS`, and all of them run the same way
(:meth:`Job.main`, through :func:`cxrcore.runtime.run_job`): parse the Settings (flags, then ``CXR_*`` variables,
then defaults), configure logging, call ``run(settings)``, print its JSON result (and write ``--result-dir``), and
return the exit code: 0 ok, 1 failed, 2 bad settings, 75 transient store failure.

Settings classes and run functions are named by dotted path (``module:attribute``) and imported only when the job
runs, after its settings are valid: ``--help`` and bad flags answer without TensorFlow, and moving a job's code
means changing its path here and nowhere else. The image environments' import check
(:mod:`cxrcore.ops.images`) follows the same paths, so it imports exactly what the image's job will.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Sequence
from typing import Any

__all__ = ["JOBS", "Job", "find_job", "job", "resolve", "run_entry"]


def resolve(path: str) -> Any:
    """The object a ``module:attribute`` path names, importing its module.

    Raises:
        ValueError: If ``path`` is not of the form ``module:attribute``.
        ImportError: If the module cannot be imported (a dependency missing from the image, for instance).
        AttributeError: If the module has no such attribute.
    """
    module, separator, attribute = path.partition(":")
    if not separator or not module or not attribute:
        raise ValueError(f"Expected a 'module:attribute' path. Received: path={path!r}")
    return getattr(importlib.import_module(module), attribute)


@dataclasses.dataclass(frozen=True)
class Job:
    """One job: what it parses, what it runs, and where the command line reaches it.

    Attributes:
        name: The job's name; its log name is ``cxr-<name>`` and a console job's module is ``jobs/<name>.py``
            (dashes as underscores).
        settings: ``module:Class`` of its Settings (a :class:`cxrcore.config.JobSettings` subclass).
        run: ``module:function`` of its work, ``run(settings) -> dict | None``.
        script: Its console script (``cxr-prepare``), or ``None`` when only ``cxr`` reaches it.
        command: Its ``cxr`` sub-command (every flag goes to the Settings), or ``None``.
        help: The sub-command's one-line help in ``cxr --help``.
        description: The sub-command's ``--help`` text, or ``None``.
    """

    name: str
    settings: str
    run: str
    script: str | None = None
    command: str | None = None
    help: str | None = None
    description: str | None = None

    @property
    def log_name(self) -> str:
        """``cxr-<name>``: bound to every log event of the job and named in its messages."""
        return f"cxr-{self.name}"

    @property
    def entry_module(self) -> str | None:
        """The ``jobs`` module of a console job (``jobs.gan_train``), else ``None``."""
        return f"jobs.{self.name.replace('-', '_')}" if self.script else None

    @property
    def modules(self) -> tuple[str, str]:
        """The modules of its Settings class and of its run function."""
        return self.settings.partition(":")[0], self.run.partition(":")[0]

    def settings_class(self) -> type:
        """Imports and returns the Settings class."""
        return resolve(self.settings)

    def main(self, argv: Sequence[str] | None = None, *, log_name: str | None = None) -> int:
        """Runs the job as its entrypoint does and returns the exit code.

        Args:
            argv: Flags for the Settings (default ``sys.argv[1:]``).
            log_name: Overrides :attr:`log_name` (``cxr data import`` logs as ``cxr-data-import``).
        """
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines would break JSON logs
        from cxrcore.runtime import run_job

        return run_job(log_name or self.log_name, self.settings_class(), self._run, argv)

    def _run(self, settings: Any) -> dict[str, Any] | None:
        """Imports the run function once the settings are valid (TensorFlow loads only now), then calls it."""
        return resolve(self.run)(settings)


#: Every job, console jobs first; the ``cxr`` sub-commands appear in ``cxr --help`` in this order.
JOBS: tuple[Job, ...] = (
    Job("prepare", "cxrcore.config:PrepareSettings", "cxrcore.data.ingest:run", script="cxr-prepare"),
    Job("gan-train", "cxrcore.config:GanTrainSettings", "cxrcore.steps.gan_train:run", script="cxr-gan-train"),
    Job("synthesize", "cxrcore.config:SynthesizeSettings", "cxrcore.steps.synthesize:run", script="cxr-synthesize"),
    Job(
        "train-classifier",
        "cxrcore.config:TrainClassifierSettings",
        "cxrcore.steps.train_classifier:run",
        script="cxr-train-classifier",
    ),
    Job("report", "cxrcore.config:ReportSettings", "cxrcore.report.job:run", script="cxr-report"),
    Job(
        "matrix",
        "cxrcore.config:MatrixSettings",
        "cxrcore.steps.matrix:run",
        command="matrix",
        help="expand --models/--seeds into the classifier fan-out (JSON)",
    ),
    Job(
        "outcome",
        "cxrcore.config:OutcomeSettings",
        "cxrcore.steps.outcome:run",
        command="outcome",
        help="record a workflow's final status in the store (exit handler)",
    ),
    Job(
        "incoming",
        "cxrcore.config:IncomingSettings",
        "cxrcore.steps.incoming:run",
        command="incoming",
        help="list the complete incoming/<batch>/ uploads not yet in the dataset's ledger (retraining check)",
        description="Prints found (true/false), batches (JSON list) and count. Settings: --store, --dataset, "
        "--incoming-prefix, --result-dir.",
    ),
    Job(
        "promote",
        "cxrcore.config:PromoteSettings",
        "cxrcore.steps.promote:run",
        command="promote",
        help="judge a challenger classifier against the registry's champion; promote only if it is better",
        description="Both models predict the test split of the challenger's dataset version; promote when there "
        "is no champion, or when accuracy gains >= --margin and McNemar p < --alpha. Settings: --store, --task, "
        "--challenger, --run-id, --dataset, --dataset-version, --margin, --alpha, --result-dir.",
    ),
    Job(
        "external-test",
        "cxrcore.config:ExternalTestSettings",
        "cxrcore.steps.external_test:run",
        command="external-test",
        help="score every committed classifier of a run on external image sets (folders, zips, s3://)",
        description="Imports each --source (a JSON list for several) like cxr-prepare, scores every committed "
        "classifier of --run-id on all its images and commits runs/<run_id>/external/<dataset>/<condition>/"
        "<model>/seed-<n>/ (metrics.json, predictions.csv). Settings: --store, --run-id, --source, --image-size, "
        "--result-dir.",
    ),
)


def job(name: str) -> Job:
    """The job called ``name``.

    Raises:
        ValueError: If no job has that name.
    """
    for entry in JOBS:
        if entry.name == name:
            return entry
    raise ValueError(f"No job {name!r}; jobs: {', '.join(entry.name for entry in JOBS)}. Received: name={name!r}")


def find_job(*, script: str | None = None, module: str | None = None) -> Job | None:
    """The console job with console script ``script`` or entry module ``module`` (``jobs.prepare``), if any."""
    for entry in JOBS:
        if entry.script is not None and (entry.script == script or entry.entry_module == module):
            return entry
    return None


def run_entry(name: str, argv: Sequence[str] | None = None) -> int:
    """Runs job ``name`` as its console script does (``jobs/<name>.py``); returns the exit code."""
    return job(name).main(argv)
