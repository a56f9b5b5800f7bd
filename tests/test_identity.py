"""Identity of the jobs' settings: every field is marked, and the marker inputs of each job stay what they were.

The golden values below were computed with the hand-kept setting lists that :func:`cxrcore.config.identity`
replaced (gan_train's ``trajectory_inputs``, synthesize's and ingest's ``_recorded_settings``,
train_classifier's ``_TRAINING_SETTINGS``), on the same settings and upstream values: a committed output's
``inputs_hash`` must not change, or every store would retrain everything. If a golden value changes, the change
retrains (or re-imports) committed outputs: make it on purpose, with the job's format version bumped.

Changed on purpose: train-classifier (``TRAINING_FORMAT`` 1 -> 2). Backbones with ``weights=none`` now train end
to end instead of freezing random features (a different model for the same settings), and the generalisation
recipe's settings (``validation_fraction``, ``early_stopping_patience``, ``lr_schedule``, ``target_sensitivity``)
joined the identity; every committed classifier output retrains once.

Changed on purpose: gan-train (``OUTPUT_FORMAT`` 1 -> 2). gan.json gained the quality measurements and the
flag that cxr-synthesize acts on, and the DCGAN stabilisers (``steps``, ``beta_1``, TTUR learning rates, label
smoothing, DiffAugment, instance noise) joined the identity; every committed GAN retrains once.

Changed on purpose: gan-train (``OUTPUT_FORMAT`` 2 -> 3) and train-classifier (``TRAINING_FORMAT`` 2 -> 3). The
GAN leaves the classifiers' validation patients out (``validation_fraction``, ``validation_seed`` joined its
identity; gan.json records ``validation_holdout``); the classifiers carve that split with ``validation_seed``
instead of their own seed and gained ``selection_metric``; every committed GAN and classifier retrains once.

Changed on purpose: gan-train (``OUTPUT_FORMAT`` 3 -> 4). ``discriminator_width_multiplier`` (the discriminator's own
filter scale; unset: ``width_multiplier``) joined the identity and gan.json's model section and stabilisers; every
committed GAN retrains once.

Changed on purpose: gan-train (``OUTPUT_FORMAT`` 4 -> 5). ``generator_ema`` (a moving average of the generator's
weights, which the published generator then holds; 0: none) joined the identity, the stabilisers and gan.json's
model section (``generator_weights``); every committed GAN retrains once.

Changed on purpose: gan-train (``OUTPUT_FORMAT`` 5 -> 6). ``mode_seeking_weight`` (MSGAN's mode-seeking term in
the generator's loss; 0: none) joined the identity and the stabilisers; every committed GAN retrains once.

Changed on purpose: gan-train (``OUTPUT_FORMAT`` 6 -> 7). ``mode_seeking_detail_weight`` (the same term on the
images' detail band; 0: none) joined the identity and the stabilisers; every committed GAN retrains once.

Changed on purpose: gan-train (``OUTPUT_FORMAT`` 7 -> 8). ``detail_mean_weight`` (a term matching each generated
batch's mean detail band to the real batch's; 0: none) joined the identity and the stabilisers; every committed
GAN retrains once.

Changed on purpose: gan-train (``OUTPUT_FORMAT`` 8 -> 9). ``publish`` (which measured generator is published) and
``quality_every`` (the measurements it chooses from) joined the job identity but not the trajectory (they choose
among the weights, they do not change them), and checkpoints carry the lowest-KID networks (``best.npz``); every
committed GAN retrains once.

Changed on purpose: synthesize (``SYNTHESIZE_FORMAT`` 1 -> 2). selection.json gained ``quality.inception``
(InceptionV3 KID/FID of the kept set, or why it was not measured) and the inputs record what scored it
(``inception``: the weights and their hash, ``off`` or ``absent``); every committed synthetic set is made once more.

Changed on purpose: gan-train (``OUTPUT_FORMAT`` 9 -> 10). The quality measurements gained InceptionV3 KID and FID
when weights are at hand (gan.json ``quality.inception`` says which, or why none); the job inputs record what scored
them (``inception``), the trajectory does not (it changes no weight). The gradient spike guards (``d_clipnorm``,
``g_clipnorm``) joined the identity and the stabilisers, and losses.csv the epoch's largest gradient norms; every
committed GAN retrains once.

Changed on purpose: train-classifier (``TRAINING_FORMAT`` 3 -> 4). The best epoch is chosen among epochs whose
validation predictions did not collapse to one class at 0.5 (history rows gained ``val_positive_share``), so the
same settings can choose another epoch; every committed classifier retrains once.
"""

