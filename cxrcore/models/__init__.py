"""Keras models of the paper: the per-class DCGAN and the seven classifiers.

* `cxrcore.models.dcgan`: Table 1 generator/discriminator, the `DCGAN` training
  model, `GANSampleGrid` and image-grid helpers.
* `cxrcore.models.custom_cnn`: the Table 1 custom CNN.
* `cxrcore.models.transfer`: the six transfer-learning backbones (`BACKBONES`),
  the classifier registry (`ALL_MODELS`, `build_classifier`) and the paper's
  optimizers.
* `cxrcore.models.weights_cache`: Keras' ImageNet weight files of the six
  backbones: baked into the Keras cache at image build time
  (`python -m cxrcore.models.weights_cache`) and checked before training.

Every classifier takes raw RGB pixels in [0, 255] and embeds its own
preprocessing; the DCGAN works on images in [0, 1]. Models never do I/O, except
`load_base_weights` / `weights=<local path>`, which read a local weights file.
`weights_cache` is build/ops tooling, not a model: it downloads into the local
Keras cache (never S3) and is not imported by the model code.
"""

from cxrcore.models.custom_cnn import (
    CUSTOM_CNN_INPUT_RANGE,
    CUSTOM_CNN_MIN_INPUT_SIZE,
    PAPER_PARAMS,
    build_custom_cnn,
    custom_cnn_trainable_params,
    preprocess,
)
from cxrcore.models.dcgan import (
    DCGAN,
    DISCRIMINATOR_PAPER_PARAMS,
    GENERATOR_PAPER_PARAMS,
    GANSampleGrid,
    build_discriminator,
    build_generator,
    default_gan_optimizers,
    encode_png,
    make_grid,
    to_uint8,
)
from cxrcore.models.transfer import (
    ALL_MODELS,
    BACKBONES,
    PAPER_LEARNING_RATE,
    BackbonePreprocessing,
    BackboneSpec,
    GrayscaleToRGB,
    build_classifier,
    build_transfer_model,
    classifier_input_range,
    classifier_min_input_size,
    get_backbone,
    get_base_model,
    grayscale_to_rgb,
    load_base_weights,
    model_summary_counts,
    network_input_range,
    paper_optimizer,
)

__all__ = [
    "ALL_MODELS",
    "BACKBONES",
    "CUSTOM_CNN_INPUT_RANGE",
    "CUSTOM_CNN_MIN_INPUT_SIZE",
    "DCGAN",
    "DISCRIMINATOR_PAPER_PARAMS",
    "GENERATOR_PAPER_PARAMS",
    "GANSampleGrid",
    "PAPER_LEARNING_RATE",
    "PAPER_PARAMS",
    "BackbonePreprocessing",
    "BackboneSpec",
    "GrayscaleToRGB",
    "build_classifier",
    "build_custom_cnn",
    "build_discriminator",
    "build_generator",
    "build_transfer_model",
    "classifier_input_range",
    "classifier_min_input_size",
    "custom_cnn_trainable_params",
    "default_gan_optimizers",
    "encode_png",
    "get_backbone",
    "get_base_model",
    "grayscale_to_rgb",
    "load_base_weights",
    "make_grid",
    "model_summary_counts",
    "network_input_range",
    "paper_optimizer",
    "preprocess",
    "to_uint8",
]
