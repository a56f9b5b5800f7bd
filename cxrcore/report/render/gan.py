"""The report's DCGAN section: training and synthetic-set selection per class, memorization warnings, samples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cxrcore.report.collect import RunData
from cxrcore.report.paper import PAPER_SETTINGS
from cxrcore.report.render.blocks import Block, FigureRef, Paragraph, finite, format_value
from cxrcore.report.tables import DisplayTable
from cxrcore.vocab import CLASS_NAMES

__all__ = ["gan_section"]

_GAN_COLUMNS = [
    "Class", "GAN epochs (steps)", "GAN quality", "KID of the GAN (step 0 -> final)", "Final D loss", "Final G loss",
    "GAN train time (s)", "Selection", "Generated", "Kept", "KID (lower is better)",
    "Two-sample accuracy (final GAN; kept)", "Repeated detail (final GAN; kept; real)",
    "Memorization: kept images near a real one",
]
_GAN_NOTE = (
    "The paper kept the last ~7% of 1,500 PNEUMONIA and 1,000 NORMAL images and reports no quality "
    "or memorization measure. KID: kernel inception distance between synthetic and real training "
    "images (of the kept set; all generated after the semicolon), on the feature extractor named. "
    "Memorization: share of kept images whose nearest real training image is at least as similar as the "
    "threshold. GAN quality: cxr-gan-train measures its generator every few hundred steps on fixed noise; a GAN "
    "whose samples are near-constant, whose KID never improved or whose final KID broke down late is FLAGGED and "
    "cxr-synthesize refuses its images unless flagged_gan=use. Final: the published generator (the last one unless "
    "said below). Two-sample accuracy: a logistic regression telling generated from real 16x16 "
    "thumbnails (5-fold; 0.5 = indistinguishable, 1.0 = trivially separable). Repeated detail: the share of the "
    "images' fine detail (each image minus its blur) that is the same in every image; a GAN far above the real "
    "images' share draws the same ribs in the same place in every sample."
)


def gan_section(data: RunData, figures: Mapping[str, bytes]) -> list[Block]:
    """The ``gan`` section: one table row per class, memorization warnings, loss and sample figures.

    Args:
        data: The collected run.
        figures: Figure PNGs by file name (only their names are used here).

    Returns:
        The section's blocks (a "Not run" paragraph when the run has no GAN or synthetic output).
    """
    if not data.gans and not data.synthetic:
        reason = "no committed output under gan/ or synthetic/ for this run"
        if "augmented" in data.conditions():
            reason += " (yet augmented classifiers exist: check the incomplete outputs)"
        return [Paragraph(f"Not run: {reason}.")]
    rows = [_class_row(data, class_name) for class_name in CLASS_NAMES]
    blocks: list[Block] = [
        DisplayTable(
            columns=list(_GAN_COLUMNS),
            rows=rows,
            caption="DCGAN training and synthetic-set selection per class",
            notes=[_GAN_NOTE],
        )
    ]
    blocks += _quality_warnings(data)
    blocks += _published_notes(data)
    blocks += _stabiliser_notes(data)
    blocks += _inception_notes(data)
    for class_name in CLASS_NAMES:
        synthetic = data.synthetic.get(class_name)
        share = synthetic.summary().get("memorization_share") if synthetic else None
        if finite(share) and float(share) > 0:
            blocks.append(Paragraph(
                f"MEMORIZATION: {100 * float(share):.1f}% of the kept {class_name} images are near-copies of real "
                "training images.", warning=True))
    blocks += _figures(figures)
    if data.synthetic:
        blocks.append(
            Paragraph(
                "The complete selection reports (every kept image with its nearest real neighbour, timings, the GAN "
                "they came from) are in metrics.json under synthetic.<CLASS>.selection and in each synthetic "
                "prefix's selection.json."
            )
        )
    return blocks


def _class_row(data: RunData, class_name: str) -> list[str]:
    gan = data.gans.get(class_name)
    synthetic = data.synthetic.get(class_name)
    gan_summary = gan.summary() if gan else {}
    selection = synthetic.summary() if synthetic else {}
    paper_epochs = PAPER_SETTINGS["gan_epochs"][class_name]
    paper_generated = PAPER_SETTINGS["gan_generated"][class_name]
    steps = f"; {format_value(gan_summary['steps'])} steps" if gan_summary.get("steps") is not None else ""
    return [
        class_name,
        f"{format_value(gan_summary.get('epochs'))}{steps} (paper {paper_epochs} epochs)" if gan else "not run",
        _quality_text(gan_summary) if gan else "–",
        _gan_kid_text(gan_summary) if gan else "–",
        format_value(gan_summary.get("final_d_loss")) if gan else "–",
        format_value(gan_summary.get("final_g_loss")) if gan else "–",
        format_value(gan_summary.get("train_seconds"), 5) if gan else "–",
        format_value(selection.get("strategy")) if synthetic else "not run",
        f"{format_value(selection.get('num_generated'))} (paper {paper_generated})" if synthetic else "–",
        format_value(selection.get("kept")) if synthetic else "–",
        _kid_text(selection),
        f"{format_value(gan_summary.get('two_sample_final'))}; {format_value(selection.get('two_sample_kept'))}",
        _repeated_detail_text(gan_summary, selection),
        _memorization_text(selection),
    ]


def _repeated_detail_text(gan_summary: dict[str, Any], selection: dict[str, Any]) -> str:
    final, kept = gan_summary.get("repeated_detail_final"), selection.get("repeated_detail_kept")
    real = selection.get("real_repeated_detail")
    if real is None:
        real = gan_summary.get("real_repeated_detail")
    if final is None and kept is None:
        return "–"
    return f"{format_value(final)}; {format_value(kept)}; {format_value(real)}"


def _quality_text(gan_summary: dict[str, Any]) -> str:
    status = gan_summary.get("quality_status")
    if status is None:
        return "not measured (older GAN output)"
    return "FLAGGED" if status == "flagged" else "ok"


def _gan_kid_text(gan_summary: dict[str, Any]) -> str:
    start, final = gan_summary.get("kid_start"), gan_summary.get("kid_final")
    if final is None:
        return "–"
    return f"{format_value(start)} -> {format_value(final)}" if start is not None else format_value(final)


def _quality_warnings(data: RunData) -> list[Block]:
    """One warning per flagged GAN: why, and whether its images were refused or used anyway."""
    blocks: list[Block] = []
    for class_name in CLASS_NAMES:
        gan = data.gans.get(class_name)
        summary = gan.summary() if gan else {}
        if summary.get("quality_status") != "flagged":
            continue
        synthetic = data.synthetic.get(class_name)
        used = synthetic is not None and synthetic.summary().get("flagged_gan") == "use"
        fate = ("its images WERE USED anyway (flagged_gan=use): the augmented results rest on a failed GAN"
                if used else "cxr-synthesize refused its images, so no augmented classifier used them")
        reasons = "; ".join(str(reason) for reason in summary.get("quality_reasons", []))
        blocks.append(Paragraph(f"GAN FLAGGED ({class_name}): {reasons}. {fate}.", warning=True))
    return blocks


def _published_notes(data: RunData) -> list[Block]:
    """Which measured generator each GAN published, when ``gan.json`` says (format 9): a warning when it is not the
    last one (``publish`` chose an earlier one, with why), a plain note when a rule other than ``last`` kept it."""
    blocks: list[Block] = []
    for class_name in CLASS_NAMES:
        gan = data.gans.get(class_name)
        published = (gan.summary() if gan else {}).get("published")
        if not isinstance(published, dict):
            continue
        if not published.get("replaced_last"):
            if published.get("rule") != "last":
                blocks.append(Paragraph(
                    f"DCGAN {class_name}: published the last generator (step {format_value(published.get('step'))}) "
                    f"under publish={published.get('rule')}: no earlier one replaced it."
                ))
            continue
        blocks.append(Paragraph(
            f"DCGAN {class_name}: the published generator is the one measured at step "
            f"{format_value(published.get('step'))} (KID {format_value(published.get('kid'))}), not the last "
            f"(step {format_value(published.get('last_step'))}, KID {format_value(published.get('last_kid'))}), "
            f"under publish={published.get('rule')}: {published.get('reason')}. Its numbers are the ones shown as "
            "final above; the synthetic images come from it.",
            warning=True,
        ))
    return blocks


def _stabiliser_notes(data: RunData) -> list[Block]:
    """Which DCGAN training settings differ from the paper's, per class (the paper's when none do)."""
    blocks: list[Block] = []
    for class_name in CLASS_NAMES:
        gan = data.gans.get(class_name)
        stabilisers = (gan.summary() if gan else {}).get("stabilisers")
        if not isinstance(stabilisers, dict):
            continue
        if stabilisers.get("paper_settings"):
            blocks.append(Paragraph(f"DCGAN training settings, {class_name}: the paper's (Adam beta_1 0.9, no "
                                    "stabilisers)."))
            continue
        changed = [
            f"{name} {entry.get('value')} (paper {_paper_value(entry)})"
            for name, entry in stabilisers.items()
            if isinstance(entry, dict) and entry.get("value") != entry.get("paper")
        ]
        blocks.append(Paragraph(f"DCGAN training settings, {class_name}, beyond the paper's: {', '.join(changed)}."))
    return blocks


def _inception_notes(data: RunData) -> list[Block]:
    """InceptionV3 KID and FID of each class's published generator (``gan.json`` quality, format 10) and kept set
    (``selection.json`` quality.inception, format 2), or why they were not measured; nothing for older outputs."""
    measured, missing = [], []
    extractors = set()
    for class_name in CLASS_NAMES:
        gan = data.gans.get(class_name)
        gan_summary = gan.summary() if gan else {}
        final = gan_summary.get("inception_final") or {}
        if isinstance(gan_summary.get("inception"), dict) and gan_summary["inception"].get("status") == "measured":
            extractors.add(str(final.get("extractor") or gan_summary["inception"].get("extractor")))
            measured.append(f"{class_name} GAN (the published generator's measurement): KID "
                            f"{format_value(final.get('kid'))}, FID {format_value(final.get('fid'))}")
        synthetic = data.synthetic.get(class_name)
        record = (synthetic.summary() if synthetic else {}).get("inception")
        if not isinstance(record, dict):
            continue
        if record.get("status") != "measured":
            why = "inception=off" if record.get("status") == "off" else (
                "no ImageNet InceptionV3 file in the Keras cache; images built with BAKE_IMAGENET_WEIGHTS=true "
                "have it"
            )
            missing.append(f"{class_name} ({why})")
            continue
        extractors.add(str(record.get("extractor")))
        parts = []
        for key, label in (("kept", "kept"), ("all_generated", "all generated")):
            entry = record.get(key) if isinstance(record.get(key), dict) else {}
            kid = format_value(entry.get("kid"))
            if entry.get("kid_std") is not None:
                kid += f" ± {format_value(entry['kid_std'])}"
            parts.append(f"{label} ({format_value(entry.get('num_images'))}) KID {kid}, FID "
                         f"{format_value(entry.get('fid'))}")
        measured.append(f"{class_name}: {'; '.join(parts)} against {format_value(record.get('num_real'))} real")
    blocks: list[Block] = []
    if measured:
        blocks.append(Paragraph(
            f"InceptionV3 scores of the synthetic sets ({', '.join(sorted(extractors))}; 2048-d average pool at "
            f"299 px): {'. '.join(measured)}. Keras' ImageNet weights, not the TF-slim FID graph, so close to but "
            "not identical with published values; FID grows as counts shrink, so compare equal counts only."
        ))
    if missing:
        blocks.append(Paragraph(f"InceptionV3 KID/FID not measured: {'; '.join(missing)}. The KID column uses the "
                                "offline extractor named there."))
    return blocks


def _paper_value(entry: dict[str, Any]) -> str:
    """A stabiliser's paper value, after its ``paper_note`` where the value is not a constant of the paper."""
    note = entry.get("paper_note")
    return f"{note}, {entry.get('paper')}" if note else str(entry.get("paper"))