from __future__ import annotations

import inspect
import os
from types import SimpleNamespace

import pytest
from pydantic import Field

from cxrcore import config
from cxrcore.config import (
    IDENTITY_MARKS,
    GanTrainSettings,
    JobSettings,
    PrepareSettings,
    ReportSettings,
    SynthesizeSettings,
    TrainClassifierSettings,
    identity,
    identity_mark,
)
from cxrcore.storage import hash_inputs

SETTINGS_CLASSES = sorted(
    (value for value in vars(config).values() if inspect.isclass(value) and issubclass(value, JobSettings)),
    key=lambda cls: cls.__name__,
)
DATASET_DIGEST = "d" * 64
SYNTHETIC_DIGESTS = {"NORMAL": "1" * 64, "PNEUMONIA": "2" * 64}
MANIFEST_ROWS = [
    {"sha256": "a" * 64, "class": "NORMAL", "patient_id": "p1", "source_split": "train"},
    {"sha256": "b" * 64, "class": "PNEUMONIA", "patient_id": "p2", "source_split": "test"},
]


@pytest.fixture(autouse=True)
def _no_settings_from_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("CXR_"):
            monkeypatch.delenv(name)


# ---------------------------------------------------------------------------------------------------- marks
def test_every_settings_class_lives_in_config():
    names = {cls.__name__ for cls in SETTINGS_CLASSES}
    assert {
        "GanTrainSettings",
        "IncomingSettings",
        "JobSettings",
        "MatrixSettings",
        "OutcomeSettings",
        "PrepareSettings",
        "PromoteSettings",
        "ReportSettings",
        "RunSettings",
        "SynthesizeSettings",
        "TrainClassifierSettings",
    } <= names


@pytest.mark.parametrize("settings_cls", SETTINGS_CLASSES, ids=lambda cls: cls.__name__)
def test_every_field_decides_whether_it_changes_the_result(settings_cls):
    unmarked = []
    for name in settings_cls.model_fields:
        try:
            mark = identity_mark(settings_cls, name)
        except ValueError:
            unmarked.append(name)
        else:
            assert any(mark is allowed for allowed in IDENTITY_MARKS), (name, mark)
    assert unmarked == [], (
        f"{settings_cls.__name__}: mark {unmarked} with json_schema_extra={{'identity': True | 'resolved' | False}}"
    )


def test_a_new_unmarked_setting_makes_identity_fail():
    class Extended(ReportSettings):
        new_setting: int = Field(default=1)

    with pytest.raises(ValueError, match=r"Extended\.new_setting must be marked .* Received: identity=None"):
        identity(Extended(run_id="r1"))


def test_a_mark_that_is_not_a_boolean_or_resolved_is_refused():
    class Extended(ReportSettings):
        new_setting: int = Field(default=1, json_schema_extra={"identity": 1})

    with pytest.raises(ValueError, match="Received: identity=1"):
        identity_mark(Extended, "new_setting")


def test_identity_uses_resolved_values():
    assert identity(GanTrainSettings(run_id="r1", class_name="PNEUMONIA"))["epochs"] == 150
    assert identity(SynthesizeSettings(run_id="r1", class_name="NORMAL"))["num_images"] == 1000
    assert identity(TrainClassifierSettings(run_id="r1", model="custom_cnn", condition="baseline"))["weights"] == "none"
    assert identity(TrainClassifierSettings(run_id="r1", model="vgg16", condition="baseline"))["weights"] == "imagenet"


