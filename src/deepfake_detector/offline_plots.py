"""``make plots``: the pipeline's DVC plots as one HTML page that needs no network.

``dvc plots show`` writes a page that loads vega, vega-lite and vega-embed from a CDN, so
offline its charts are blank. Here the three are inlined into the page's template
(static/plots_template.html) from the vl-convert-python wheel, and DVC fills in the plots:
``python -m deepfake_detector.offline_plots [-o DIR] [TARGET ...]``."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

BUNDLE_MARK = "/*vega-bundle*/"
DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")  # what DVC replaces


def template() -> str:
    """The page template with vega, vega-lite (the newest 5.x: DVC's plot templates are
    vega-lite v5 specs) and vega-embed inlined, ``vegaEmbed`` a global as DVC's plots expect."""
    import vl_convert

    version = max((v for v in vl_convert.get_vegalite_versions() if v.startswith("5.")),
                  key=lambda v: tuple(map(int, v.split("."))))
    bundle = vl_convert.javascript_bundle("window.vegaEmbed = vegaEmbed;", vl_version=version)
    if "</script" in bundle.lower() or any(p in bundle for p in DVC_PLACEHOLDERS):
        raise ValueError("the vega bundle cannot be inlined in a <script> as it is")
    page = resources.files("deepfake_detector").joinpath("static/plots_template.html")
    return page.read_text(encoding="utf-8").replace(BUNDLE_MARK, bundle)


def render(out: Path | str = "dvc_plots", targets: list[str] = (), cwd: Path | None = None) -> Path:
    """``dvc plots show`` with that template into ``out`` (relative to ``cwd``, a DVC repo);
    returns the page written."""
    out = Path(cwd or ".").resolve() / out
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "template.html"
        page.write_text(template(), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--html-template",
                        str(page), "-o", str(out), *targets], cwd=cwd, check=True)
    return out / "index.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default="dvc_plots", help="folder (default dvc_plots)")
    parser.add_argument("targets", nargs="*", help="plots of dvc.yaml (default: all)")
    args = parser.parse_args(argv)
    render(args.out, args.targets)


if __name__ == "__main__":
    main()
