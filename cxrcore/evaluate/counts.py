"""``cxr models``: every model of the study at the paper's settings beside the parameter count the paper publishes.

Classifiers at 128 px, the DCGAN at 64 px with a 100-d latent (docs/architecture.md#command-line); the models
are built without weights (counts do not depend on them), so this runs offline.
"""

from __future__ import annotations

from typing import Any

from cxrcore.vocab import PAPER_GAN_IMAGE_SIZE, PAPER_IMAGE_SIZE, PAPER_LATENT_DIM

__all__ = ["PAPER_SETTINGS", "study_parameter_counts"]

#: Settings at which ``cxr models`` counts parameters (the paper's: classifiers 128 px, DCGAN 64 px).
PAPER_SETTINGS: dict[str, int] = {
    "classifier_input_size": PAPER_IMAGE_SIZE,
    "gan_image_size": PAPER_GAN_IMAGE_SIZE,
    "latent_dim": PAPER_LATENT_DIM,
}


def study_parameter_counts() -> list[dict[str, Any]]:
    """Every model of the study with its parameter counts at the paper's settings.

    Classifiers are built at 128 px with ``weights=None`` (counts do not depend on the weights); the DCGAN
    generator (100-d noise to 64 px) and discriminator (64 px) at width 1.0. Each row is compared with the
    trainable-parameter count the paper's Table 1 publishes, where it gives one.

    Returns:
        Rows with ``model``, ``role`` (classifier, generator, discriminator), ``input``, ``params_total``,
        ``params_trainable``, ``paper_params_trainable`` (``None`` when the paper gives none) and
        ``matches_paper`` (``None`` likewise).
    """
    import keras

    from cxrcore.models import (
        ALL_MODELS,
        DISCRIMINATOR_PAPER_PARAMS,
        GENERATOR_PAPER_PARAMS,
        PAPER_PARAMS,
        build_classifier,
        build_discriminator,
        build_generator,
        model_summary_counts,
    )

    size = PAPER_SETTINGS["classifier_input_size"]
    gan_size = PAPER_SETTINGS["gan_image_size"]
    latent = PAPER_SETTINGS["latent_dim"]
    builders = [
        (name, "classifier", f"{size}x{size}x3", lambda name=name: build_classifier(name, input_size=size))
        for name in ALL_MODELS
    ]
    builders += [
        ("generator", "generator", f"noise({latent})", lambda: build_generator(latent, output_size=gan_size)),
        (
            "discriminator",
            "discriminator",
            f"{gan_size}x{gan_size}x3",
            lambda: build_discriminator(input_size=gan_size),
        ),
    ]
    published = {
        "custom_cnn": PAPER_PARAMS,
        "generator": GENERATOR_PAPER_PARAMS,
        "discriminator": DISCRIMINATOR_PAPER_PARAMS,
    }
    rows = []
    for name, role, shape, build in builders:
        # Variables created in a StatelessScope are never initialised: shapes only, 3-4x faster to build.
        with keras.StatelessScope():
            total, trainable = model_summary_counts(build())
        keras.backend.clear_session()
        paper = published.get(name)
        rows.append(
            {
                "model": name,
                "role": role,
                "input": shape,
                "params_total": total,
                "params_trainable": trainable,
                "paper_params_trainable": paper,
                "matches_paper": None if paper is None else trainable == paper,
            }
        )
    return rows
