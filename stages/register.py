"""register: the chosen model → a new version of the registered model, alias challenger,
models/registered.json (an unchanged model and settings register nothing new)."""

import json

from _common import ROOT, load_params, run_stage

from deepfake_detector.atomic import write_text
from deepfake_detector.paths import Workspace


def main():
    from deepfake_detector.registry import register

    record = register(ROOT, load_params(ROOT))
    # not "created": true only on the run that made the version, it would change dvc.lock
    # when the same commit runs again (the registry keeps one version either way)
    kept = {k: v for k, v in record.items() if k != "created"}
    write_text(Workspace(ROOT).registered, json.dumps(kept, indent=2) + "\n")
    said = "registered as new version" if record["created"] else "unchanged: still version"
    print(f"{record['model']} {said} {record['version']} of {record['name']} "
          f"(alias {record['alias']}); promote it with `deepfake promote`")


if __name__ == "__main__":
    run_stage(main)