# ---------------------------------------------------------------------------------------------------- golden
GOLDEN_IDENTITY = {
    "prepare": {
        "name": "chest-xray",
        "image_size": 224,
        "split": "patient",
        "test_fraction": 0.2,
        "seed": 42,
        "shard_size": 1024,
        "max_image_pixels": 50_000_000,
        "max_file_mb": 64,
    },
    "gan-train": {
        "seed": 0,
        "class_name": "NORMAL",
        "epochs": 100,
        "image_size": 64,
        "latent_dim": 100,
        "width_multiplier": 1.0,
        "discriminator_width_multiplier": None,
        "batch_size": 32,
        "learning_rate": 1e-4,
        "steps": None,
        "beta_1": 0.9,
        "d_learning_rate": None,
        "g_learning_rate": None,
        "label_smoothing": 0.0,
        "diff_augment": "none",
        "instance_noise": 0.0,
        "mode_seeking_weight": 0.0,
        "mode_seeking_detail_weight": 0.0,
        "detail_mean_weight": 0.0,
        "generator_ema": 0.0,
        "d_clipnorm": 0.0,
        "g_clipnorm": 0.0,
        "validation_fraction": 0.0,
        "validation_seed": 0,
        "quality_every": 500,
        "publish": "last",
        "max_steps_per_epoch": None,
        "mixed_precision": False,
        "xla": False,
    },
    "synthesize": {
        "seed": 0,
        "class_name": "PNEUMONIA",
        "num_images": 1500,
        "output_size": 128,
        "selection": "last-fraction",
        "keep_fraction": 0.07,
        "memorization_threshold": 0.95,
        "drop_memorized": False,
    },
    "train-classifier": {
        "seed": 0,
        "model": "custom_cnn",
        "condition": "baseline",
        "epochs": 20,
        "batch_size": 32,
        "image_size": 128,
        "learning_rate": 1e-4,
        "optimizer": "paper",
        "weights": "none",
        "augment": False,
        "protocol": "clean",
        "max_steps_per_epoch": None,
        "mixed_precision": False,
        "class_weight": "none",
        "validation_fraction": 0.0,
        "validation_seed": 0,
        "early_stopping_patience": 0,
        "selection_metric": "val_loss",
        "lr_schedule": "constant",
        "target_sensitivity": 0.95,
    },
    "report": {"title": "cxr-gan: DCGAN augmentation for chest X-ray classification"},
}
DEFAULT_SETTINGS = {
    "prepare": lambda: PrepareSettings(source="/data"),
    "gan-train": lambda: GanTrainSettings(run_id="r1", class_name="NORMAL"),
    "synthesize": lambda: SynthesizeSettings(run_id="r1", class_name="PNEUMONIA"),
    "train-classifier": lambda: TrainClassifierSettings(run_id="r1", model="custom_cnn", condition="baseline"),
    "report": lambda: ReportSettings(run_id="r1"),
}


@pytest.mark.parametrize("job", sorted(GOLDEN_IDENTITY))
def test_identity_of_default_settings_is_golden(job):
    recorded = identity(DEFAULT_SETTINGS[job]())
    assert recorded == GOLDEN_IDENTITY[job]
    assert list(recorded) == list(GOLDEN_IDENTITY[job])  # field order


def test_report_inputs_record_the_report_identity():
    # The report hashes its title beside the digests of what it reads (cxrcore.report.job.build_report).
    assert set(identity(ReportSettings(run_id="r1"))) == {"title"}


PREPARE_CUSTOM = {
    "source": "/x",
    "name": "other",
    "image_size": 128,
    "split": "paper",
    "test_fraction": 0.3,
    "seed": 7,
    "shard_size": 10,
    "max_image_pixels": 2_000_000,
    "max_file_mb": 3,
    "decode_workers": 2,
    "base_version": "latest",
    "batches": '["b1"]',
}


@pytest.mark.parametrize(
    ("settings", "base_version", "batches", "inputs_hash", "version_id", "version_id_on_base"),
    [
        (
            {"source": "/x"},
            None,
            (),
            "34696dcbe939e8eb2cd274c3cce6c33b626ea433824d1d377e8b70d9ae49015d",
            "vd8e25154ffc0",
            "v2346075e9b58",
        ),
        (
            PREPARE_CUSTOM,
            "vabc",
            ["b1"],
            "db757e44be604bf0a803d228b29afc29e22c0af837ec4f2cb11fd399c146faf3",
            "v8f8be3b87f70",
            "ve24ca258104d",
        ),
    ],
    ids=["default", "custom"],
)
def test_prepare_inputs_and_version_ids_are_golden(
    settings, base_version, batches, inputs_hash, version_id, version_id_on_base
):
    from cxrcore.data import ingest

    prepare = PrepareSettings(**settings)
    assert hash_inputs(ingest.job_inputs(prepare, "v123", base_version=base_version, batches=batches)) == inputs_hash
    assert ingest._version_id(MANIFEST_ROWS, prepare) == version_id
    assert ingest._version_id(MANIFEST_ROWS, prepare, "vabc") == version_id_on_base


