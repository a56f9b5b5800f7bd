"""Trained classifiers outside the pipeline: ``cxr evaluate``, ``cxr predict`` and ``cxr models``.

``cxr evaluate MODEL_URI DATA_DIR`` and ``cxr predict MODEL_URI IMAGE...`` are thin wrappers around
:func:`load_model_uri`, :func:`evaluate_folder` and :func:`predict_images` (docs/architecture.md#command-line).
By concern:

* :mod:`cxrcore.inference`: fetching and loading a model, and :func:`predict_pixels`, the one inference path
  (re-exported here, where the command line and the jobs have always imported them);
* :mod:`cxrcore.evaluate.files`: image files decoded exactly like the stored test set;
* :mod:`cxrcore.evaluate.folder`: :func:`evaluate_folder`, metrics on a ``NORMAL/ PNEUMONIA/`` folder;
* :mod:`cxrcore.evaluate.predict`: :func:`predict_images`, one probability per file;
* :mod:`cxrcore.evaluate.counts`: :func:`study_parameter_counts`, what ``cxr models`` prints.
"""

from cxrcore.evaluate.counts import PAPER_SETTINGS, study_parameter_counts
from cxrcore.evaluate.files import CLASS_FOLDERS
from cxrcore.evaluate.folder import evaluate_folder
from cxrcore.evaluate.predict import predict_images
from cxrcore.inference import (
    MODEL_FILE,
    fetch_file,
    load_model_uri,
    model_input_shape,
    predict_pixels,
)

__all__ = [
    "CLASS_FOLDERS",
    "MODEL_FILE",
    "PAPER_SETTINGS",
    "evaluate_folder",
    "fetch_file",
    "load_model_uri",
    "model_input_shape",
    "predict_images",
    "predict_pixels",
    "study_parameter_counts",
]
