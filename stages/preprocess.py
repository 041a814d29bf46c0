"""preprocess: split manifests → data/processed/{train,val,test}.npz + rejected.csv."""

import pandas as pd
from _common import ROOT, load_params, run_stage

from deepfake_detector.model_settings import face_crop_settings
from deepfake_detector.paths import Workspace
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
    ws = Workspace(ROOT)
    masks = load_masks(ws.raw)
    rejected = read_rejected(ws.split_rejected)
    total = len(rejected)
    for split in SPLITS:
        manifest = read_manifest(ws.manifest(split))
        total += len(manifest)
        rejected += preprocess_split(manifest, ws.processed(split), root=ROOT, raw_dir=ws.raw,
                                     size=pp["image_size"], max_pixels=pp["max_pixels"],
                                     masks=masks, crop=pp["centre_crop"],
                                     max_bytes=int(pp["max_file_mb"] * 2**20),
                                     face_crop=face_crop_settings(pp))
    write_csv(pd.DataFrame(rejected, columns=REJECTED_COLUMNS), ws.processed_rejected)
    share = len(rejected) / max(total, 1)
    print(f"preprocess: {total - len(rejected)} images kept, {len(rejected)} left out "
          f"(see data/processed/rejected.csv)")
    if share > pp["max_rejected_share"]:
        raise ValueError(f"{share:.1%} of the files were left out, more than "
                         f"preprocess.max_rejected_share={pp['max_rejected_share']}; "
                         "see data/processed/rejected.csv for each file and reason.")


if __name__ == "__main__":
    run_stage(main)
