"""Metrics of a binary detector (1 = fake) at a threshold chosen on validation."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def choose_threshold(y: np.ndarray, p: np.ndarray, rule) -> float:
    """``max_accuracy``, ``eer`` (false positive rate = false negative rate), or a number."""
    if isinstance(rule, (int, float)):
        return float(rule)
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    thresholds = np.clip(thresholds, 0.0, 1.0)
    if rule == "eer":
        return float(thresholds[np.nanargmin(np.abs(fpr - (1 - tpr)))])
    if rule == "max_accuracy":
        pos, neg = y.sum(), len(y) - y.sum()
        accuracy = (tpr * pos + (1 - fpr) * neg) / len(y)
        return float(thresholds[np.argmax(accuracy)])
    raise ValueError(f"evaluate.threshold must be max_accuracy, eer or a number, not {rule!r}")


def equal_error_rate(y: np.ndarray, p: np.ndarray) -> float:
    fpr, tpr, _ = skm.roc_curve(y, p)
    i = np.nanargmin(np.abs(fpr - (1 - tpr)))
    return float((fpr[i] + 1 - tpr[i]) / 2)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(p[in_bin].mean() - y[in_bin].mean())
    return float(ece)


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    pred = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else None,
        "average_precision": float(skm.average_precision_score(y, p)) if both else None,
        "eer": equal_error_rate(y, p) if both else None,
        "log_loss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "threshold": float(threshold),
        "confusion": skm.confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "n": int(len(y)),
    }
