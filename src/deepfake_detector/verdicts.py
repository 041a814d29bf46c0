"""Three verdicts instead of two: ``fake``, ``real`` or ``inconclusive``. The binary ``label``
stays the threshold decision; the verdict is inconclusive when P(fake) falls in a band around
the threshold (fitted on validation: ``fit_band``) or the image lies outside the model's
training data (the domain flag). One function decides for every surface (``verdict``)."""

from __future__ import annotations

import numpy as np

from .scoring import label

FAKE, REAL, INCONCLUSIVE = "fake", "real", "inconclusive"
IN_BAND, OUT_OF_DOMAIN = "in_band", "out_of_domain"  # why a verdict is inconclusive
# Below this ROC AUC a test is conventionally called a failure (0.5-0.6): statistically
# better than chance on many images, still no use to a person deciding one image.
NEAR_CHANCE_AUC = 0.6
ABOVE_ONE = float(np.nextafter(1.0, 2.0))  # a band edge past every probability (JSON has no inf)
REASONS = {IN_BAND: "P(fake) too close to the threshold",
           OUT_OF_DOMAIN: "image unlike the model's training data"}


def fit_band(y: np.ndarray, p: np.ndarray, threshold: float,
             target_accuracy: float | None) -> list[float]:
    """``[low, high]``: P(fake) in ``[low, high)`` is inconclusive. Of every band around
    ``threshold`` whose edges lie between validation scores, the one that leaves the most
    validation images decided while those decided reach ``target_accuracy`` (ties: the
    narrower band). ``target_accuracy`` None: no band (``[threshold, threshold]``). When no
    band reaches the target, every image is inconclusive (``[0, ABOVE_ONE]``)."""
    if target_accuracy is None:
        return [float(threshold), float(threshold)]
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=np.float64)
    if len(p) == 0 or not np.isfinite(p).all():
        raise ValueError("the inconclusive band needs validation scores, all finite")
    below, above = p < threshold, p >= threshold
    # nearest the threshold first: excluding the first i below and first j above
    order_below = np.argsort(-p[below], kind="stable")
    order_above = np.argsort(p[above], kind="stable")
    s_below, s_above = p[below][order_below], p[above][order_above]
    right_below = (y[below][order_below] == 0).astype(int)
    right_above = (y[above][order_above] == 1).astype(int)
    # correct decisions left after excluding the first i (j): suffix sums
    left_below = np.concatenate([[0], np.cumsum(right_below[::-1])])[::-1]
    left_above = np.concatenate([[0], np.cumsum(right_above[::-1])])[::-1]
    n_below, n_above = len(s_below), len(s_above)
    j = np.arange(n_above + 1)
    # an edge can only fall between two different scores: tied images go in or out together
    cut_below, cut_above = _cuts(s_below), _cuts(s_above)
    best = None  # (excluded, width, i, j)
    for i in np.flatnonzero(cut_below):
        decided = n_below - i + n_above - j
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = (left_below[i] + left_above) / decided
        ok = np.flatnonzero(cut_above & (decided > 0) & (accuracy >= target_accuracy - 1e-12))
        if not len(ok):
            continue
        k = ok[0]  # fewest excluded above for this i
        low = _edge(s_below, i, threshold, 0.0)
        high = _edge(s_above, k, threshold, ABOVE_ONE)
        candidate = (i + k, high - low, low, high)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    if best is None:
        return [0.0, ABOVE_ONE]
    return [float(best[2]), float(best[3])]


def _cuts(scores: np.ndarray) -> np.ndarray:
    """Where, in ``scores`` sorted from the threshold outwards, a band edge may fall: before
    the first, after the last, and between neighbours that differ."""
    inner = scores[1:] != scores[:-1] if len(scores) > 1 else np.zeros(0, bool)
    return np.concatenate([[True], inner, [True]]) if len(scores) else np.array([True])


def _edge(scores: np.ndarray, excluded: int, threshold: float, beyond: float) -> float:
    """The band's edge on one side after excluding the ``excluded`` scores nearest the
    threshold: halfway between the last excluded and the first kept."""
    if excluded == 0:
        return float(threshold)
    if excluded == len(scores):
        return beyond
    return float((scores[excluded - 1] + scores[excluded]) / 2)


def verdict(p: float | None, threshold: float, band, domain: str | None = None
            ) -> tuple[str | None, str]:
    """``(verdict, reason)`` of one calibrated P(fake): ``inconclusive`` with ``out_of_domain``
    when the domain flag says ``out``, with ``in_band`` when ``low <= p < high``; else the
    threshold's label and no reason. ``p`` None (unscored): ``(None, "")``."""
    if p is None or not np.isfinite(p):
        return None, ""
    if domain == "out":
        return INCONCLUSIVE, OUT_OF_DOMAIN
    low, high = band or (threshold, threshold)
    if low <= p < high:
        return INCONCLUSIVE, IN_BAND
    return label(p, threshold), ""


