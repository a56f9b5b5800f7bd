"""The ``cxr`` command line (docs/architecture.md#command-line): every sub-command, its flags and its help.

Sub-commands parse their own few positional arguments and hand every other flag to the same pydantic-settings
classes the container jobs use, so ``cxr data import SRC --image-size 128`` and
``cxr-prepare --source SRC --image-size 128`` (or ``CXR_IMAGE_SIZE=128``) mean the same thing. The sub-commands
that run a job (``cxr matrix``, ``cxr outcome``, ``cxr incoming``, ``cxr promote``, and ``cxr data import``, which
runs ``prepare``) come from the one table of jobs, :data:`cxrcore.jobs_table.JOBS`, which also drives the console
scripts; ``cxr run`` and ``cxr submit`` call :mod:`cxrcore.ops.commands`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from cxrcore import __version__
from cxrcore.jobs_table import JOBS, Job, job

__all__ = ["build_parser", "main"]

_ALLOW_UNCOMMITTED_HELP = (
    "load a model from a folder/prefix without its _SUCCESS marker (an unfinished job's output; forensics only)"
)


def _cmd_demo_data(args: argparse.Namespace, _rest: list[str]) -> int:
    from cxrcore.data.demo import write_demo_dataset
    from cxrcore.logging import configure_logging, get_logger

    configure_logging("INFO", "auto")
    try:
        summary = write_demo_dataset(
            args.out_dir, per_class=args.per_class, size=args.size, seed=args.seed, test_fraction=args.test_fraction
        )
    except (OSError, ValueError) as exc:
        get_logger("cxr").error("demo_data_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_data_import(args: argparse.Namespace, rest: list[str]) -> int:
    argv = ["--source", args.source, *rest]
    if args.store is not None:
        argv += ["--store", args.store]
    if args.name is not None:
        argv += ["--name", args.name]
    return job("prepare").main(argv, log_name="cxr-data-import")


def _s3_options_from_env() -> dict:
    """S3 options for model URIs from the ``CXR_S3__*`` environment (the jobs' settings), credentials excluded."""
    from cxrcore.config import JobSettings, parse_settings

    settings = parse_settings(JobSettings, [])
    return settings.s3.as_options(settings.io_workers)


def _cmd_evaluate(args: argparse.Namespace, _rest: list[str]) -> int:
    from cxrcore.evaluate import evaluate_folder, load_model_uri
    from cxrcore.logging import configure_logging, get_logger
    from cxrcore.runtime import EXIT_TRANSIENT
    from cxrcore.storage import TransientStoreError, redact_uri

    configure_logging("INFO", "auto")
    try:
        model = load_model_uri(
            args.model_uri, s3=_s3_options_from_env(), allow_uncommitted=args.allow_uncommitted
        )
        result = evaluate_folder(model, args.data_dir, image_size=args.image_size, threshold=args.threshold)
        result = {"model_uri": redact_uri(args.model_uri), **result}
        text = json.dumps(result, indent=2, default=str)
        if args.out is not None:
            from pathlib import Path

            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
    except TransientStoreError as exc:
        get_logger("cxr").error("evaluate_failed_transient", error=str(exc))
        return EXIT_TRANSIENT
    except (OSError, ValueError, RuntimeError) as exc:
        get_logger("cxr").error("evaluate_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    print(text)
    return 0


def _cmd_predict(args: argparse.Namespace, _rest: list[str]) -> int:
    from cxrcore.evaluate import load_model_uri, predict_images
    from cxrcore.logging import configure_logging, get_logger
    from cxrcore.runtime import EXIT_TRANSIENT
    from cxrcore.storage import TransientStoreError

    configure_logging("INFO", "auto")
    try:
        model = load_model_uri(
            args.model_uri, s3=_s3_options_from_env(), allow_uncommitted=args.allow_uncommitted
        )
        results = predict_images(
            model, args.images, image_size=args.image_size, threshold=args.threshold, explain_dir=args.explain
        )
    except TransientStoreError as exc:
        get_logger("cxr").error("predict_failed_transient", error=str(exc))
        return EXIT_TRANSIENT
    except (OSError, ValueError, RuntimeError) as exc:
        get_logger("cxr").error("predict_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    for result in results:
        print(json.dumps(result))
    failed = [result["path"] for result in results if result.get("error")]
    if failed:
        get_logger("cxr").error("predict_unreadable_images", count=len(failed), paths=failed)
    return 1 if failed else 0


def _cmd_models(args: argparse.Namespace, _rest: list[str]) -> int:
    from cxrcore.evaluate import study_parameter_counts
    from cxrcore.logging import configure_logging

    configure_logging("WARNING", "auto")
    rows = study_parameter_counts()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ("model", "role", "input", "total", "trainable", "paper (trainable)", "matches")
    table = [
        (
            row["model"],
            row["role"],
            row["input"],
            f"{row['params_total']:,}",
            f"{row['params_trainable']:,}",
            "-" if row["paper_params_trainable"] is None else f"{row['paper_params_trainable']:,}",
            "-" if row["matches_paper"] is None else ("yes" if row["matches_paper"] else "NO"),
        )
        for row in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *table)]
    for line in (headers, tuple("-" * width for width in widths), *table):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip())
    return 0


def _cmd_lint(args: argparse.Namespace, _rest: list[str]) -> int:
    from pathlib import Path

    from cxrcore.ops.lint import collect_lint_files, lint_paths

    root = Path(args.root).resolve()
    paths = [Path(path) for path in args.paths] if args.paths else None
    findings = lint_paths(paths, root=root)
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} finding(s)", file=sys.stderr)
        return 1
    files, _missing = collect_lint_files(paths, root=root)
    print(f"lint: clean ({len(files)} files)", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace, rest: list[str]) -> int:
    from cxrcore.ops.commands import run_command

    return run_command(args, rest)


