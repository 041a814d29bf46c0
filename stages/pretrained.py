"""pretrained: each model's weights setting → models/pretrained/<model>.json (tracked)."""

import json

from _common import ROOT, load_params, run_stage

from deepfake_detector.paths import Workspace
from deepfake_detector.pretrained import resolve


def main():
    workspace = Workspace(ROOT)
    for name, cfg in load_params(ROOT)["train"].items():
        record = resolve(name, cfg, ROOT)
        workspace.pretrained(name).parent.mkdir(parents=True, exist_ok=True)
        workspace.pretrained(name).write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}: weights {record['requested']} -> {record['used']}")


if __name__ == "__main__":
    run_stage(main)
