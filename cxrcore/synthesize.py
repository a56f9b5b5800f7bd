"""``cxr-synthesize`` under its historical name: the job entry and the synthesis functions, re-exported.

The step lives in :mod:`cxrcore.steps.synthesize` (plan, skip if committed, generate, select, check, commit)
and the computing in :mod:`cxrcore.synthesis` (selection, images, generation, similarity, KID, outputs); see
docs/architecture.md#synthetic-selection. ``jobs/synthesize.py`` and the tests import from here.
"""

from cxrcore.steps.synthesize import SynthesizeError, job_inputs, run
from cxrcore.synthesis.generation import candidate_confidence
from cxrcore.synthesis.images import (
    DIVERSITY_FEATURE_SIZE,
    UPSAMPLING,
    diversity_features,
    resize_images,
    to_grayscale,
    upsample_to_uint8,
)
from cxrcore.synthesis.kid import (
    FEATURE_EXTRACTOR_DESCRIPTION,
    FEATURE_EXTRACTOR_NAME,
    kernel_inception_distance,
    pixel_statistics_features,
)
from cxrcore.synthesis.outputs import SYNTHESIZE_FORMAT
from cxrcore.synthesis.selection import (
    SELECTION_STRATEGIES,
    intended_class_confidence,
    keep_count,
    latent_vectors,
    select_diversity,
    select_indices,
    select_last_fraction,
    select_top_scores,
)
from cxrcore.synthesis.similarity import (
    MEMORIZATION_MAX_SIZE,
    SSIM_PARAMETERS,
    memorization_report,
    nearest_by_ssim,
    ssim,
)

__all__ = [
    "DIVERSITY_FEATURE_SIZE",
    "FEATURE_EXTRACTOR_DESCRIPTION",
    "FEATURE_EXTRACTOR_NAME",
    "MEMORIZATION_MAX_SIZE",
    "SELECTION_STRATEGIES",
    "SSIM_PARAMETERS",
    "SYNTHESIZE_FORMAT",
    "UPSAMPLING",
    "SynthesizeError",
    "candidate_confidence",
    "diversity_features",
    "intended_class_confidence",
    "job_inputs",
    "keep_count",
    "kernel_inception_distance",
    "latent_vectors",
    "memorization_report",
    "nearest_by_ssim",
    "pixel_statistics_features",
    "resize_images",
    "run",
    "select_diversity",
    "select_indices",
    "select_last_fraction",
    "select_top_scores",
    "ssim",
    "to_grayscale",
    "upsample_to_uint8",
]