@pytest.mark.parametrize(
    ("settings", "inputs_hash", "trajectory_hash"),
    [
        (
            {"run_id": "r1", "class_name": "NORMAL"},
            "d890aa0d56be748ca36cf20ef3983137397f9860dfd11813df69b33d7691a9d9",
            "85ce4de67127e44cceb9dff00dcc2cc54bd85efe56d64cb71cc512bd174bb126",
        ),
        (
            {
                "run_id": "r1",
                "class_name": "PNEUMONIA",
                "epochs": 3,
                "image_size": 32,
                "latent_dim": 8,
                "width_multiplier": 0.5,
                "batch_size": 4,
                "learning_rate": 2e-4,
                "checkpoint_every": 2,
                "max_steps_per_epoch": 5,
                "mixed_precision": True,
                "xla": True,
                "seed": 3,
                "dataset": "other",
            },
            "fbc84eb78362592269003d4fedfceb8d4a0de3718861a056b52ed4734d589024",
            "90848298f548502cf75ad81a1a58f1b633a85a14e0c91bc773c1c165f19fcbbb",
        ),
        (
            {
                "run_id": "r1",
                "class_name": "NORMAL",
                "steps": 2000,
                "beta_1": 0.5,
                "d_learning_rate": 2e-4,
                "g_learning_rate": 1e-4,
                "label_smoothing": 0.1,
                "diff_augment": "translation,cutout",
                "instance_noise": 0.1,
                "quality_every": 100,
                "width_multiplier": 0.25,
                "discriminator_width_multiplier": 1.0,
                "generator_ema": 0.99,
                "mode_seeking_weight": 0.02,
                "mode_seeking_detail_weight": 0.03,
                "detail_mean_weight": 5.0,
                "publish": "guarded",
                "d_clipnorm": 10.0,
                "g_clipnorm": 5.0,
            },
            "f420da95dbd164a1d8e2bc15a4b538d229ec7d0c8cf0539c3e6080fb2240717e",
            "77e895193252e8db888c3d8bc1e8a325198c257e7e106c7b64bcaa0d544fc4b3",
        ),
    ],
    ids=["default", "custom", "stabilised"],
)
def test_gan_train_inputs_are_golden(settings, inputs_hash, trajectory_hash):
    from cxrcore import gan_train

    gan = GanTrainSettings(**settings)
    marker = SimpleNamespace(digest=DATASET_DIGEST)
    assert hash_inputs(gan_train.job_inputs(gan, marker, "v123", {"weights": "absent"})) == inputs_hash
    assert hash_inputs(gan_train.trajectory_inputs(gan, marker, "v123")) == trajectory_hash


@pytest.mark.parametrize("change", [{"publish": "best"}, {"publish": "guarded"}, {"quality_every": 100}])
def test_gan_publish_rule_changes_the_output_not_the_trajectory(change):
    """Choosing another measured generator republishes from the same checkpoints; it does not retrain."""
    from cxrcore import gan_train

    marker = SimpleNamespace(digest=DATASET_DIGEST)
    base = GanTrainSettings(run_id="r1", class_name="NORMAL", steps=1000)
    changed = base.model_copy(update=change)
    assert hash_inputs(gan_train.job_inputs(changed, marker, "v1", {"weights": "off"})) != hash_inputs(
        gan_train.job_inputs(base, marker, "v1", {"weights": "off"})
    )
    assert gan_train.trajectory_inputs(changed, marker, "v1") == gan_train.trajectory_inputs(base, marker, "v1")


@pytest.mark.parametrize("inception", ["off", "imagenet", "s3://b/inceptionv3.weights.h5"])
def test_gan_inception_scores_change_the_output_not_the_trajectory(inception):
    """What scores the measurements with InceptionV3 is recorded in the inputs; it never changes the weights."""
    from cxrcore import gan_train

    marker = SimpleNamespace(digest=DATASET_DIGEST)
    base = GanTrainSettings(run_id="r1", class_name="NORMAL", steps=1000)
    changed = base.model_copy(update={"inception": inception})
    record = {"weights": inception, "sha256": "a" * 64}
    assert hash_inputs(gan_train.job_inputs(changed, marker, "v1", record)) != hash_inputs(
        gan_train.job_inputs(base, marker, "v1", {"weights": "absent"})
    )
    assert gan_train.trajectory_inputs(changed, marker, "v1") == gan_train.trajectory_inputs(base, marker, "v1")


