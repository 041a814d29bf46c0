"""Generalisation measured, not assumed: labelled folders from outside the training data scored
by each model exactly as it is served (``Detector.score``), beside its own test split
(DeepfakeBench's in-domain vs cross-domain protocol). ``deepfake evaluate`` and the
``external`` stage both score folders through ``score_folder``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TABLE_COLUMNS = ["model", "set", "domain", "n", "accuracy", "accuracy_ci_low",
                 "accuracy_ci_high", "roc_auc", "roc_auc_ci_low", "roc_auc_ci_high",
                 "real_called_fake", "out_of_domain"]


def labelled_files(folder: Path, class_names: dict, max_bytes: int | None):
    """``(files, labels, rejected)`` of a labelled folder (any layout ``split`` reads);
    refused unless both classes have images."""
    from .splitting import scan

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    manifest, rejected = scan(folder, folder, class_names, None, max_bytes=max_bytes)
    if manifest.empty or manifest["label"].nunique() < 2:
        raise ValueError(f"{folder} needs images under both a real and a fake class folder "
                         f"(found {len(manifest)} labelled images)")
    return [str(folder / p) for p in manifest["path"]], manifest["label"].to_numpy(), rejected


def score_folder(detector, files: list[str], labels: np.ndarray, face_crop: bool | None = None,
                 bootstrap: dict | None = None, progress=None) -> dict:
    """The metrics of ``detector`` on labelled files, scored as served: every metric of the
    contract, the reals called fake, bootstrap intervals (``evaluate.bootstrap``), the
    three-way verdicts' coverage and accuracy, the share out of domain, unreadable files and
    (face crop on) faces found. ``progress``: as ``Detector.score`` takes it."""
    from .evaluation import binary_metrics, bootstrap_intervals, harm_metrics
    from .verdicts import decided_metrics

    rows = detector.score(files, face_crop=face_crop, progress=progress)
    ok = [i for i, r in enumerate(rows) if not r["error"]]
    y = labels[ok]
    p = np.array([rows[i]["p_fake"] for i in ok], dtype=np.float64)
    report = binary_metrics(y, p, detector.threshold)
    report.update(harm_metrics(y, p, detector.threshold))
    report.update(bootstrap_intervals(y, p, detector.threshold, bootstrap or {}))
    report["unreadable"] = len(rows) - len(ok)
    report.update(decided_metrics(y, p, detector.threshold, detector.band,
                                  np.array([rows[i]["domain"] == "out" for i in ok], dtype=bool)))
    domains = [rows[i]["domain"] for i in ok if rows[i]["domain"]]
    report["out_of_domain"] = domains.count("out") / len(domains) if domains else None
    if face_crop or (face_crop is None and detector.settings.get("face_crop", {}).get("enabled")):
        report["faces_found"] = sum(bool(rows[i]["face_found"]) for i in ok)
    return report


def table_rows(in_domain: dict[str, dict], external: dict[str, dict]) -> list[list]:
    """One row per model and set: its own test split (``in``) first, then each external
    set (``cross``); ``external`` is ``{set: {"models": {model: metrics}}}``."""
    rows = []
    for model, metrics in in_domain.items():
        sets = [("test", "in", metrics)] + [
            (name, "cross", report["models"][model]) for name, report in external.items()
            if model in report["models"]]
        for name, domain, m in sets:
            rows.append([model, name, domain, int(m["n"])] + [
                None if m.get(k) is None else round(float(m[k]), 4) for k in TABLE_COLUMNS[4:]])
    return rows


def table_figure(path: Path, rows: list[list]) -> None:
    """ROC AUC of every model on its test split and on each external set, with the 95%
    bootstrap interval where there is one."""
    from .atomic import atomic_path
    from .figures import pyplot

    plt = pyplot()
    models = list(dict.fromkeys(r[0] for r in rows))
    sets = list(dict.fromkeys(r[1] for r in rows))
    column = {name: i for i, name in enumerate(TABLE_COLUMNS)}
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(models) * len(sets) / 2 + 3), 3.8))
    width = 0.8 / max(1, len(sets))
    for j, name in enumerate(sets):
        mine = {r[0]: r for r in rows if r[1] == name}
        auc = [mine[m][column["roc_auc"]] if m in mine else np.nan for m in models]
        low = [mine[m][column["roc_auc_ci_low"]] if m in mine else None for m in models]
        high = [mine[m][column["roc_auc_ci_high"]] if m in mine else None for m in models]
        auc = np.array([np.nan if a is None else a for a in auc], dtype=float)
        errors = np.array([[0 if lo is None else a - lo for a, lo in zip(auc, low)],
                           [0 if hi is None else hi - a for a, hi in zip(auc, high)]])
        ax.bar(np.arange(len(models)) + j * width, auc, width, yerr=np.nan_to_num(errors),
               capsize=2, label=f"{name} ({'own test split' if name == 'test' else 'external'})")
    ax.set(xticks=np.arange(len(models)) + width * (len(sets) - 1) / 2, xticklabels=models,
           ylabel="ROC AUC (95% interval)", ylim=(0, 1),
           title="In-domain (test split) vs cross-domain (external sets)")
    ax.axhline(0.5, ls=":", color="grey")
    ax.legend(loc="lower right", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
