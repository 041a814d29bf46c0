"""What the evaluate stage draws: ``dvc plots`` data (CSV), the same figures as PNG (DVC's HTML
plots load their chart library from a CDN), and the comparison table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn import calibration as skc
from sklearn import metrics as skm

from .atomic import atomic_path
from .figures import pyplot
from .inference import CLASS_NAMES, label

SUMMARY_COLUMNS = ["model", "accuracy", "precision", "recall", "f1", "roc_auc",
                   "average_precision", "eer", "log_loss", "brier", "ece", "ece_uncalibrated",
                   "temperature", "threshold"]


def _write_csv(path: Path, header: list[str], rows) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _round(values) -> list[float]:
    return [round(float(v), 6) for v in values]


def write_plot_data(plots_dir: Path, name: str, y: np.ndarray, p: np.ndarray,
                    threshold: float, bins: int = 10) -> None:
    """ROC, precision-recall, calibration and confusion data of one model's test scores."""
    fpr, tpr, _ = skm.roc_curve(y, p)
    _write_csv(plots_dir / "roc" / f"{name}.csv", ["fpr", "tpr"], zip(_round(fpr), _round(tpr)))
    precision, recall, _ = skm.precision_recall_curve(y, p)
    _write_csv(plots_dir / "pr" / f"{name}.csv", ["recall", "precision"],
               zip(_round(recall), _round(precision)))
    frequency, confidence = skc.calibration_curve(y, p, n_bins=bins, strategy="uniform")
    _write_csv(plots_dir / "calibration" / f"{name}.csv", ["mean_p_fake", "fraction_fake"],
               zip(_round(confidence), _round(frequency)))
    _write_csv(plots_dir / "confusion" / f"{name}.csv", ["actual", "predicted"],
               zip(CLASS_NAMES[np.asarray(y, int)], label(p, threshold)))


def write_summary(path: Path, results: dict[str, dict]) -> None:
    perturbations = sorted({k for r in results.values() for k in r.get("robustness", {})})
    header = SUMMARY_COLUMNS + [f"accuracy_{k}" for k in perturbations]
    rows = []
    for name, r in results.items():
        row = [name] + [r.get(k) for k in SUMMARY_COLUMNS[1:]]
        row += [r.get("robustness", {}).get(k, {}).get("accuracy") for k in perturbations]
        rows.append([round(v, 4) if isinstance(v, float) else v for v in row])
    _write_csv(path, header, rows)


def write_figures(fig_dir: Path, scores: dict[str, tuple], results: dict[str, dict]) -> list[Path]:
    """roc.png, pr.png, calibration.png, confusion.png, robustness.png from the test scores
    ``{model: (y, calibrated p)}``; returns the files written."""
    plt = pyplot()

    fig_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name):
        path = fig_dir / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (y, p) in scores.items():
        fpr, tpr, _ = skm.roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {results[name]['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set(xlabel="false positive rate (reals flagged)", ylabel="true positive rate (fakes caught)",
           title="ROC on the test split")
    ax.legend(loc="lower right")
    save(fig, "roc.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (y, p) in scores.items():
        precision, recall, _ = skm.precision_recall_curve(y, p)
        ax.plot(recall, precision, label=f"{name} (AP {results[name]['average_precision']:.3f})")
    ax.set(xlabel="recall (fakes)", ylabel="precision (fakes)", title="Precision-recall on test")
    ax.legend(loc="lower left")
    save(fig, "pr.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for name, (y, p) in scores.items():
        frequency, confidence = skc.calibration_curve(y, p, n_bins=10)
        ax.plot(confidence, frequency, "o-", label=f"{name} (ECE {results[name]['ece']:.3f})")
    ax.set(xlabel="mean predicted P(fake)", ylabel="fraction of fakes",
           title="Calibration on test (after temperature scaling)")
    ax.legend(loc="upper left")
    save(fig, "calibration.png")

    fig, axes = plt.subplots(1, len(scores), figsize=(3.2 * len(scores), 3.2), squeeze=False)
    for ax, name in zip(axes[0], scores):
        cm = np.array(results[name]["confusion"])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v > cm.max() / 2 else "black")
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real", "fake"],
               yticklabels=["real", "fake"], xlabel="predicted", ylabel="actual", title=name)
    save(fig, "confusion.png")

    perturbations = sorted({k for r in results.values() for k in r.get("robustness", {})})
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    width = 0.8 / max(1, len(scores))
    conditions = ["clean"] + perturbations
    for i, name in enumerate(scores):
        values = [results[name]["accuracy"]] + [
            results[name]["robustness"][k]["accuracy"] for k in perturbations]
        ax.bar(np.arange(len(conditions)) + i * width, values, width, label=name)
    ax.set(xticks=np.arange(len(conditions)) + width * (len(scores) - 1) / 2,
           xticklabels=conditions, ylabel="test accuracy", ylim=(0, 1),
           title="Robustness: test images re-compressed, blurred, rescaled")
    ax.axhline(0.5, ls=":", color="grey")
    ax.legend(loc="lower right", fontsize=8)
    save(fig, "robustness.png")
    return written
