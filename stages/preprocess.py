"""preprocess: split manifests → data/processed/{train,val,test}.npz + rejected.csv."""

import pandas as pd
from _common import ROOT, load_params, run_stage

from deepfake_detector.preprocess import load_masks, preprocess_split
from deepfake_detector.splitting import (
    REJECTED_COLUMNS,
    SPLITS,
    read_manifest,
    read_rejected,
    write_csv,
)


def main():
    pp = load_params(ROOT)["preprocess"]
    split_dir, out = ROOT / "data" / "split", ROOT / "data" / "processed"
    raw = ROOT / "data" / "raw"
    masks = load_masks(raw)
    rejected = read_rejected(split_dir / "rejected.csv")
    total = len(rejected)
    for split in SPLITS:
        manifest = read_manifest(split_dir / f"{split}.csv")
        total += len(manifest)
        rejected += preprocess_split(manifest, out / f"{split}.npz", root=ROOT, raw_dir=raw,
                                     size=pp["image_size"], max_pixels=pp["max_pixels"],
                                     masks=masks, crop=pp.get("centre_crop", 1.0),
                                     max_bytes=int(pp["max_file_mb"] * 2**20))
    write_csv(pd.DataFrame(rejected, columns=REJECTED_COLUMNS), out / "rejected.csv")
    share = len(rejected) / max(total, 1)
    print(f"preprocess: {total - len(rejected)} images kept, {len(rejected)} left out "
          f"(see data/processed/rejected.csv)")
    if share > pp["max_rejected_share"]:
        raise ValueError(f"{share:.1%} of the files were left out, more than "
                         f"preprocess.max_rejected_share={pp['max_rejected_share']}; "
                         "see data/processed/rejected.csv for each file and reason.")


if __name__ == "__main__":
    run_stage(main)
