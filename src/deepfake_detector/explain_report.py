"""The explain stage's pictures and index page: what an analyst opens."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_text
from .figures import pyplot


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", metadata={"Software": None})
    pyplot().close(fig)
    return path


def example_figure(path: Path, image: np.ndarray, title: str, panels: list[tuple[str, object]],
                   mask: np.ndarray | None) -> Path:
    """One row: the image, then each (caption, RGB image or heat map) panel, then the mask."""
    plt = pyplot()
    items = [("input", image)] + panels + ([("true manipulated region", mask)]
                                           if mask is not None else [])
    fig, axes = plt.subplots(1, len(items), figsize=(1.9 * len(items), 2.3))
    for ax, (caption, content) in zip(np.atleast_1d(axes), items):
        content = np.asarray(content)
        if content.ndim == 2:  # a heat map, over a faded copy of the image
            ax.imshow(image, alpha=0.45)
            ax.imshow(content, cmap="jet", alpha=0.55, vmin=0,
                      vmax=max(float(content.max()), 1e-12))
        else:
            ax.imshow(content)
        ax.set_title(caption, fontsize=7)
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    return _save(fig, path)


def activation_grid(path: Path, maps: np.ndarray, title: str) -> Path:
    plt = pyplot()
    cols = 8
    rows = int(np.ceil(len(maps) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.0, rows * 1.0 + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(maps):
            ax.imshow(maps[i], cmap="viridis")
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    return _save(fig, path)


def mean_maps_figure(path: Path, panels: list[tuple[str, np.ndarray]],
                     band: tuple[float, float]) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (caption, heat) in zip(np.atleast_1d(axes), panels):
        ax.imshow(heat, cmap="jet")
        for edge in band:
            ax.axhline(edge * heat.shape[0] - 0.5, color="white", ls="--", lw=0.8)
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    fig.suptitle("Mean maps over test images (dashed: the eye band)", fontsize=9)
    return _save(fig, path)


def index_page(path: Path, model: str, rows: list[dict], scores: dict, aggregate: dict,
               files: dict[str, str]) -> Path:
    """A self-contained page (no resource from the internet): every example with its
    prediction and truth, the aggregate map and the scores against the true masks."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Explanations: {esc(model)}</title><style>body{{font-family:sans-serif;"
        "margin:2em;max-width:1400px}img{max-width:100%}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}.wrong{color:#b00}"
        ".right{color:#070}</style></head><body>",
        f"<h1>Why the {esc(model)} model says real or fake</h1>",
        "<p>LIME (SLIC segments; green pushes toward <em>fake</em>, red toward <em>real</em>), "
        "Grad-CAM of each CNN, occlusion, and the true manipulated region where the data has "
        "one. Probabilities are calibrated; the threshold was chosen on validation.</p>",
    ]
    if scores:
        parts.append("<h2>Do the maps point at the manipulation?</h2><table><tr><th>method"
                     "</th><th>pointing game</th><th>IoU</th><th>fakes</th></tr>")
        for method, s in scores.items():
            if isinstance(s, dict) and "iou" in s:
                parts.append(f"<tr><td>{esc(method)}</td><td>{s['pointing_game']:.3f}</td>"
                             f"<td>{s['iou']:.3f}</td><td>{s['n']}</td></tr>")
        parts.append("</table>")
    if "mean_maps" in files:
        parts.append(f"<h2>Where the evidence sits on average</h2>"
                     f"<p>{esc(aggregate.get('summary', ''))}</p>"
                     f"<img src='{esc(files['mean_maps'])}' alt='mean maps'>")
    parts.append("<h2>Examples</h2>")
    for row in rows:
        verdict = "right" if row["correct"] else "wrong"
        parts.append(
            f"<h3>{esc(row['file'])}</h3><p>truth <b>{row['truth']}</b>, predicted "
            f"<b>{row['predicted']}</b> (P(fake) {row['p_fake']:.3f}, threshold "
            f"{row['threshold']:.3f}) <span class='{verdict}'>{verdict}</span></p>"
            # no LIME time here: the page is a DVC output (times: reports/timings.json)
            f"<img src='{esc(row['figure'])}' alt='maps'>"
            f"<details><summary>first-layer activations</summary>"
            f"<img src='{esc(row['activations'])}' alt='activations'></details>")
    parts.append("</body></html>")
    write_text(path, "\n".join(parts) + "\n")
    return path