@pytest.mark.parametrize(
    ("settings", "confidence_model", "inception", "inputs_hash"),
    [
        (
            {"run_id": "r1", "class_name": "PNEUMONIA"},
            None,
            {"weights": "absent"},
            "025613ed6a0f94904012fa9b8c67660e6009917be78a2ce0c9b00191300929a5",
        ),
        (
            {
                "run_id": "r1",
                "class_name": "NORMAL",
                "num_images": 50,
                "output_size": 64,
                "selection": "confidence",
                "keep_fraction": 0.5,
                "confidence_model": "s3://b/m.keras",
                "memorization_threshold": 0.9,
                "drop_memorized": True,
                "batch_size": 8,
                "seed": 2,
            },
            {"uri": "s3://b/m.keras", "sha256": "e" * 64},
            {"weights": "s3://b/inceptionv3.weights.h5", "sha256": "a" * 64},
            "f260d741127f04c51670b6b27405f971b6430d6198b05c91e7c0eb61d8556418",
        ),
    ],
    ids=["default", "custom"],
)
def test_synthesize_inputs_are_golden(settings, confidence_model, inception, inputs_hash):
    from cxrcore import synthesize

    synth = SynthesizeSettings(**settings)
    inputs = synthesize.job_inputs(
        synth,
        gan={"prefix": "runs/r1/gan/X", "digest": "f" * 64},
        dataset={"name": synth.dataset, "version": "v123", "digest": DATASET_DIGEST},
        confidence_model=confidence_model,
        inception=inception,
    )
    assert hash_inputs(inputs) == inputs_hash


@pytest.mark.parametrize(
    ("settings", "synthetic", "inputs_hash"),
    [
        (
            {"run_id": "r1", "model": "custom_cnn", "condition": "baseline"},
            {},
            "58c2341d666daf90e698a17c2785228f56c51eb049964555bac4264e07f2174c",
        ),
        (
            {"run_id": "r1", "model": "custom_cnn", "condition": "augmented", "weights": "imagenet"},
            SYNTHETIC_DIGESTS,
            "10e9665bef7c9c83aaf950434f4369ee8472dc72a6773c1e4df6176707d066ed",
        ),
        (
            {
                "run_id": "r1",
                "model": "vgg16",
                "condition": "augmented",
                "epochs": 2,
                "batch_size": 8,
                "image_size": 64,
                "learning_rate": 1e-3,
                "optimizer": "sgd",
                "weights": "/w.h5",
                "augment": True,
                "protocol": "paper-merge",
                "checkpoint_every": 3,
                "max_steps_per_epoch": 4,
                "mixed_precision": True,
                "class_weight": "balanced",
                "seed": 5,
                "validation_fraction": 0.1,
                "early_stopping_patience": 3,
                "lr_schedule": "plateau",
                "target_sensitivity": 0.9,
            },
            SYNTHETIC_DIGESTS,
            "ac752fd63d8fca2c778cc6b33b44f0551bc036bc2e4c87c5547c45bc8dc24e47",
        ),
    ],
    ids=["default", "custom-cnn-imagenet", "custom"],
)
def test_train_classifier_inputs_are_golden(settings, synthetic, inputs_hash):
    from cxrcore import train_classifier

    classifier = TrainClassifierSettings(**settings)
    inputs = train_classifier._training_inputs(
        classifier, dataset_version="v123", dataset_digest=DATASET_DIGEST, synthetic_digests=synthetic
    )
    assert hash_inputs(inputs) == inputs_hash


@pytest.mark.parametrize(
    ("settings_cls", "kwargs", "field"),
    [
        (GanTrainSettings, {"run_id": "r1", "class_name": "NORMAL"}, "checkpoint_every"),
        (SynthesizeSettings, {"run_id": "r1", "class_name": "NORMAL"}, "batch_size"),
        (TrainClassifierSettings, {"run_id": "r1", "model": "vgg16", "condition": "baseline"}, "checkpoint_every"),
        (PrepareSettings, {"source": "/x"}, "decode_workers"),
    ],
)
def test_settings_that_do_not_change_the_result_do_not_change_the_identity(settings_cls, kwargs, field):
    default = settings_cls(**kwargs)
    changed = settings_cls(**kwargs, **{field: 3}, store="file:///elsewhere", log_level="DEBUG", io_workers=2)
    assert identity(changed) == identity(default)
