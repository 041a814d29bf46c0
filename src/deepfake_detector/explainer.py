"""The explainer a user meets: one image explained by the CLI (``deepfake explain``) and the
service (``/explain``): its calibrated P(fake), LIME with the study's two views, and Grad-CAM.
The explain stage's report (figures, index page) is ``explain_report``."""

from __future__ import annotations

import numpy as np


def explain_image(detector, image: np.ndarray, cfg: dict, seed: int, cam) -> dict:
    """One prepared image explained for a user (CLI and service): its calibrated P(fake),
    LIME (``cfg`` is the ``explain`` params) with both of the study's views, and the Grad-CAM
    map of ``cam`` (an ``explanation.gradcam_function``)."""
    from . import explanation

    segments = explanation.slic_segments(image, **cfg["segments"])
    lime = explanation.lime_explain(image, detector.uncalibrated, segments,
                                    int(cfg["num_samples"]), seed)
    positive, both = lime_panels(image, segments, lime.weights)
    return {"p_fake": float(detector.probabilities(image[None])[0]), "lime": lime,
            "positive": positive, "both": both, "gradcam": cam(image[None])[0][0]}


def lime_panels(image: np.ndarray, segments: np.ndarray, weights: np.ndarray,
                top: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The study's two LIME views: the ``top`` segments that push toward "fake" (the rest
    hidden), and every segment tinted green (toward fake) or red (toward real)."""
    from skimage.segmentation import mark_boundaries

    order = np.argsort(-weights, kind="stable")
    positive = [s for s in order[:top] if weights[s] > 0]
    keep = np.isin(segments, positive)
    only = np.where(keep[..., None], image, 0).astype(np.uint8)
    positive_view = mark_boundaries(only, keep.astype(int), color=(1, 1, 0))
    scale = np.abs(weights).max() or 1.0
    strength = (weights / scale)[segments][..., None]
    tint = np.where(strength > 0, [0.0, 1.0, 0.0], [1.0, 0.0, 0.0])
    alpha = 0.55 * np.abs(strength)
    both = (image / 255.0) * (1 - alpha) + tint * alpha
    return positive_view, mark_boundaries(both, segments, color=(1, 1, 1), mode="thin")
