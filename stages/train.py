"""train@<model>: data/processed → models/<model>.keras, metrics/train/<model>.json."""

import json
import sys

from _common import ROOT, load_params, run_stage

from deepfake_detector.training import train


def main():
    name = sys.argv[1]
    params = load_params(ROOT)
    if name not in params["train"]:
        raise ValueError(f"No train.{name} section in params.yaml")
    pretrained = json.loads((ROOT / "models" / "pretrained" / f"{name}.json").read_text())
    record = train(name, params["train"][name], training=params["training"],
                   seed=params["base"]["seed"], data_dir=ROOT / "data" / "processed",
                   model_path=ROOT / "models" / f"{name}.keras",
                   history_path=ROOT / "metrics" / "train" / f"{name}.json", root=ROOT,
                   image_size=params["preprocess"]["image_size"], pretrained=pretrained)
    if "run_id" in record:
        print(f"trained {name}: {record['epochs_run']} epochs, MLflow run {record['run_id']}")


if __name__ == "__main__":
    run_stage(main)