def _kid_text(selection: dict[str, Any]) -> str:
    kid = selection.get("kid")
    if kid is None:
        return "–"
    text = format_value(kid)
    if selection.get("kid_std") is not None:
        text += f" ± {format_value(selection['kid_std'])}"
    if selection.get("kid_all_generated") is not None:
        text += f"; all generated {format_value(selection['kid_all_generated'])}"
    if selection.get("extractor"):
        text += f" ({selection['extractor']})"
    return text


def _memorization_text(selection: dict[str, Any]) -> str:
    share = selection.get("memorization_share")
    if not finite(share):
        return "–"
    text = f"{100 * float(share):.1f}%"
    if selection.get("memorization_flagged") is not None:
        text += f" ({format_value(selection['memorization_flagged'])} images)"
    if selection.get("memorization_threshold") is not None:
        text += (f" at or above {selection.get('memorization_metric') or 'similarity'} "
                 f"{selection['memorization_threshold']}")
    return text


def _figures(figures: Mapping[str, bytes]) -> list[Block]:
    blocks: list[Block] = []
    if "gan_losses.png" in figures:
        blocks.append(FigureRef("gan_losses.png", "Discriminator and generator loss per epoch."))
    for class_name in CLASS_NAMES:
        if f"gan_samples_{class_name}.png" in figures:
            blocks.append(FigureRef(f"gan_samples_{class_name}.png", f"DCGAN samples, {class_name}.", sample_grid=True))
        if f"synthetic_samples_{class_name}.png" in figures:
            blocks.append(FigureRef(f"synthetic_samples_{class_name}.png",
                                    f"Kept synthetic images beside real ones, {class_name}.", sample_grid=True))
    return blocks