def _cmd_submit(args: argparse.Namespace, rest: list[str]) -> int:
    from cxrcore.ops.commands import submit_command

    return submit_command(args, rest)


def build_parser() -> argparse.ArgumentParser:
    """The ``cxr`` argument parser (sub-commands may accept extra ``--setting`` flags, see each help)."""
    parser = argparse.ArgumentParser(
        prog="cxr",
        description="cxr-gan: chest X-ray pneumonia classification with DCGAN augmentation.",
    )
    parser.add_argument("--version", action="version", version=f"cxr-gan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_demo_data, _add_data, _add_evaluate, _add_predict, _add_models, _add_lint, _add_run, _add_submit):
        add(commands)
    for entry in JOBS:
        if entry.command is not None:
            command = commands.add_parser(entry.command, help=entry.help, description=entry.description)
            command.set_defaults(handler=_job_handler(entry), accepts_settings=True)
    return parser


def _job_handler(entry: Job):
    """The handler of a job's sub-command: every flag goes to the job's Settings."""

    def handler(_args: argparse.Namespace, rest: list[str]) -> int:
        return entry.main(rest)

    return handler


def _add_demo_data(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo-data",
        help="write procedural chest-X-ray-like phantoms (synthetic, not medical data) in the Kaggle layout",
    )
    demo.add_argument("out_dir", metavar="OUT_DIR")
    demo.add_argument("--per-class", type=int, default=200, help="images per class (default 200)")
    demo.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--test-fraction", type=float, default=0.2, help="share of patients in test/ (default 0.2)")
    demo.set_defaults(handler=_cmd_demo_data, accepts_settings=False)


def _add_data(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="dataset commands")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    importer = data_commands.add_parser(
        "import",
        help="import a Kaggle chest_xray/ folder, its zip, an s3:// prefix or a NORMAL/ PNEUMONIA/ folder",
        description="Import SRC into an immutable dataset version and print a JSON summary. Any cxr-prepare "
        "setting is accepted as a flag: --image-size, --split {patient,paper,official}, --test-fraction, "
        "--seed, --shard-size, --s3.endpoint-url, --s3.addressing-style, ... (see `cxr-prepare --help`).",
    )
    importer.add_argument("source", metavar="SRC")
    importer.add_argument("--store", default=None, help="store root: s3://bucket/prefix or file:///dir")
    importer.add_argument("--name", default=None, help="dataset name (default chest-xray)")
    importer.set_defaults(handler=_cmd_data_import, accepts_settings=True)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="score a trained classifier on a NORMAL/ PNEUMONIA/ folder of images (any size or mode)",
        description="Load MODEL_URI (a .keras file, or a folder/prefix holding model.keras; local, file:// or "
        "s3://, S3 options from CXR_S3__* variables) and print the metrics JSON: n, accuracy and its 95% CI, "
        "macro precision/recall/F1, sensitivity, specificity, AUC, confusion matrix, collapse flag, and the "
        "files skipped with their reason.",
    )
    evaluate.add_argument("model_uri", metavar="MODEL_URI")
    evaluate.add_argument("data_dir", metavar="DATA_DIR")
    evaluate.add_argument("--out", default=None, metavar="FILE", help="also write the JSON to FILE")
    evaluate.add_argument("--image-size", type=int, default=None, help="input size (default: the model's)")
    evaluate.add_argument("--threshold", type=float, default=0.5, help="decision threshold (default 0.5)")
    evaluate.add_argument("--allow-uncommitted", action="store_true", help=_ALLOW_UNCOMMITTED_HELP)
    evaluate.set_defaults(handler=_cmd_evaluate, accepts_settings=False)


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="probability of pneumonia per image, as JSON lines",
        description="One JSON line per IMAGE: path, probability (of PNEUMONIA), label_predicted; unreadable "
        "images get an error field and make the exit status 1.",
    )
    predict.add_argument("model_uri", metavar="MODEL_URI")
    predict.add_argument("images", metavar="IMAGE", nargs="+")
    predict.add_argument("--image-size", type=int, default=None, help="input size (default: the model's)")
    predict.add_argument("--threshold", type=float, default=0.5, help="threshold of label_predicted (default 0.5)")
    predict.add_argument(
        "--explain",
        metavar="OUT_DIR",
        default=None,
        help="write a Grad-CAM PNG per readable image, OUT_DIR/<image stem>.gradcam.png, and add its path to the "
        "JSON line as explanation",
    )
    predict.add_argument("--allow-uncommitted", action="store_true", help=_ALLOW_UNCOMMITTED_HELP)
    predict.set_defaults(handler=_cmd_predict, accepts_settings=False)


