"""pretrained: each model's weights setting → models/pretrained/<model>.json (tracked)."""

import json

from _common import ROOT, load_params, run_stage

from deepfake_detector.pretrained import resolve


def main():
    out = ROOT / "models" / "pretrained"
    out.mkdir(parents=True, exist_ok=True)
    for name, cfg in load_params(ROOT)["train"].items():
        record = resolve(name, cfg, ROOT)
        (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}: weights {record['requested']} -> {record['used']}")


if __name__ == "__main__":
    run_stage(main)
