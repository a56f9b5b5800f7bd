"""The vocabulary of cxr-gan, typed once: class and model names, conditions, strategies, name patterns, the
paper's numbers.

Every other module imports these names from here (see docs/architecture.md#vocabulary). This module imports
only the standard library and does nothing when imported but define constants, so settings, the report and
the CPU images can use it without TensorFlow, pandas or pydantic.

Name patterns are compiled regular expressions, matched with ``.match`` (they are anchored); pydantic fields
take their ``.pattern`` string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "GAN_AUGMENT_POLICIES",
    "GAN_PUBLISH_RULES",
    "BACKBONE_NAMES",
    "BATCH_NAME_PATTERN",
    "CHECKPOINT_NAME_PATTERN",
    "CLASS_NAMES",
    "CONDITIONS",
    "CUSTOM_CNN",
    "DATASET_NAME_PATTERN",
    "DATASET_VERSION_PATTERN",
    "DEFAULT_DATASET_NAME",
    "DEMO_FILENAME_PATTERN",
    "DICOM_DEFAULT_VIEWS",
    "DICOM_MODALITIES",
    "DICOM_OTHER",
    "DICOM_PHOTOMETRICS",
    "DICOM_UNKNOWN_VIEW",
    "DICOM_VIEWS",
    "INCOMING_PREFIX",
    "KAGGLE_IM_PATTERN",
    "KAGGLE_PERSON_PATTERN",
    "KEY_COMPONENT_PATTERN",
    "MIN_PATIENT_SALT_LENGTH",
    "MODEL_DIRECTORY_PATTERN",
    "MODEL_DISPLAY_NAMES",
    "MODEL_NAMES",
    "OPTIMIZERS",
    "PAPER_CLASSIFIER_EPOCHS",
    "PAPER_CUSTOM_CNN_PARAMS",
    "PAPER_DISCRIMINATOR_PARAMS",
    "PAPER_GAN_EPOCHS",
    "PAPER_GAN_IMAGE_SIZE",
    "PAPER_GENERATED_IMAGES",
    "PAPER_GENERATOR_PARAMS",
    "PAPER_IMAGE_SIZE",
    "PAPER_KEEP_FRACTION",
    "PAPER_LATENT_DIM",
    "PAPER_LEARNING_RATE",
    "PAPER_TEST_FRACTION",
    "PROTOCOLS",
    "RUN_ID_PATTERN",
    "SEED_DIRECTORY_PATTERN",
    "SELECTION_STRATEGIES",
    "SPLIT_STRATEGIES",
    "TASK_NAME_PATTERN",
]

# ---------------------------------------------------------------------------------------------------- classes
#: The two classes, in label order: label 0 is NORMAL, label 1 (the positive class) is PNEUMONIA.
CLASS_NAMES: tuple[str, str] = ("NORMAL", "PNEUMONIA")

# ---------------------------------------------------------------------------------------------------- models
#: The paper's own small CNN (Table 1).
CUSTOM_CNN = "custom_cnn"
#: The six transfer-learning backbones, in the paper's table order.
BACKBONE_NAMES: tuple[str, ...] = ("inceptionv3", "resnet50", "efficientnetb0", "vgg16", "densenet201", "xception")
#: Every classifier of the study, in the paper's table order (custom CNN first).
MODEL_NAMES: tuple[str, ...] = (CUSTOM_CNN, *BACKBONE_NAMES)
#: How the report prints each model (the usual spelling of the architecture).
MODEL_DISPLAY_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "custom_cnn": "Custom CNN",
        "inceptionv3": "InceptionV3",
        "resnet50": "ResNet50",
        "efficientnetb0": "EfficientNetB0",
        "vgg16": "VGG16",
        "densenet201": "DenseNet201",
        "xception": "Xception",
    }
)

# ---------------------------------------------------------------------------------------------------- study design
#: Training conditions: real images only, then real + synthetic.
CONDITIONS: tuple[str, str] = ("baseline", "augmented")
#: Train/test split strategies (the settings' default first): grouped by patient, the paper's pooled
#: stratified 80/20, the source's own folders.
SPLIT_STRATEGIES: tuple[str, ...] = ("patient", "paper", "official")
#: DiffAugment transformations of the DCGAN discriminator, in application order (cxrcore.models.gan_augment).
GAN_AUGMENT_POLICIES: tuple[str, ...] = ("brightness", "contrast", "translation", "cutout")
#: How synthetic images are kept: the paper's last generated share, then our alternatives.
SELECTION_STRATEGIES: tuple[str, ...] = ("last-fraction", "discriminator", "confidence", "diversity")
#: Which measured generator cxr-gan-train publishes: the last (paper), the lowest-KID one, or the last unless it
#: broke down late (then the lowest-KID one before it).
GAN_PUBLISH_RULES: tuple[str, ...] = ("last", "best", "guarded")
#: Where synthetic images go: the training split only, or merged before splitting as the paper did.
PROTOCOLS: tuple[str, ...] = ("clean", "paper-merge")
#: Classifier optimizer choices: ``paper`` is Adam, but RMSprop for InceptionV3 and SGD for ResNet50.
OPTIMIZERS: tuple[str, ...] = ("paper", "adam", "rmsprop", "sgd")

# ---------------------------------------------------------------------------------------------------- names
#: One store key component we create from a user's name: run ids (Argo's ``{{workflow.name}}`` is one) and
#: incoming batch names.
KEY_COMPONENT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RUN_ID_PATTERN = KEY_COMPONENT_PATTERN
BATCH_NAME_PATTERN = KEY_COMPONENT_PATTERN
#: Dataset names and registry task names: lower case, one key component.
DATASET_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
TASK_NAME_PATTERN = DATASET_NAME_PATTERN
#: Dataset version ids (``v`` + 12 hex digits when imported, but any such component is accepted).
DATASET_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: The ``<model>`` level of ``runs/<run_id>/classifiers/<condition>/<model>/seed-<seed>``.
MODEL_DIRECTORY_PATTERN = re.compile(r"^[a-z0-9_]{1,64}$")
#: The ``seed-<seed>`` level below a model; group 1 is the seed.
SEED_DIRECTORY_PATTERN = re.compile(r"^seed-(\d+)$")
#: A committed training checkpoint, ``checkpoints/epoch-NNNN``; group 1 is the number of completed epochs.
CHECKPOINT_NAME_PATTERN = re.compile(r"^epoch-(\d{4,})$")
#: Kaggle ``chest_xray`` file stems of one patient: ``person124_virus_231``, ``person447_bacteria_921_1``
#: (group 1: ``person124``).
KAGGLE_PERSON_PATTERN = re.compile(r"^(person\d+)_(?:virus|bacteria)(?:_\d+)+$", re.IGNORECASE)
#: Kaggle ``chest_xray`` file stems ``IM-0115-0001``, ``NORMAL2-IM-1427-0001``, and the demo phantoms'
#: ``PHANTOMN-IM-0007-0002`` (group 1: ``IM-0115``, ``NORMAL2-IM-1427``, ``PHANTOMN-IM-0007``).
KAGGLE_IM_PATTERN = re.compile(r"^((?:[a-z][a-z0-9]*-)?IM-\d+)(?:-\d+)+$", re.IGNORECASE)
#: File names of the demo phantoms (:mod:`cxrcore.data.demo`): parsed by :data:`KAGGLE_IM_PATTERN` too.
DEMO_FILENAME_PATTERN = re.compile(r"^(?P<prefix>PHANTOM[NP])-IM-(?P<patient>\d{4,})-(?P<image>\d{4,})\.jpeg$")

#: The dataset every job reads unless told otherwise.
DEFAULT_DATASET_NAME = "chest-xray"
#: Store-relative prefix producers upload new batches to (``incoming/<batch>/``).
INCOMING_PREFIX = "incoming"

#: DICOM ``ViewPosition`` values a manifest records (the radiography defined terms and those found in public chest
#: X-ray sets); any other value is recorded, filtered and reported as :data:`DICOM_OTHER`, so a free-text value
#: never reaches a store object.
DICOM_VIEWS: tuple[str, ...] = (
    "PA", "AP", "LL", "RL", "LLD", "RLD", "LLO", "RLO", "LAO", "RAO", "LPO", "RPO", "LATERAL", "LAT", "AP AXIAL",
    "AP LLD", "AP RLD", "PA LLD", "PA RLD", "XTABLE LATERAL", "SWIMMERS", "OBLIQUE",
)
#: DICOM ``Modality`` values a manifest records (others: :data:`DICOM_OTHER`).
DICOM_MODALITIES: tuple[str, ...] = (
    "CR", "DX", "RG", "DR", "OT", "CT", "MR", "US", "NM", "PT", "XA", "RF", "MG", "IO", "PX", "SC", "DOC", "SR", "PR",
    "KO", "SEG", "REG",
)
#: DICOM ``PhotometricInterpretation`` values (PS3.3 C.7.6.3.1.2); only the two MONOCHROME ones are read.
DICOM_PHOTOMETRICS: tuple[str, ...] = (
    "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT",
    "YBR_RCT", "HSV", "ARGB", "CMYK", "XYB",
)
#: A coded DICOM value outside the lists above.
DICOM_OTHER = "OTHER"
#: DICOM ``ViewPosition`` values imported unless told otherwise (frontal views; laterals ``LL``/``RL`` are not).
DICOM_DEFAULT_VIEWS: tuple[str, ...] = ("PA", "AP")
#: How the view filter names a DICOM file without a ``ViewPosition`` (or an empty one).
DICOM_UNKNOWN_VIEW = "UNKNOWN"
#: Shortest accepted patient salt (the key of the hashed DICOM patient ids), in characters.
MIN_PATIENT_SALT_LENGTH = 16

# ---------------------------------------------------------------------------------------------------- the paper
#: Learning rate of every model in the paper (Section 4.2), DCGAN included.
PAPER_LEARNING_RATE = 1e-4
#: Classifier input size (pixels, square); synthetic images are upsampled to it.
PAPER_IMAGE_SIZE = 128
#: DCGAN image size (pixels, square) and noise dimension (Table 1).
PAPER_GAN_IMAGE_SIZE = 64
PAPER_LATENT_DIM = 100
#: Classifier training epochs.
PAPER_CLASSIFIER_EPOCHS = 20
#: DCGAN training epochs per class.
PAPER_GAN_EPOCHS: Mapping[str, int] = MappingProxyType({"PNEUMONIA": 150, "NORMAL": 100})
#: Images each class's DCGAN generates.
PAPER_GENERATED_IMAGES: Mapping[str, int] = MappingProxyType({"PNEUMONIA": 1500, "NORMAL": 1000})
#: Share of the generated images the paper keeps (its last ~7%).
PAPER_KEEP_FRACTION = 0.07
#: Test share of the paper's pooled, stratified split (80/20).
PAPER_TEST_FRACTION = 0.2
#: Trainable parameters Table 1 reports: DCGAN generator and discriminator (reproduced exactly) and the custom
#: CNN (1,177,801, which no reading of Table 1 reproduces; see :mod:`cxrcore.models.custom_cnn`).
PAPER_GENERATOR_PARAMS = 3_750_275
PAPER_DISCRIMINATOR_PARAMS = 404_801
PAPER_CUSTOM_CNN_PARAMS = 1_177_801
