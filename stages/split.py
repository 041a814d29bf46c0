"""split: data/raw → data/split/{train,val,test}.csv, rejected.csv, metrics/data.json."""

import json
import sys

import pandas as pd
from _common import ROOT, load_params, run_stage

from deepfake_detector.file_audit import shortcut_warning
from deepfake_detector.paths import Workspace
from deepfake_detector.splitting import (
    REJECTED_COLUMNS,
    class_count_figure,
    fetch_rejections,
    split_dataset,
    write_csv,
)


def main():
    params = load_params(ROOT)
    sp, ws = params["split"], Workspace(ROOT)
    raw = ws.raw
    frames, rejected, summary = split_dataset(
        raw, ROOT, class_names=params["data"]["class_names"],
        fractions=sp["fractions"], seed=params["base"]["seed"],
        keep_existing=sp["keep_existing"], group_regex=sp["group_regex"],
        max_bytes=int(params["preprocess"]["max_file_mb"] * 2**20),
        near_duplicate_bits=sp["near_duplicate_bits"], audit=True)
    ws.split_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        write_csv(frame, ws.manifest(name))
    rejected = fetch_rejections(raw) + rejected  # what fetch left out travels on with the rest
    write_csv(pd.DataFrame(rejected, columns=REJECTED_COLUMNS), ws.split_rejected)
    ws.metrics_dir.mkdir(exist_ok=True)
    ws.data_summary.write_text(json.dumps(summary, indent=2) + "\n")
    class_count_figure(summary, ws.figure("class_counts"))
    print(f"split: {summary['counts']}; skipped {summary['skipped'] or 'nothing'}")
    near = summary.get("near_duplicates")
    if near and near["groups"]:
        print(f"split: {near['images']} images in {near['groups']} near-duplicate sets kept "
              f"within one split each ({near['label_conflict_groups']} sets hold both classes)")
    warning = shortcut_warning(summary["shortcut_audit"], sp["shortcut_max_auc"])
    if warning and sp["shortcut_audit"] == "fail":
        raise ValueError(f"{warning} (split.shortcut_audit: fail; metrics/data.json is written)")
    if warning:
        print(f"split: WARNING: {warning}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
