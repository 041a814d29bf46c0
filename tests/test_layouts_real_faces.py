"""The FFHQ/StyleGAN benchmark faces arranged in every layout give the same totals.

Skips where ../shared/datasets/ffhq-stylegan-dev is absent (it never enters the repo).
"""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from helpers import LAYOUTS, arrange, bad_files, mini_project, run_stage


@pytest.mark.slow
def test_every_layout_gives_the_same_totals_and_rejections(tmp_path, shared_data):
    files = {cls: sorted((shared_data / cls).glob("*.jpg")) for cls in ("real", "fake")}
    assert len(files["real"]) == len(files["fake"]) == 800
    extra = bad_files(files["real"][1].read_bytes(), files["real"][0].read_bytes())
    results = {}
    for layout in sorted(LAYOUTS):
        src = arrange(files, tmp_path / f"src-{layout}", layout, extra=extra)
        project = mini_project(tmp_path / f"proj-{layout}", ROOT, {"data.source": str(src)})
        for stage in ("fetch", "split", "preprocess"):
            done = run_stage(project, stage)
            assert done.returncode == 0, (layout, stage, done.stderr)
        processed = project / "data" / "processed"
        labels = np.concatenate([np.load(processed / f"{s}.npz")["y"]
                                 for s in ("train", "val", "test")])
        rejected = pd.read_csv(processed / "rejected.csv")
        mode = json.loads((project / "metrics" / "data.json").read_text())["split"]["mode"]
        results[layout] = (int((labels == 0).sum()), int((labels == 1).sum()), len(rejected))
        assert mode == ("seeded" if layout == "flat" else "given"), layout
    print(results)
    # every layout must agree exactly
    assert len(set(results.values())) == 1, results
    real, fake, n_rejected = results["flat"]
    assert n_rejected == 6  # zero, text, truncated, duplicate, conflict pair
    assert (real, fake) == (799, 800)
