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

SUMMARY_COLUMNS = ["model", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "precision",
                   "recall", "f1", "roc_auc", "roc_auc_ci_low", "roc_auc_ci_high",
                   "average_precision", "eer", "log_loss", "brier", "ece", "ece_uncalibrated",
                   "real_called_fake", "temperature", "threshold"]


def write_rows(path: Path, header: list[str], rows) -> None:
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
    write_rows(out.plot("roc", name), ["fpr", "tpr"], zip(_round(fpr), _round(tpr)))
    precision, recall, _ = skm.precision_recall_curve(y, p)
    write_rows(out.plot("pr", name), ["recall", "precision"],
               zip(_round(recall), _round(precision)))
    frequency, confidence = skc.calibration_curve(y, p, n_bins=bins, strategy="uniform")
    write_rows(out.plot("calibration", name), ["mean_p_fake", "fraction_fake"],
               zip(_round(confidence), _round(frequency)))
    write_rows(out.plot("confusion", name), ["actual", "predicted"],
               zip(CLASS_NAMES[np.asarray(y, int)], label(p, threshold)))


ROBUSTNESS_COLUMNS = ["condition", "accuracy", "recall", "roc_auc", "real_called_fake"]
# The level at which each perturbation leaves an image as it was: a severity curve's start.
CLEAN_LEVEL = {"jpeg": 100, "blur": 0, "rescale": 1}


def write_robustness_data(out, name: str, report: dict) -> None:
    """One row per test condition (clean, then each perturbation at each severity, named
    ``kind_level``) of a model's report."""
    rows = [("clean", report)] + list(report.get("robustness", {}).items())
    write_rows(out.plot("robustness", name), ROBUSTNESS_COLUMNS,
               ([condition] + [None if m.get(k) is None else round(float(m[k]), 6)
                               for k in ROBUSTNESS_COLUMNS[1:]] for condition, m in rows))


def read_reports(out, names: list[str]) -> dict[str, dict]:
    """``metrics/<model>.json`` of each model (``out``: a ``paths.Workspace``), refused with
    the command to run when one is missing."""
    import json

    reports = {}
    for name in names:
        path = out.metrics(name)
        if not path.exists():
            raise FileNotFoundError(f"no {path.relative_to(out.root)}: run "
                                    f"`dvc repro evaluate@{name}` first")
        reports[name] = json.loads(path.read_text())
    return reports


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
    """One row per model: ``SUMMARY_COLUMNS``, then accuracy and reals called fake at each
    severity (``accuracy_jpeg_50``, ``real_called_fake_jpeg_50``, …)."""
    conditions = list(dict.fromkeys(k for r in results.values() for k in r.get("robustness", {})))
    per_condition = [(metric, c) for c in conditions for metric in ("accuracy", "real_called_fake")]
    header = SUMMARY_COLUMNS + [f"{metric}_{c}" for metric, c in per_condition]
    rows = []
    for name, r in results.items():
        row = [name] + [r.get(k) for k in SUMMARY_COLUMNS[1:]]
        row += [r.get("robustness", {}).get(c, {}).get(metric) for metric, c in per_condition]
        rows.append([round(v, 4) if isinstance(v, float) else v for v in row])
    write_rows(path, header, rows)


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

    save(severity_figure(plt, {name: data("robustness", name) for name in results}),
         "robustness")
    return written


def severity_curves(rows: dict[str, np.ndarray], column: str) -> dict[str, tuple[list, list]]:
    """``{kind: (levels, values)}`` of one robustness CSV column, each curve starting at the
    clean value (``CLEAN_LEVEL``)."""
    values = dict(zip(rows["condition"], rows[column]))
    curves = {}
    for condition in rows["condition"]:
        if condition != "clean":
            kind, level = condition.split("_", 1)
            levels, ys = curves.setdefault(kind, ([CLEAN_LEVEL.get(kind, 0)],
                                                  [values.get("clean", np.nan)]))
            levels.append(float(level))
            ys.append(values[condition])
    return curves


def severity_figure(plt, shaken: dict[str, dict]):
    """Accuracy and the share of reals called fake against the severity of each perturbation
    (JPEG quality falling, blur sigma rising, rescale factor falling), one line per model."""
    kinds = sorted({c.split("_")[0] for rows in shaken.values() for c in rows["condition"]
                    if c != "clean"}) or ["jpeg"]
    fig, axes = plt.subplots(2, len(kinds), figsize=(3.6 * len(kinds), 6), squeeze=False)
    labels = {"jpeg": "JPEG quality", "blur": "blur sigma (px)", "rescale": "rescale factor"}
    for row, (column, ylabel) in enumerate((("accuracy", "test accuracy"),
                                            ("real_called_fake", "share of reals called fake"))):
        for ax, kind in zip(axes[row], kinds):
            for name, rows in shaken.items():
                levels, ys = severity_curves(rows, column).get(kind, ([], []))
                ax.plot(levels, ys, "o-", label=name)
            if kind in ("jpeg", "rescale"):
                ax.invert_xaxis()  # severity grows to the right
            ax.set(xlabel=labels.get(kind, kind), ylabel=ylabel, ylim=(0, 1))
            if column == "accuracy":
                ax.axhline(0.5, ls=":", color="grey")
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Robustness: test images re-compressed, blurred, rescaled (left point: clean)")
    fig.tight_layout()
    return fig
