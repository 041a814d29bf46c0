"""train@<model>: data/processed → models/<model>.keras, models/<model>.val_scores.npz (its
P(fake) of the validation split), metrics/train/<model>.json."""

import json
import sys

from _common import ROOT, load_params, run_stage

from deepfake_detector.paths import Workspace
from deepfake_detector.training import train


def main():
    name = sys.argv[1]
    params = load_params(ROOT)
    if name not in params["train"]:
        raise ValueError(f"No train.{name} section in params.yaml")
    workspace = Workspace(ROOT)
    pretrained = json.loads(workspace.pretrained(name).read_text())
    record = train(name, params["train"][name], training=params["training"],
                   seed=params["base"]["seed"], data_dir=workspace.processed_dir,
                   model_path=workspace.model(name), history_path=workspace.history(name),
                   root=ROOT, image_size=params["preprocess"]["image_size"],
                   pretrained=pretrained, val_scores_path=workspace.val_scores(name))
    if "run_id" in record:
        print(f"trained {name}: {record['epochs_run']} epochs, MLflow run {record['run_id']}")


if __name__ == "__main__":
    run_stage(main)
