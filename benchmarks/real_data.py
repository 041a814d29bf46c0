"""The whole pipeline (all models) on real faces: FFHQ photographs vs StyleGAN faces.

    python benchmarks/real_data.py [--profile real-small] [--external NAME=FOLDER ...]
                                   [--keep DIR]

Copies the repository into a temporary workspace with the profile's params (the defaults
with ``profiles/<profile>.yaml`` over them), points ``data.source`` at
``../shared/datasets/ffhq-stylegan-dev``, runs ``dvc repro`` there, and prints test accuracy
and ROC AUC per model and the wall time. ``--profile study`` measures the study's settings.
``--external`` adds labelled folders to ``evaluate.external`` and prints the in-domain vs
cross-domain table (``metrics/external.csv``).
Skips (exit 0, with a message) where the dataset is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from deepfake_detector.config import copy_checkout, read_yaml_file  # noqa: E402
from deepfake_detector.params_file import profile_params  # noqa: E402
from deepfake_detector.paths import Workspace  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets" / "ffhq-stylegan-dev"


def workspace(profile: str, dest: Path, external: dict | None = None) -> Path:
    params = profile_params(ROOT, profile)
    params["data"]["source"] = str(SHARED)
    params["evaluate"]["external"] = {**params["evaluate"]["external"], **(external or {})}
    return copy_checkout(ROOT, dest, params)


def external_set(text: str) -> tuple[str, str]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER with an existing folder, "
                                         f"not {text!r}")
    return name, str(Path(folder).resolve())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="real-small",
                    help="a profile name (profiles/NAME.yaml) or a YAML file of changes")
    ap.add_argument("--external", type=external_set, action="append", default=[],
                    metavar="NAME=FOLDER", help="a labelled folder every model also scores")
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return
    dest = args.keep or Path(tempfile.mkdtemp(prefix="real-data-"))
    dest.mkdir(parents=True, exist_ok=True)
    workspace(args.profile, dest, dict(args.external))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=dest,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"dvc repro failed in {dest}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    params = read_yaml_file(dest / "params.yaml")
    data = json.loads(Workspace(dest).data_summary.read_text())
    print(f"profile {args.profile}: image_size {params['preprocess']['image_size']}, "
          f"centre_crop {params['preprocess']['centre_crop']}; images per split "
          f"{ {s: c['total'] for s, c in data['counts'].items()} }")
    shaken = ("jpeg_50", "blur_1", "rescale_0.5")  # accuracy re-shared, beside clean
    print(f"{'model':10s} {'accuracy':>9s} {'roc_auc':>8s} {'95% interval':>15s} "
          + " ".join(f"{c:>11s}" for c in shaken) + f" {'out_of_domain':>13s}")
    for model in params["evaluate"]["models"]:
        m = json.loads(Workspace(dest).metrics(model).read_text())
        interval = f"[{m['roc_auc_ci_low']:.3f}, {m['roc_auc_ci_high']:.3f}]"
        accuracies = [m["robustness"].get(c, {}).get("accuracy") for c in shaken]
        ood = m.get("out_of_domain")
        print(f"{model:10s} {m['accuracy']:9.3f} {m['roc_auc']:8.3f} {interval:>15s} "
              + " ".join("          -" if a is None else f"{a:11.3f}" for a in accuracies)
              + f" {'-' if ood is None else format(ood, '.3f'):>13s}")
    table = Workspace(dest).external_table
    if args.external and table.exists():
        print("in-domain (test) vs cross-domain (external sets):")
        print(table.read_text().rstrip())
    print(f"wall time: {wall / 60:.1f} min (dvc repro, all stages, {os.cpu_count()} cores)")
    if not args.keep:
        shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()