def verdict_text(p: float | None, threshold: float, verdict_: str | None, reason: str = "") -> str:
    """What a person reads: "P(fake) 0.39, threshold 0.68: real" (never "real 61%": the
    number is P(fake), the threshold says how the model decides)."""
    if p is None or verdict_ is None:
        return "-"
    digits = 2
    while digits < 6 and f"{p:.{digits}f}" == f"{threshold:.{digits}f}" and p != threshold:
        digits += 1  # never "P(fake) 0.68, threshold 0.68: real"
    text = f"P(fake) {p:.{digits}f}, threshold {threshold:.{digits}f}: {verdict_}"
    return text + (f" ({REASONS[reason]})" if reason else "")


def decided_metrics(y: np.ndarray, p: np.ndarray, threshold: float, band,
                    out_of_domain: np.ndarray | None = None) -> dict:
    """``coverage`` (the share of images given a verdict other than inconclusive) and
    ``accuracy_decided`` (accuracy over those; None when none is decided)."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=np.float64)
    low, high = band
    decided = ~((p >= low) & (p < high))
    if out_of_domain is not None:
        decided &= ~np.asarray(out_of_domain, dtype=bool)
    right = (p >= threshold).astype(int) == y
    return {"coverage": float(decided.mean()) if len(y) else None,
            "accuracy_decided": float(right[decided].mean()) if decided.any() else None,
            "band_low": float(low), "band_high": float(high)}


def _number(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def report_lines(m: dict) -> list[str]:
    """An evaluation as a person should read it: balanced accuracy and both recalls (a
    detector that calls everything fake has fake recall 1), ROC AUC with its 95% interval, the
    three-way verdicts' coverage, and a plain warning when the interval holds 0.5."""
    reals, fakes = (m.get("confusion") or [[1, 1], [1, 1]])
    has_real, has_fake = sum(reals) > 0, sum(fakes) > 0
    auc = _number(m.get("roc_auc"))
    low, high = m.get("roc_auc_ci_low"), m.get("roc_auc_ci_high")
    if low is not None and high is not None:
        auc += f" (95% CI {low:.3f}-{high:.3f})"
    lines = [f"n={m['n']}  balanced accuracy {_number(m.get('balanced_accuracy'))}  "
             "real recall " + (_number(m.get("recall_real")) if has_real else
                               "n/a (no real images)") +
             "  fake recall " + (_number(m.get("recall")) if has_fake else
                                 "n/a (no fake images)") + f"  ROC AUC {auc}"]
    if m.get("coverage") is not None:
        lines.append(f"verdicts: {m['coverage']:.1%} decided (the rest inconclusive), "
                     f"accuracy of those {_number(m.get('accuracy_decided'))}")
    if m.get("out_of_domain"):
        lines.append(f"{m['out_of_domain']:.1%} of the images lie outside the model's "
                     "training data")
    if m.get("roc_auc") is None:
        lines.append("only one class in this data: ROC AUC and the check against chance need "
                     "both real and fake images")
    elif low is None or high is None:
        lines.append("no interval (evaluate.bootstrap.resamples is 0): this ROC AUC cannot be "
                     "told apart from chance")
    elif low <= 0.5 <= high:
        lines.append("WARNING: indistinguishable from chance on this data (the ROC AUC "
                     "interval contains 0.5): do not rely on this model's verdicts here")
    elif high < 0.5:
        lines.append("WARNING: worse than chance on this data (the ROC AUC interval lies "
                     "below 0.5): the model ranks these images the wrong way round")
    elif high < NEAR_CHANCE_AUC:
        lines.append(f"WARNING: near chance on this data: even the top of the ROC AUC "
                     f"interval ({high:.3f}) is below {NEAR_CHANCE_AUC}, the usual floor of a "
                     "useful test; its verdicts here are little better than a coin toss")
    b_low, b_high = m.get("balanced_accuracy_ci_low"), m.get("balanced_accuracy_ci_high")
    if b_low is not None and b_high is not None and b_low <= 0.5 <= b_high:
        # a model can rank a little better than chance and still decide no better than a coin
        lines.append("WARNING: its real/fake calls are indistinguishable from chance on this "
                     f"data (balanced accuracy {_number(m.get('balanced_accuracy'))}, 95% CI "
                     f"{b_low:.3f}-{b_high:.3f}, contains 0.5)")
    return lines