def _add_models(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser(
        "models",
        help="every model of the study with its parameter counts beside the paper's",
        description="Builds every model at the paper's settings (classifiers 128 px without pretrained "
        "weights, DCGAN 64 px) and prints total/trainable parameters beside the count Table 1 publishes.",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(handler=_cmd_models, accepts_settings=False)


def _add_lint(commands: argparse._SubParsersAction) -> None:
    lint = commands.add_parser(
        "lint",
        help="validate argo/, k8s/ and docker/ (or the given files) offline; one line per finding",
        description="Offline checks of Argo manifests (strict model walk, DAGs, references, container hygiene), "
        "Kubernetes manifests (strict JSON schemas) and Dockerfiles (hadolint, non-root USER). Prints one "
        "'file: field.path: problem' line per finding and exits 1 if there is any.",
    )
    lint.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: argo/ k8s/ docker/)")
    lint.add_argument(
        "--root",
        default=".",
        help="repository root: file names are relative to it and its argo/ and k8s/ resolve references (default .)",
    )
    lint.set_defaults(handler=_cmd_lint, accepts_settings=False)


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run",
        help="execute an Argo workflow's DAG on this machine (same templates, commands, parameters)",
        description="Run argo/paper.yaml (or another Workflow/CronWorkflow manifest) here. Prints the report path.",
    )
    run.add_argument("workflow", metavar="WORKFLOW")
    run.add_argument("--profile", default=None, help="smoke | demo | cpu | paper (argo/profiles.yaml)")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--store", default=None, help="store root (default file://$PWD/cxr-store)")
    run.add_argument(
        "--executor",
        choices=("subprocess", "image-env", "docker"),
        default="subprocess",
        help="subprocess: this environment; image-env: each step in a clean venv built from its image's "
        "Dockerfile and lock (what the image runs); docker: docker run the images",
    )
    run.add_argument("--parallelism", type=int, default=2, help="containers at once (default 2)")
    run.add_argument("--name", default=None, help="run id (re-use one to resume: finished steps are skipped)")
    run.add_argument("--work-dir", default="cxr-runs", help="step logs and scratch (default ./cxr-runs)")
    run.add_argument("--log-level", default="INFO")
    run.set_defaults(handler=_cmd_run, accepts_settings=False)


def _add_submit(commands: argparse._SubParsersAction) -> None:
    submit = commands.add_parser("submit", help="submit a workflow (or create a CronWorkflow) on an Argo Server")
    submit.add_argument("workflow", metavar="WORKFLOW")
    submit.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    submit.add_argument("--profile", default=None)
    submit.add_argument("--server", default=None, help="Argo Server URL (default $ARGO_SERVER)")
    submit.add_argument("--namespace", default=None, help="namespace (default $ARGO_NAMESPACE or cxr)")
    submit.add_argument("--token-file", default=None, help="file holding the bearer token (default $ARGO_TOKEN)")
    submit.add_argument("--insecure-skip-tls-verify", action="store_true")
    submit.add_argument("--apply-templates", action="store_true", help="create/update argo/ WorkflowTemplates first")
    submit.set_defaults(handler=_cmd_submit, accepts_settings=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cxr``; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner out of the output
    parser = build_parser()
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if rest and not getattr(args, "accepts_settings", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.handler(args, rest)


if __name__ == "__main__":
    sys.exit(main())
