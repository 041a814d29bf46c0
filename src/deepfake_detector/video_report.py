"""What a scan gives people: the clip's JSON (every sampled frame), its timeline PNG and, for
clips whose folders name their class, the clip-level ROC AUC and accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .figures import pyplot


def result_json(result: dict) -> dict:
    """The scan's result without its pixel arrays (the JSON that ``--out`` writes and that
    ``POST /scan`` extends with images)."""
    out = {k: v for k, v in result.items() if k not in ("top", "crops")}
    out["top"] = [{k: v for k, v in item.items() if k not in ("crop", "thumbnail")}
                  for item in result.get("top", [])]
    return out


def timeline_png(result: dict, path: Path) -> None:
    """P(fake) of each sampled frame over time with the clip threshold; frames with no face
    marked along the bottom; below, the most suspicious frames with their times."""
    from .atomic import atomic_path
    from .cli_checks import shown

    plt = pyplot()
    frames = result["frames"]
    top = result.get("top", [])
    fig = plt.figure(figsize=(8, 4.6 if top else 2.8))
    grid = fig.add_gridspec(2 if top else 1, max(1, len(top)),
                            height_ratios=[1.4, 1] if top else [1])
    ax = fig.add_subplot(grid[0, :])
    scored = [(r["t"], r["p_fake"]) for r in frames if r["p_fake"] is not None]
    if scored:
        ts, ps = zip(*scored)
        ax.plot(ts, ps, "-o", ms=3, lw=1, color="#1f77b4", label="P(fake) of the frame")
    missed = [r["t"] for r in frames if r["p_fake"] is None]
    if missed:
        ax.plot(missed, [0.02] * len(missed), "|", color="grey", ms=8, label="no face")
    ax.axhline(result["threshold"], color="#d62728", lw=1, ls="--",
               label=f"clip threshold {result['threshold']:.3f}")
    for item in top:
        ax.annotate(f"{item['t']:.1f}s", (item["t"], item["p_fake"]), fontsize=7,
                    xytext=(0, 5), textcoords="offset points", ha="center")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(0, max([r["t"] for r in frames] + [result.get("duration") or 0, 1e-3]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(fake)")
    verdict = result["verdict"] or "-"
    p = result["p_fake"]
    ax.set_title(f"{shown(Path(result['file']).name)}: {verdict}"  # \r, \n as text
                 + (f" (clip P(fake) {p:.3f})" if p is not None else ""), fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    for i, item in enumerate(top):
        sub = fig.add_subplot(grid[1, i])
        sub.imshow(item["thumbnail"])
        sub.set_title(f"{item['t']:.1f}s  P(fake) {item['p_fake']:.3f}", fontsize=7)
        sub.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def labelled_summary(results: list[dict], class_names: dict) -> dict | None:
    """Clip-level ROC AUC and accuracy (at each clip's label) of the scanned clips whose
    folders name their class (``real/``, ``fake/``: ``splitting.classify``), and how many of
    them lie out of the model's domain; None when fewer than one of each class."""
    from sklearn.metrics import roc_auc_score

    from .splitting import classify

    labelled = [(classify(Path(r["file"]).parts, class_names)[0], r) for r in results
                if r.get("p_fake") is not None]
    labelled = [(y, r) for y, r in labelled if y is not None]
    y = np.array([label for label, _ in labelled])
    if len(set(y.tolist())) < 2:
        return None
    p = np.array([r["p_fake"] for _, r in labelled])
    # each clip against its own threshold: the label it was given
    predicted = np.array([r["label"] == "fake" for _, r in labelled])
    return {"clips": int(len(y)), "fake": int(y.sum()), "roc_auc": float(roc_auc_score(y, p)),
            "accuracy": float(np.mean(predicted == y.astype(bool))),
            # beside the figures: clips the model was not made for (their verdict says so)
            "out_of_domain": sum(r.get("reason") == "out_of_domain" for _, r in labelled)}
