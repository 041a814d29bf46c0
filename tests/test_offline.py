"""Offline means offline (issue 15): ``make plots`` writes DVC's plots as a page whose charts
are drawn with no network (vega, vega-lite and vega-embed inlined), and the summary stage
draws each trained model's learning curves as a PNG like its other figures. (/docs with its
own Swagger UI files: test_hostile_service.py::test_docs_page_runs_under_its_own_policy.)"""

import json
import re
import subprocess
import sys

from conftest import ARTIFACTS
from PIL import Image

from deepfake_detector import offline_plots
from deepfake_detector.figures import pyplot
from deepfake_detector.learning_curves import (
    learning_curve_figure,
    read_history,
    write_learning_curves,
)
from deepfake_detector.paths import Workspace

HISTORY = [{"epoch": e, "accuracy": 0.6 + 0.1 * e, "loss": 0.7 - 0.1 * e,
            "val_accuracy": 0.55 + 0.1 * e, "val_loss": 0.75 - 0.08 * e} for e in range(3)]


def test_learning_curves_are_drawn_for_each_trained_model(tmp_path):
    out = Workspace(tmp_path)
    out.history("a").parent.mkdir(parents=True)
    out.history("a").write_text(json.dumps({"model": "a", "history": HISTORY}))
    # the multi-worker loop records no training accuracy; the ensemble has no epochs
    out.history("b").write_text(json.dumps({"model": "b", "history": [
        {k: v for k, v in r.items() if k != "accuracy"} for r in HISTORY]}))
    out.history("ensemble").write_text(json.dumps({"model": "ensemble", "history": []}))
    assert read_history(out.history("ensemble")) == read_history(out.history("absent")) == []

    plt = pyplot()
    fig = learning_curve_figure(plt, "b", read_history(out.history("b")))
    assert [len(ax.lines) for ax in fig.axes] == [2, 1]  # loss: both; accuracy: validation
    assert list(fig.axes[0].lines[1].get_xdata()) == [0, 1, 2]
    plt.close(fig)

    curves = write_learning_curves(out, ["a", "b", "ensemble", "absent"])
    assert curves == {name: out.figures / "learning" / f"{name}.png" for name in ("a", "b")}
    for figure in curves.values():
        with Image.open(figure) as img:
            assert img.format == "PNG" and img.width > 2 * img.height > 300


def test_make_plots_page_draws_its_charts_with_no_network(tmp_path, browser):
    """A DVC repo with one CSV plot and a folder of PNGs (a learning curve): the page that
    offline_plots.render writes draws the chart and shows the image, and every request it
    makes is for a file:// URL."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=repo, check=True, capture_output=True)
    (repo / "scores.csv").write_text("epoch,loss\n0,0.9\n1,0.5\n2,0.3\n3,0.25\n")
    plt = pyplot()
    fig = learning_curve_figure(plt, "a", HISTORY)
    (repo / "learning").mkdir()
    fig.savefig(repo / "learning" / "a.png", dpi=40)
    plt.close(fig)
    (repo / "dvc.yaml").write_text("plots:\n  - scores.csv:\n      x: epoch\n      y: loss\n"
                                   "  - learning\n")

    path = offline_plots.render("plots", cwd=repo)
    html = path.read_text()
    assert "vegaEmbed('#scores_csv'" in html and "window.vegaEmbed" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)

    requests, elsewhere = [], []

    def refuse(route):
        elsewhere.append(route.request.url)
        route.abort()

    page = browser.new_page()
    try:
        page.on("request", lambda r: requests.append(r.url))
        page.route(re.compile(r"^(?!file:)"), refuse)
        page.goto(path.as_uri())
        chart = page.locator("#scores_csv canvas.marks, #scores_csv svg.marks").first
        chart.wait_for(state="visible", timeout=20_000)
        box = chart.bounding_box()
        assert box["width"] > 100 and box["height"] > 100, box
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=10_000)
        assert page.evaluate("[...document.images].map(i => i.naturalWidth > 0)") == [True]
        page.screenshot(path=str(ARTIFACTS / "offline_plots.png"), full_page=True)
    finally:
        page.close()
    assert not elsewhere, elsewhere
    assert requests and all(url.startswith("file://") for url in requests), requests
