"""``cxr-synthesize``: generate one class's synthetic X-rays with its DCGAN, select, check and commit them.

The step (docs/architecture.md#steps): plan (the committed GAN, the real dataset version, the confidence model's
sha256) -> skip when the output is committed with the same inputs -> generate and score every candidate ->
select -> memorization check and KID -> commit ``runs/<run_id>/synthetic/<CLASS>/``. The computing is done by
the pure functions of :mod:`cxrcore.synthesis`; only this module reads and writes the store.

1. Latents: ``numpy.random.default_rng([seed, label]).standard_normal((n, latent_dim))``, drawn once.
2. Generation, discriminator logits, grayscale, bicubic upsampling (:mod:`cxrcore.synthesis.generation`).
3. Selection (:func:`cxrcore.synthesis.selection.select_indices`); ``confidence`` scores through
   :func:`cxrcore.inference.predict_pixels`, like every other use of a classifier.
4. Memorization (:func:`cxrcore.synthesis.similarity.memorization_check`) against every REAL training image of
   the class, at ``min(GAN size, stored real size, 64)`` px.
5. Quality (:func:`cxrcore.synthesis.kid.quality_report`): KID on offline pixel-statistics features; with
   InceptionV3 weights (``inception``), KID and FID on InceptionV3 features too
   (:func:`cxrcore.synthesis.inception.inception_quality`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrcore import __version__
from cxrcore.config import SynthesizeSettings, identity
from cxrcore.data.dataset import dataset_prefix, load_dataset, resolve_version
from cxrcore.data.images import encode_png
from cxrcore.data.writer import DatasetWriter, ImageRecord, dataset_info
from cxrcore.inference import fetch_model, load_model_file
from cxrcore.layout import gan_prefix, synthetic_prefix
from cxrcore.logging import get_logger
from cxrcore.steps.inception_weights import InceptionScorer, InceptionWeightsError, resolve_inception
from cxrcore.storage import (
    Marker,
    NotCommittedError,
    Store,
    join_key,
    redact_uri,
    sha256_bytes,
    sha256_file,
)
from cxrcore.synthesis.generation import Candidates, candidate_confidence, generate
from cxrcore.synthesis.images import diversity_features
from cxrcore.synthesis.gan_quality import (
    THUMBNAIL_SIZE,
    repeated_detail_share,
    sample_statistics,
    two_sample_accuracy,
)
from cxrcore.synthesis.inception import inception_quality
from cxrcore.synthesis.kid import pixel_statistics_features, quality_report
from cxrcore.synthesis.outputs import (
    SAMPLE_TILES,
    SHARD_SIZE,
    SYNTHESIZE_FORMAT,
    candidates_csv,
    image_ids,
    kept_rows,
    samples_png,
    samples_record,
    selection_record,
    summary,
)
from cxrcore.synthesis.selection import keep_count, latent_vectors, select_indices
from cxrcore.synthesis.similarity import MEMORIZATION_MAX_SIZE, memorization_check
from cxrcore.vocab import CLASS_NAMES

__all__ = ["SynthesizeError", "job_inputs", "run"]

#: Real images the repeated-detail share of the class is measured on (a seeded sample when there are more).
_REAL_SAMPLE = 1000
#: Real images the InceptionV3 KID/FID of the class is measured against (a seeded sample when there are more):
#: bounds the 299 px forward passes on a CPU box; FID's bias at 2,000 real images is small next to its spread.
_INCEPTION_REAL_SAMPLE = 2000


class SynthesizeError(ValueError):
    """The synthesis job cannot run: a missing input, an unusable model, or nothing left to publish."""


def job_inputs(
    settings: SynthesizeSettings,
    *,
    gan: dict[str, str],
    dataset: dict[str, Any],
    confidence_model: dict[str, str] | None,
    inception: dict[str, str],
) -> dict[str, Any]:
    """The ``inputs`` of the synthetic output's marker.

    Args:
        settings: The job settings; :func:`cxrcore.config.identity` of them is recorded.
        gan: ``{"prefix", "digest"}`` of the committed GAN.
        dataset: ``{"name", "version", "digest"}`` of the real dataset version.
        confidence_model: ``{"uri", "sha256"}`` of the ``confidence`` selection's classifier, or ``None``.
        inception: What the InceptionV3 scores used (:class:`InceptionScorer` ``record``): ``{"weights": "off"}``,
            ``{"weights": "absent"}`` (``auto`` without the file), or the weights and their hash.

    Returns:
        A JSON-ready dict.
    """
    return {
        "format": SYNTHESIZE_FORMAT,
        "gan": gan,
        "dataset": dataset,
        "confidence_model": confidence_model,
        "inception": inception,
        "settings": identity(settings),
    }


# ---------------------------------------------------------------------------------------------------- plan
@dataclasses.dataclass(frozen=True)
class _Plan:
    """What one run reads and writes, resolved before any model or image is loaded."""

    store: Store
    gan_prefix: str
    gan_marker: Marker
    gan_info: dict[str, Any]
    output_prefix: str
    output_uri: str
    dataset_name: str
    dataset_version: str
    dataset_marker: Marker
    num_images: int
    keep: int
    label: int

    @property
    def dataset_record(self) -> dict[str, Any]:
        """The real dataset as recorded in inputs and outputs: name, version, marker digest."""
        return {"name": self.dataset_name, "version": self.dataset_version, "digest": self.dataset_marker.digest}

    @property
    def gan_record(self) -> dict[str, str]:
        """The GAN as recorded in the inputs: prefix and marker digest."""
        return {"prefix": self.gan_prefix, "digest": self.gan_marker.digest}


def _dataset_version(store: Store, settings: SynthesizeSettings, gan_info: dict[str, Any], logger: Any) -> str:
    """The real dataset version to check against: the flag, else the GAN's training version, else the latest.

    ``gan.json`` of ``cxr-gan-train`` records ``{"dataset": {"name": ..., "version": ...}}``; with
    ``dataset_version=latest`` the memorization check and KID use the version the GAN was trained on.
    """
    trained = gan_info.get("dataset") if isinstance(gan_info.get("dataset"), dict) else {}
    trained_on = trained.get("version")
    same_name = trained.get("name", settings.dataset) == settings.dataset
    if settings.dataset_version in ("", "latest") and isinstance(trained_on, str) and same_name:
        return resolve_version(store, settings.dataset, trained_on)
    version = resolve_version(store, settings.dataset, settings.dataset_version)
    if isinstance(trained_on, str) and trained_on != version:
        logger.warning("synthesize_dataset_differs_from_gan", gan_dataset_version=trained_on, dataset_version=version)
    return version


def gan_quality(gan_info: dict[str, Any]) -> dict[str, Any]:
    """The GAN's verdict from ``gan.json``: ``{"status": "ok" | "flagged" | "unknown", "reasons": [...]}``, plus
    ``published`` (which measured generator was published, from format 9) when ``gan.json`` records it."""
    quality = gan_info.get("quality")
    if not isinstance(quality, dict) or quality.get("status") not in ("ok", "flagged"):
        return {"status": "unknown", "reasons": ["gan.json has no quality verdict (written before format 2)"]}
    verdict: dict[str, Any] = {"status": quality["status"], "reasons": list(quality.get("reasons", []))}
    if isinstance(quality.get("published"), dict):
        verdict["published"] = quality["published"]
    return verdict


def _check_gan_quality(settings: SynthesizeSettings, gan_uri: str, gan_info: dict[str, Any], logger: Any) -> None:
    """Refuses a GAN that ``cxr-gan-train`` flagged, unless ``flagged_gan=use``; either way it is logged.

    Raises:
        SynthesizeError: The GAN is flagged and ``flagged_gan`` is ``refuse``.
    """
    verdict = gan_quality(gan_info)
    if verdict["status"] == "ok":
        return
    if verdict["status"] == "unknown":
        logger.warning("synthesize_gan_quality_unknown", gan=gan_uri, reasons=verdict["reasons"])
        return
    if settings.flagged_gan == "refuse":
        raise SynthesizeError(
            f"The GAN at {gan_uri} was flagged as failed by cxr-gan-train: {'; '.join(verdict['reasons'])}. Its "
            "images are not used: train it longer or with the stabilisers (README 'GAN quality'), or pass "
            f"--flagged-gan use to use them anyway (the report marks them). Received: flagged_gan={settings.flagged_gan}"
        )
    logger.warning("synthesize_flagged_gan_used", gan=gan_uri, reasons=verdict["reasons"])


def _plan(settings: SynthesizeSettings, logger: Any) -> _Plan:
    """Validates the settings and resolves the GAN and dataset markers (no model or image is read)."""
    if settings.selection == "confidence" and not settings.confidence_model:
        raise SynthesizeError(
            "selection=confidence needs a classifier: set --confidence-model (s3://... or a path to model.keras). "
            f"Received: confidence_model={settings.confidence_model!r}"
        )
    store = settings.open_store()
    source = gan_prefix(settings.run_id, settings.class_name)
    output = synthetic_prefix(settings.run_id, settings.class_name)
    try:
        gan_marker = store.require_committed(source)
    except NotCommittedError as exc:
        raise SynthesizeError(
            f"The GAN of class {settings.class_name} for run {settings.run_id} is not committed at "
            f"{store.url(source)} (no _SUCCESS): run cxr-gan-train --run-id {settings.run_id} "
            f"--class-name {settings.class_name} first"
        ) from exc
    gan_info = store.get_json(join_key(source, "gan.json")) if "gan.json" in gan_marker.outputs else {}
    gan_info = gan_info if isinstance(gan_info, dict) else {}
    _check_gan_quality(settings, store.url(source), gan_info, logger)
    version = _dataset_version(store, settings, gan_info, logger)
    num_images = settings.resolved_num_images()
    return _Plan(
        store=store,
        gan_prefix=source,
        gan_marker=gan_marker,
        gan_info=gan_info,
        output_prefix=output,
        output_uri=store.url(output),
        dataset_name=settings.dataset,
        dataset_version=version,
        dataset_marker=store.require_committed(dataset_prefix(settings.dataset, version)),
        num_images=num_images,
        keep=keep_count(num_images, settings.keep_fraction),
        label=CLASS_NAMES.index(settings.class_name),
    )


def _confidence_model(settings: SynthesizeSettings, directory: Path) -> tuple[Path | None, dict[str, str] | None]:
    """The confidence classifier's local file and its ``{"uri", "sha256"}`` record (both ``None`` without one).

    The model is fetched by :func:`cxrcore.inference.fetch_model` (``s3://``, ``file://`` or a path; a URI that
    does not end in ``.keras`` names a classifier output holding ``model.keras``), then hashed for the inputs.
    """
    if not settings.confidence_model:
        return None, None
    uri = str(settings.confidence_model)
    try:
        path = fetch_model(uri, directory, s3=settings.s3.as_options(settings.io_workers))
    except FileNotFoundError as exc:
        raise SynthesizeError(f"No confidence model at {redact_uri(uri)}: {exc}") from exc
    return path, {"uri": redact_uri(uri), "sha256": sha256_file(path)}


def _inception_quality(
    inception: InceptionScorer, extractor: Any, candidates: Candidates, kept: np.ndarray, real: np.ndarray, seed: int
) -> dict[str, Any]:
    """``quality.inception`` of ``selection.json``: InceptionV3 KID and FID of the kept and of all generated
    images against (a seeded sample of at most :data:`_INCEPTION_REAL_SAMPLE` of) the real ones."""
    if extractor is None:
        return inception.skipped()
    result = inception_quality(
        extractor,
        kept=candidates.final[kept],
        generated=candidates.final,
        real=_real_sample(real, seed, size=_INCEPTION_REAL_SAMPLE),
        name=inception.name,
        description=inception.description,
        seed=seed,
    )
    result["weights"] = inception.record
    return result


# ---------------------------------------------------------------------------------------------------- load
@dataclasses.dataclass(frozen=True)
class _Models:
    """The committed generator and discriminator, and the confidence classifier when there is one."""

    generator: Any
    discriminator: Any
    classifier: Any | None

    @property
    def latent_dim(self) -> int:
        return int(self.generator.input_shape[-1])

    @property
    def gan_size(self) -> int:
        return int(self.generator.output_shape[1])


@dataclasses.dataclass(frozen=True)
class _Real:
    """The REAL training images of the class (uint8), their ids, the stored size, and the set in words."""

    images: np.ndarray
    ids: list[str]
    stored_size: int
    reference: str


def _download_committed(store: Store, prefix: str, marker: Marker, name: str, directory: Path) -> Path:
    entry = marker.outputs.get(name)
    if entry is None:
        raise SynthesizeError(f"{store.url(prefix)} is committed but its _SUCCESS marker does not list {name}")
    return store.get_file(join_key(prefix, name), directory / name, sha256=entry["sha256"])


def _load_models(plan: _Plan, directory: Path, classifier_path: Path | None) -> _Models:
    """Downloads (sha256-verified) and loads the committed generator and discriminator; checks they fit."""
    generator, discriminator = (
        load_model_file(_download_committed(plan.store, plan.gan_prefix, plan.gan_marker, name, directory))
        for name in ("generator.keras", "discriminator.keras")
    )
    if tuple(discriminator.input_shape[1:]) != tuple(generator.output_shape[1:]):
        raise SynthesizeError(
            f"The discriminator input {discriminator.input_shape[1:]} does not match the generator output "
            f"{generator.output_shape[1:]} in {plan.gan_prefix}"
        )
    classifier = load_model_file(classifier_path) if classifier_path is not None else None
    return _Models(generator, discriminator, classifier)


def _load_real(plan: _Plan, settings: SynthesizeSettings) -> _Real:
    """The REAL training images of the class from the planned dataset version."""
    dataset = load_dataset(plan.store, settings.dataset, plan.dataset_version)
    train_images, train_manifest = dataset.subset("train")
    of_class = (train_manifest["class"] == settings.class_name).to_numpy()
    if not of_class.any():
        raise SynthesizeError(
            f"Dataset {settings.dataset} {plan.dataset_version} has no {settings.class_name} training images to "
            "check synthetic images against"
        )
    reference = (
        f"{int(of_class.sum())} real {settings.class_name} training images of {settings.dataset} "
        f"{plan.dataset_version}"
    )
    return _Real(
        train_images[of_class],
        train_manifest["image_id"][of_class].tolist(),
        int(dataset.info["image_size"]),
        reference,
    )


# ---------------------------------------------------------------------------------------------------- compute
def _real_sample(images: np.ndarray, seed: int, size: int = _REAL_SAMPLE) -> np.ndarray:
    """At most ``size`` of the real images, drawn with ``seed`` (the repeated-detail share does not depend on
    the set's size; this bounds its memory at the paper's 128 px)."""
    if len(images) <= size:
        return images
    rng = np.random.default_rng([int(seed), 2])
    return images[np.sort(rng.choice(len(images), size, replace=False))]


@dataclasses.dataclass(frozen=True)
class _Selection:
    """The selected images (rank order) and which of them are published after the memorization check."""

    selected: np.ndarray
    ids: list[str]
    positions: np.ndarray
    memorization: dict[str, Any]
    confidence: np.ndarray | None

    @property
    def kept(self) -> np.ndarray:
        """Generation indices of the published images, in rank order."""
        return self.selected[self.positions]


def _confidence(models: _Models, candidates: Candidates, settings: SynthesizeSettings) -> np.ndarray | None:
    if models.classifier is None:
        return None
    try:
        return candidate_confidence(models.classifier, candidates.final, settings.class_name, settings.batch_size)
    except ValueError as exc:
        raise SynthesizeError(f"The confidence model cannot score the candidates: {exc}") from exc


def _select(plan: _Plan, candidates: Candidates, confidence: np.ndarray | None, strategy: str) -> np.ndarray:
    return select_indices(
        strategy,
        plan.keep,
        num_images=plan.num_images,
        discriminator_scores=candidates.discriminator_logits,
        confidence_scores=confidence,
        diversity_features=diversity_features(candidates.final) if strategy == "diversity" else None,
    )


def _screen(
    selected: np.ndarray,
    confidence: np.ndarray | None,
    candidates: Candidates,
    real: _Real,
    settings: SynthesizeSettings,
    gan_size: int,
) -> _Selection:
    """The memorization check of the selected images; with ``drop_memorized``, flagged ones are left out."""
    ids = image_ids(candidates.final[selected])
    memorization, positions = memorization_check(
        candidates.gray[selected],
        real.images,
        image_ids=ids,
        generation_indices=selected.tolist(),
        real_ids=real.ids,
        size=min(gan_size, real.stored_size, MEMORIZATION_MAX_SIZE),
        threshold=settings.memorization_threshold,
        drop=settings.drop_memorized,
    )
    if len(positions) == 0:
        raise SynthesizeError(
            f"All {len(selected)} selected images are memorized copies (SSIM >= "
            f"{settings.memorization_threshold} to a real training image) and drop_memorized is set; nothing "
            "left to publish. Received: drop_memorized=True"
        )
    return _Selection(selected, ids, positions, memorization, confidence)


# ---------------------------------------------------------------------------------------------------- commit
@dataclasses.dataclass
class _Timer:
    """Seconds per phase of one run, recorded in ``selection.json`` (``timings_s``)."""

    started: float = dataclasses.field(default_factory=time.monotonic)
    phases: dict[str, float] = dataclasses.field(default_factory=dict)

    def record(self, name: str, since: float) -> None:
        self.phases[name] = time.monotonic() - since

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        since = time.monotonic()
        yield
        self.record(name, since)

    def rounded(self) -> dict[str, float]:
        """Every phase, then ``total_s`` since the start, in milliseconds precision."""
        self.record("total_s", self.started)
        return {name: round(value, 3) for name, value in self.phases.items()}


def _write_dataset(
    plan: _Plan, settings: SynthesizeSettings, models: _Models, published: np.ndarray, kept: np.ndarray, directory: Path
) -> tuple[DatasetWriter, pd.DataFrame, dict[str, Any]]:
    """The dataset part of the output: the published images in shards, their manifest and ``dataset.json``.

    One pseudo-patient per run and class (so a patient split never puts a synthetic image in test), split
    ``train``, ``source_path`` ``gan:<run>/<CLASS>/<generation index>`` (docs/architecture.md#store-layout).
    """
    name = f"synthetic-{settings.run_id}-{settings.class_name}"
    writer = DatasetWriter(directory, image_size=settings.output_size, shard_size=SHARD_SIZE)
    for pixels, generation_index in zip(published, kept, strict=True):
        record = ImageRecord(
            sha256=sha256_bytes(encode_png(pixels)),
            class_name=settings.class_name,
            patient_id=name,
            patient_id_parsed=False,
            source="synthetic",
            source_path=f"gan:{settings.run_id}/{settings.class_name}/{int(generation_index)}",
            source_split="",
            orig_width=models.gan_size,
            orig_height=models.gan_size,
            orig_mode="RGB",
            orig_format="GAN",
            split="train",
        )
        writer.add(pixels, record)
    writer.flush()
    manifest = writer.manifest()
    info = dataset_info(
        manifest,
        name=name,
        image_size=settings.output_size,
        shards=writer.shard_names,
        synthetic=True,
        synthetic_info={"kind": "dcgan", "strategy": settings.selection},
        extra={
            "run_id": settings.run_id,
            "class": settings.class_name,
            "gan_digest": plan.gan_marker.digest,
            "gan_image_size": models.gan_size,
            "source_dataset": plan.dataset_record,
            # The classifiers' validation split the GAN left out (None: a GAN from before format 3).
            "gan_validation_holdout": (plan.gan_info.get("dataset") or {}).get("validation_holdout"),
        },
    )
    return writer, manifest, info


def _commit(
    plan: _Plan,
    settings: SynthesizeSettings,
    inputs: dict[str, Any],
    models: _Models,
    candidates: Candidates,
    choice: _Selection,
    real: _Real,
    quality: dict[str, Any],
    timer: _Timer,
    directory: Path,
) -> dict[str, Any]:
    """Builds every output from the arrays and commits them; returns ``selection.json`` (timed last).

    The shards are staged in ``directory`` (an existing, empty local folder) before the upload.
    """
    since = time.monotonic()
    logits = candidates.discriminator_logits
    published = candidates.final[choice.kept]
    rows = kept_rows(choice.selected, choice.positions, choice.ids, logits, choice.confidence, choice.memorization)
    rng = np.random.default_rng([settings.seed, plan.label, 1])
    real_sample = np.sort(rng.choice(len(real.images), min(SAMPLE_TILES, len(real.images)), replace=False))
    writer, manifest, info = _write_dataset(plan, settings, models, published, choice.kept, directory)
    gan = {
        **plan.gan_record,
        "image_size": models.gan_size,
        "latent_dim": models.latent_dim,
        "epochs": plan.gan_info.get("training", {}).get("epochs"),
        "steps": plan.gan_info.get("training", {}).get("steps"),
        "quality": gan_quality(plan.gan_info),
        "flagged_gan": settings.flagged_gan,
    }
    selection = selection_record(
        settings,
        label=plan.label,
        num_images=plan.num_images,
        latent_dim=models.latent_dim,
        num_selected=len(choice.selected),
        num_duplicates=len(published) - len(set(manifest["image_id"])),
        gan=gan,
        dataset=plan.dataset_record,
        confidence_model=inputs["confidence_model"],
        logits=logits,
        kept=choice.kept,
        rows=rows,
        memorization=choice.memorization,
        quality=quality,
        samples=samples_record(rows, len(published), [real.ids[i] for i in real_sample], settings.class_name),
    )
    samples = samples_png(published[:SAMPLE_TILES], real.images[real_sample])
    table = candidates_csv(logits, choice.confidence, choice.selected, choice.kept)
    with plan.store.commit(plan.output_prefix, inputs=inputs, producer=f"cxr-synthesize {__version__}") as tx:
        writer.commit(tx, manifest, info)
        tx.put_bytes("candidates.csv", table)
        tx.put_bytes("samples.png", samples)
        timer.record("write_s", since)
        selection["timings_s"] = timer.rounded()
        tx.put_json("selection.json", selection)
    return selection


# ---------------------------------------------------------------------------------------------------- step
def run(settings: SynthesizeSettings) -> dict[str, Any]:
    """Job entry of ``cxr-synthesize``: generates, selects, checks and commits one class's synthetic set.

    Idempotent: the marker's inputs are the GAN's marker digest, the real dataset's marker digest, the
    confidence model's sha256 (when one is given; it is fetched to hash it), the settings that change the
    output and :data:`cxrcore.synthesis.outputs.SYNTHESIZE_FORMAT`; a committed output with the same inputs is
    left alone.

    Args:
        settings: The job settings.

    Returns:
        JSON-ready summary: status (``created``/``unchanged``), uri, counts, memorized share, KID.

    Raises:
        SynthesizeError: The GAN output is not committed, a model is unusable, ``confidence`` selection has no
            model, the class has no real training images, or ``drop_memorized`` removed every kept image.
        cxrcore.data.dataset.DatasetError: The real dataset is missing or inconsistent.
    """
    timer = _Timer()
    # Bound here, after the job configured logging (a module-level logger would keep the default renderer).
    log = get_logger("cxrcore.synthesize", run_id=settings.run_id, class_name=settings.class_name)
    plan = _plan(settings, log)
    with tempfile.TemporaryDirectory(prefix="cxr-synthesize-") as tmp:
        classifier_path, model_record = _confidence_model(settings, Path(tmp))
        try:
            inception = resolve_inception(settings.inception, directory=Path(tmp),
                                          s3=settings.s3.as_options(settings.io_workers), logger=log)
        except InceptionWeightsError as exc:
            raise SynthesizeError(str(exc)) from exc
        inputs = job_inputs(settings, gan=plan.gan_record, dataset=plan.dataset_record, confidence_model=model_record,
                            inception=inception.record)
        if plan.store.is_committed(plan.output_prefix, inputs):
            log.info("synthesize_unchanged", uri=plan.output_uri)
            committed = plan.store.get_json(join_key(plan.output_prefix, "selection.json"))
            return summary("unchanged", plan.output_uri, committed)
        with timer.phase("load_s"):
            try:
                extractor = inception.build()  # before any image: a file of another network fails here
            except InceptionWeightsError as exc:
                raise SynthesizeError(str(exc)) from exc
            models = _load_models(plan, Path(tmp), classifier_path)
            real = _load_real(plan, settings)
        log.info("synthesize_start", num_images=plan.num_images, keep=plan.keep, strategy=settings.selection,
                 gan_size=models.gan_size, real_train_images=len(real.images), dataset_version=plan.dataset_version)
        with timer.phase("generate_s"):
            latents = latent_vectors(plan.num_images, models.latent_dim, settings.seed, plan.label)
            candidates = generate(models.generator, models.discriminator, latents, settings.output_size,
                                  settings.batch_size, log)
        with timer.phase("select_s"):
            confidence = _confidence(models, candidates, settings)
            selected = _select(plan, candidates, confidence, settings.selection)
        with timer.phase("memorization_s"):
            choice = _screen(selected, confidence, candidates, real, settings, models.gan_size)
        with timer.phase("quality_s"):
            features = pixel_statistics_features(candidates.final)
            quality = quality_report(features, choice.kept, pixel_statistics_features(real.images), real.reference,
                                     settings.seed)
            quality["kept_statistics"] = sample_statistics(candidates.final[choice.kept])
            quality["two_sample_accuracy_kept"] = two_sample_accuracy(
                real.images, candidates.final[choice.kept], seed=settings.seed
            )
            quality["two_sample_test"] = (
                f"5-fold logistic regression on {THUMBNAIL_SIZE}x{THUMBNAIL_SIZE} thumbnails, kept synthetic vs "
                "real training images (0.5 = indistinguishable)"
            )
            # At the resolution both sets have (like the memorization check): the kept images are upsampled GAN
            # output, with no detail finer than the GAN's side.
            common = min(models.gan_size, real.stored_size)
            quality["repeated_detail_share_kept"] = repeated_detail_share(candidates.final[choice.kept], size=common)
            quality["real_repeated_detail_share"] = repeated_detail_share(
                _real_sample(real.images, settings.seed), size=common
            )
        with timer.phase("inception_s"):
            quality["inception"] = _inception_quality(inception, extractor, candidates, choice.kept, real.images,
                                                      settings.seed)
        shards = Path(tmp) / "synthetic-shards"
        shards.mkdir()
        selection = _commit(plan, settings, inputs, models, candidates, choice, real, quality, timer, shards)
    log.info("synthesize_committed", uri=plan.output_uri, kept=selection["num_kept"],
             memorized=choice.memorization["flagged_count"], kid_kept=quality["kept"]["kid"],
             two_sample_accuracy_kept=quality["two_sample_accuracy_kept"])
    return summary("created", plan.output_uri, selection)
