"""register: the chosen model → a new version of the registered model, alias challenger,
models/registered.json (an unchanged model and settings register nothing new)."""

import json

from _common import ROOT, load_params, run_stage

from deepfake_detector.atomic import write_text


def main():
    from deepfake_detector.registry import register

    record = register(ROOT, load_params(ROOT))
    write_text(ROOT / "models" / "registered.json", json.dumps(record, indent=2) + "\n")
    said = "registered as new version" if record["created"] else "unchanged: still version"
    print(f"{record['model']} {said} {record['version']} of {record['name']} "
          f"(alias {record['alias']}); promote it with `deepfake promote`")


if __name__ == "__main__":
    run_stage(main)
