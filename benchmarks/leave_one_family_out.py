"""Leave one manipulation family out: does a detector trained on the built-in data catch a kind
of fake it never saw?

    python benchmarks/leave_one_family_out.py [--models tuned] [--external-images 600] [--keep DIR]

For each family of ``data.synthetic.families``: a copy of the repository trains the models
without that family (``data.synthetic.families.<family>: false``; the real faces stay the
same), and ``evaluate.external`` scores a folder of reals and that family's fakes alone, drawn
with another seed. Printed per family: the ROC AUC on the model's own test split (the families
it saw) and on the held-out family, with its 95% bootstrap interval. The same recipe by hand:
set those two params and run ``dvc repro external``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from real_data import repro  # noqa: E402  (benchmarks/: this script's folder)

from deepfake_detector.config import copy_checkout, read_yaml_file  # noqa: E402
from deepfake_detector.paths import Workspace  # noqa: E402
from deepfake_detector.synthetic import FAMILIES, SyntheticConfig, generate  # noqa: E402

HELD_OUT_SEED = 1_000_003  # not the pipeline's seed: other faces than any it trained on


def run_family(family: str, models: list[str], n_external: int, dest: Path) -> dict:
    """Train without ``family`` in ``dest`` and score its fakes; the two reports."""
    params = read_yaml_file(ROOT / "params.yaml")
    syn = params["data"]["synthetic"]
    held_out = dest / "held_out"
    generate(held_out, SyntheticConfig(n_images=n_external, image_size=syn["image_size"],
                                       seed=HELD_OUT_SEED, strength=syn["strength"],
                                       families=(family,)))
    syn["families"] = {f: f != family for f in FAMILIES}
    params["evaluate"]["models"] = models
    params["evaluate"]["external"] = {family: str(held_out)}
    repo = copy_checkout(ROOT, dest / "repo", params)
    repro(repo, "external")
    ws = Workspace(repo)
    return {"test": {m: json.loads(ws.metrics(m).read_text()) for m in models},
            "held_out": json.loads(ws.external(family).read_text())["models"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tuned",
                    help="comma-separated models to train and score (default: tuned, the "
                         "registered one); any of evaluate.models, ensemble needs its members")
    ap.add_argument("--families", default=",".join(FAMILIES), help="families to hold out")
    ap.add_argument("--external-images", type=int, default=600,
                    help="images in each held-out folder, half real (default 600)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        sys.exit(f"unknown families {unknown}; known: {list(FAMILIES)}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="lofo-"))
    print(f"{'held out':14s} {'model':9s} {'test AUC (seen)':>16s} {'held-out AUC':>13s} "
          f"{'95% interval':>15s} {'minutes':>8s}")
    for family in families:
        dest = work / family
        dest.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        result = run_family(family, models, args.external_images, dest)
        minutes = (time.perf_counter() - started) / 60
        for model in models:
            seen, held = result["test"][model], result["held_out"][model]
            interval = f"[{held['roc_auc_ci_low']:.3f}, {held['roc_auc_ci_high']:.3f}]"
            print(f"{family:14s} {model:9s} {seen['roc_auc']:16.3f} {held['roc_auc']:13.3f} "
                  f"{interval:>15s} {minutes:8.1f}", flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
