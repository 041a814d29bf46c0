"""The whole pipeline (all models) on real faces: FFHQ photographs vs StyleGAN faces.

    python benchmarks/real_data.py [--profile real-small] [--external NAME=FOLDER ...]
                                   [--folds K [--model tuned]] [--keep DIR]

Copies the repository into a temporary workspace with the profile's params (the defaults
with ``profiles/<profile>.yaml`` over them), points ``data.source`` at
``../shared/datasets/ffhq-stylegan-dev``, runs ``dvc repro`` there, and prints test accuracy
and ROC AUC per model and the wall time. ``--profile study`` measures the study's settings.
``--external`` adds labelled folders to ``evaluate.external`` and prints the in-domain vs
cross-domain table (``metrics/external.csv``).

``--folds K`` cross-validates one model (``--model``) instead of trusting one test split: the
dev faces are cut into K stratified folds; each fold is the test split of one run
(``dvc repro evaluate@MODEL``, splits given as folders) that trains on the other folds, a
fifth of them kept for validation. The K test splits, scored as served, are pooled into one
ROC AUC and accuracy with 95% bootstrap intervals, beside each fold's own figures.
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

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # this process loads each fold's model
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


def pipeline_env() -> dict:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def repro(dest: Path, *targets: str) -> float:
    """``dvc repro`` in ``dest``; its wall time in seconds (exits with its output on failure)."""
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", *targets],
                          cwd=dest, env=pipeline_env(), capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"dvc repro failed in {dest}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def fold_sources(dest: Path, k: int, seed: int, faces: Path = SHARED) -> list[Path]:
    """K copies of ``faces`` (``real/`` and ``fake/`` JPEGs) laid out as
    ``train|val|test/<class>/``: fold i is the test split of copy i, stratified by class; a
    fifth of the rest (per class) is validation."""
    rng = np.random.default_rng(seed)
    folders = [dest / f"fold{i}" / "source" for i in range(k)]
    for cls in ("real", "fake"):
        files = sorted((faces / cls).glob("*.jpg"))
        order = rng.permutation(len(files))
        fold_of = np.empty(len(files), int)
        fold_of[order] = np.arange(len(files)) % k
        for i, folder in enumerate(folders):
            rest = rng.permutation(np.flatnonzero(fold_of != i))
            val = set(rest[:len(rest) // 5].tolist())
            for j, path in enumerate(files):
                split = "test" if fold_of[j] == i else "val" if j in val else "train"
                (folder / split / cls).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, folder / split / cls / path.name)
    return folders


def cross_validate(args, dest: Path) -> None:
    from deepfake_detector.evaluation import binary_metrics, bootstrap_intervals
    from deepfake_detector.inference import Detector
    from deepfake_detector.model_settings import read_settings
    from deepfake_detector.splitting import read_manifest

    params = profile_params(ROOT, args.profile)
    if args.model not in params["evaluate"]["models"]:
        sys.exit(f"--model {args.model}: not one of evaluate.models {params['evaluate']['models']}")
    pooled = {"y": [], "p": [], "threshold": []}
    print(f"profile {args.profile}, model {args.model}, {args.folds} folds of the dev faces")
    print(f"{'fold':>4s} {'train':>6s} {'val':>5s} {'test':>5s} {'accuracy':>9s} {'roc_auc':>8s} "
          f"{'95% interval':>15s} {'minutes':>8s}")
    started = time.perf_counter()
    for i, source in enumerate(fold_sources(dest, args.folds, params["base"]["seed"])):
        fold_params = profile_params(ROOT, args.profile)
        fold_params["data"]["source"] = str(source)
        fold_params["evaluate"]["external"] = {}
        repo = copy_checkout(ROOT, source.parent / "repo", fold_params)
        minutes = repro(repo, f"evaluate@{args.model}") / 60
        ws = Workspace(repo)
        counts = json.loads(ws.data_summary.read_text())["counts"]
        test = read_manifest(ws.manifest("test"))  # after grouping: what the fold really tested
        detector = Detector.load(ws.model(args.model), read_settings(ws.settings(args.model)))
        rows = detector.score([str(repo / path) for path in test["path"]])  # repo-relative
        scored = [j for j, row in enumerate(rows) if not row["error"]]
        if not scored:
            sys.exit(f"fold {i}: none of the {len(rows)} test images could be scored "
                     f"({rows[0]['error'] if rows else 'no test split'})")
        y = test["label"].to_numpy()[scored]
        p = np.array([rows[j]["p_fake"] for j in scored])
        m = json.loads(ws.metrics(args.model).read_text())
        interval = f"[{m['roc_auc_ci_low']:.3f}, {m['roc_auc_ci_high']:.3f}]"
        print(f"{i:4d} {counts['train']['total']:6d} {counts['val']['total']:5d} {len(y):5d} "
              f"{m['accuracy']:9.3f} {m['roc_auc']:8.3f} {interval:>15s} {minutes:8.1f}",
              flush=True)
        pooled["y"].append(y)
        pooled["p"].append(p)
        pooled["threshold"].append(np.full(len(y), detector.threshold))
    y, p, threshold = (np.concatenate(pooled[k]) for k in ("y", "p", "threshold"))
    intervals = bootstrap_intervals(y, p, threshold, params["evaluate"]["bootstrap"])
    auc = binary_metrics(y, p, 0.5)["roc_auc"]
    accuracy = float(((p >= threshold).astype(int) == y).mean())
    print(f"pooled over {len(y)} images: roc_auc {auc:.3f} "
          f"[{intervals['roc_auc_ci_low']:.3f}, {intervals['roc_auc_ci_high']:.3f}], "
          f"accuracy {accuracy:.3f} "
          f"[{intervals['accuracy_ci_low']:.3f}, {intervals['accuracy_ci_high']:.3f}] (95%)")
    print(f"wall time: {(time.perf_counter() - started) / 60:.1f} min ({args.folds} folds, "
          f"{os.cpu_count()} cores)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="real-small",
                    help="a profile name (profiles/NAME.yaml) or a YAML file of changes")
    ap.add_argument("--external", type=external_set, action="append", default=[],
                    metavar="NAME=FOLDER", help="a labelled folder every model also scores")
    ap.add_argument("--folds", type=int, metavar="K",
                    help="cross-validate --model over K folds of the dev faces instead")
    ap.add_argument("--model", default="tuned",
                    help="the model --folds trains and scores (default: tuned, the registered one)")
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = ap.parse_args()
    if args.folds is not None and args.folds < 2:
        ap.error("--folds needs at least 2")
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return
    dest = args.keep or Path(tempfile.mkdtemp(prefix="real-data-"))
    dest.mkdir(parents=True, exist_ok=True)
    if args.folds:
        cross_validate(args, dest)
    else:
        whole_pipeline(args, dest)
    if not args.keep:
        shutil.rmtree(dest, ignore_errors=True)


def whole_pipeline(args, dest: Path) -> None:
    workspace(args.profile, dest, dict(args.external))
    wall = repro(dest)
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


if __name__ == "__main__":
    main()
