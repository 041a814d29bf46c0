"""What evaluation reports: each evaluate@<model> writes its ``dvc plots`` data (CSV); the
summary stage draws the same as PNG figures from it (DVC's HTML plots load their chart library
from a CDN) and writes the comparison table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn import calibration as skc
from sklearn import metrics as skm

from .atomic import atomic_path
from .figures import pyplot
from .scoring import CLASS_NAMES, label

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


def write_plot_data(out, name: str, y: np.ndarray, p: np.ndarray, threshold: float,
                    bins: int = 10) -> None:
    """ROC, precision-recall, calibration and confusion data of one model's test scores, at
    ``out.plot(kind, name)`` (``out``: a ``paths.Workspace``)."""
    fpr, tpr, _ = skm.roc_curve(y, p)
    _write_csv(out.plot("roc", name), ["fpr", "tpr"], zip(_round(fpr), _round(tpr)))
    precision, recall, _ = skm.precision_recall_curve(y, p)
    _write_csv(out.plot("pr", name), ["recall", "precision"],
               zip(_round(recall), _round(precision)))
    frequency, confidence = skc.calibration_curve(y, p, n_bins=bins, strategy="uniform")
    _write_csv(out.plot("calibration", name), ["mean_p_fake", "fraction_fake"],
               zip(_round(confidence), _round(frequency)))
    _write_csv(out.plot("confusion", name), ["actual", "predicted"],
               zip(CLASS_NAMES[np.asarray(y, int)], label(p, threshold)))


ROBUSTNESS_COLUMNS = ["condition", "accuracy", "recall", "roc_auc"]


def write_robustness_data(out, name: str, report: dict) -> None:
    """One row per test condition (clean, then each perturbation) of a model's report."""
    rows = [("clean", report)] + list(report.get("robustness", {}).items())
    _write_csv(out.plot("robustness", name), ROBUSTNESS_COLUMNS,
               ([condition] + [None if m.get(k) is None else round(float(m[k]), 6)
                               for k in ROBUSTNESS_COLUMNS[1:]] for condition, m in rows))


def read_plot_data(path: Path) -> dict[str, np.ndarray]:
    """A plot-data CSV as one array per column (numbers where the column holds numbers)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    columns = {}
    for i, key in enumerate(rows[0]):
        values = [row[i] for row in rows[1:]]
        try:
            columns[key] = np.array([float(v) if v else np.nan for v in values])
        except ValueError:
            columns[key] = np.array(values)
    return columns


def write_summary(path: Path, results: dict[str, dict]) -> None:
    perturbations = sorted({k for r in results.values() for k in r.get("robustness", {})})
    header = SUMMARY_COLUMNS + [f"accuracy_{k}" for k in perturbations]
    rows = []
    for name, r in results.items():
        row = [name] + [r.get(k) for k in SUMMARY_COLUMNS[1:]]
        row += [r.get("robustness", {}).get(k, {}).get("accuracy") for k in perturbations]
        rows.append([round(v, 4) if isinstance(v, float) else v for v in row])
    _write_csv(path, header, rows)


def write_figures(out, results: dict[str, dict]) -> list[Path]:
    """roc.png, pr.png, calibration.png, confusion.png, robustness.png under ``out.figures``,
    drawn from the plot data that ``write_plot_data`` and ``write_robustness_data`` wrote and
    the reports ``{model: metrics}``; returns the files written."""
    plt = pyplot()

    out.figures.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name):
        path = out.figure(name)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        written.append(path)

    def data(kind, name):
        return read_plot_data(out.plot(kind, name))

    fig, ax = plt.subplots(figsize=(5, 5))
    for name in results:
        roc = data("roc", name)
        ax.plot(roc["fpr"], roc["tpr"], label=f"{name} (AUC {results[name]['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set(xlabel="false positive rate (reals flagged)", ylabel="true positive rate (fakes caught)",
           title="ROC on the test split")
    ax.legend(loc="lower right")
    save(fig, "roc")

    fig, ax = plt.subplots(figsize=(5, 5))
    for name in results:
        pr = data("pr", name)
        ax.plot(pr["recall"], pr["precision"],
                label=f"{name} (AP {results[name]['average_precision']:.3f})")
    ax.set(xlabel="recall (fakes)", ylabel="precision (fakes)", title="Precision-recall on test")
    ax.legend(loc="lower left")
    save(fig, "pr")

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for name in results:
        calibration = data("calibration", name)
        ax.plot(calibration["mean_p_fake"], calibration["fraction_fake"], "o-",
                label=f"{name} (ECE {results[name]['ece']:.3f})")
    ax.set(xlabel="mean predicted P(fake)", ylabel="fraction of fakes",
           title="Calibration on test (after temperature scaling)")
    ax.legend(loc="upper left")
    save(fig, "calibration")

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.2), squeeze=False)
    for ax, name in zip(axes[0], results):
        cm = np.array(results[name]["confusion"])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v > cm.max() / 2 else "black")
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real", "fake"],
               yticklabels=["real", "fake"], xlabel="predicted", ylabel="actual", title=name)
    save(fig, "confusion")

    shaken = {name: data("robustness", name) for name in results}
    conditions = list(next(iter(shaken.values()))["condition"]) if shaken else ["clean"]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    width = 0.8 / max(1, len(results))
    for i, (name, rows) in enumerate(shaken.items()):
        accuracy = dict(zip(rows["condition"], rows["accuracy"]))
        values = [accuracy.get(c, np.nan) for c in conditions]
        ax.bar(np.arange(len(conditions)) + i * width, values, width, label=name)
    ax.set(xticks=np.arange(len(conditions)) + width * (len(results) - 1) / 2,
           xticklabels=conditions, ylabel="test accuracy", ylim=(0, 1),
           title="Robustness: test images re-compressed, blurred, rescaled")
    ax.axhline(0.5, ls=":", color="grey")
    ax.legend(loc="lower right", fontsize=8)
    save(fig, "robustness")
    return written
