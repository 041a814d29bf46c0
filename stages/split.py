"""split: data/raw → data/split/{train,val,test}.csv, rejected.csv, metrics/data.json."""

import json

import pandas as pd
from _common import ROOT, load_params, run_stage

from deepfake_detector.splitting import (
    REJECTED_COLUMNS,
    class_count_figure,
    fetch_rejections,
    split_dataset,
    write_csv,
)


def main():
    params = load_params(ROOT)
    sp = params["split"]
    raw = ROOT / "data" / "raw"
    frames, rejected, summary = split_dataset(
        raw, ROOT, class_names=params["data"]["class_names"],
        fractions=sp["fractions"], seed=params["base"]["seed"],
        keep_existing=sp["keep_existing"], group_regex=sp.get("group_regex"),
        max_bytes=int(params["preprocess"]["max_file_mb"] * 2**20))
    out = ROOT / "data" / "split"
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        write_csv(frame, out / f"{name}.csv")
    rejected = fetch_rejections(raw) + rejected  # what fetch left out travels on with the rest
    write_csv(pd.DataFrame(rejected, columns=REJECTED_COLUMNS), out / "rejected.csv")
    (ROOT / "metrics").mkdir(exist_ok=True)
    (ROOT / "metrics" / "data.json").write_text(json.dumps(summary, indent=2) + "\n")
    class_count_figure(summary, ROOT / "reports" / "figures" / "class_counts.png")
    print(f"split: {summary['counts']}; skipped {summary['skipped'] or 'nothing'}")


if __name__ == "__main__":
    run_stage(main)
