"""Learning curves as PNG figures, drawn by the summary stage beside the other figures: per
trained model, loss and accuracy against the epoch, training beside validation, from the
history its training stage wrote (``metrics/train/<model>.json``)."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import atomic_path
from .figures import pyplot

PANELS = (("loss", "loss (binary cross-entropy)"), ("accuracy", "accuracy"))


def read_history(path: Path) -> list[dict]:
    """The per-epoch records of a training history file; none when there is no file (a model
    that was not trained here) or no epochs (the ensemble is fitted, not trained)."""
    return json.loads(path.read_text()).get("history", []) if path.exists() else []


def learning_curve_figure(plt, name: str, history: list[dict]):
    """Two panels, loss and accuracy, each with the training and validation values per epoch
    (epochs as recorded, from 0, as in DVC's plots of the same file; a value the history
    lacks, e.g. training accuracy under the multi-worker loop, is left out)."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, (metric, ylabel) in zip(axes, PANELS):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for key, label, style in ((metric, "training", "o-"), (f"val_{metric}", "validation",
                                                                "s--")):
            points = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), style, label=label)
        ax.set(xlabel="epoch", ylabel=ylabel, title=f"{name}: {metric}")
        if ax.lines:
            ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"Learning curves of {name}")
    fig.tight_layout()
    return fig


def write_learning_curves(out, names: list[str]) -> dict[str, Path]:
    """``out.figures``/learning/<model>.png for each of ``names`` with a history
    (``out``: a ``paths.Workspace``); returns ``{model: file}``."""
    plt = pyplot()
    written = {}
    for name in names:
        history = read_history(out.history(name))
        if history:
            fig = learning_curve_figure(plt, name, history)
            path = out.figure(f"learning/{name}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
            plt.close(fig)
            written[name] = path
    return written
