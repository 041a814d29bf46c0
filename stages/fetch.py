"""fetch: data.source → data/raw (+ data/raw/source.json)."""

import os
from pathlib import Path

from _common import ROOT, load_params, run_stage

from deepfake_detector.config import main_checkout
from deepfake_detector.download import DownloadLimits
from deepfake_detector.paths import Workspace
from deepfake_detector.sources import ExtractLimits, fetch
from deepfake_detector.synthetic import SyntheticConfig
from deepfake_detector.synthetic_video import ClipsConfig


def main():
    params = load_params(ROOT)
    data = params["data"]
    # The download cache is not a stage output (DVC would delete a resumable .part) and
    # lives in the user's checkout, so queued experiments share it.
    cache = Path(os.environ.get("DEEPFAKE_CACHE_DIR") or main_checkout(ROOT) / data["cache_dir"])
    record = fetch(str(data["source"]), Workspace(ROOT).raw, root=ROOT, cache_dir=cache,
                   sha256=data["sha256"], synthetic_cfg=SyntheticConfig.from_params(params),
                   clips_cfg=ClipsConfig.from_params(params),
                   limits=ExtractLimits(**data["extract"]), gdrive_base=data["gdrive_base_url"],
                   download_limits=DownloadLimits(**data["download"]))
    clips = f" and {record['videos']['clips']} clips" if "videos" in record else ""
    print(f"fetched {record['n_images']} images{clips} from {record['source']}")


if __name__ == "__main__":
    run_stage(main)
