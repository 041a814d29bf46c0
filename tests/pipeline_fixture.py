"""The tiny real pipeline shared by the whole test session: `dvc repro` in a temporary copy of
the repository (a few hundred built-in images, one epoch per model, deterministic training)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from deepfake_detector.config import copy_checkout
from deepfake_detector.synthetic import SyntheticConfig, generate

BIN = Path(sys.executable).parent
KERAS_HOME = Path(os.environ.get("PYTEST_KERAS_HOME", "/tmp")) / f"keras-home-{os.getpid()}"


def sh(cmd, cwd, timeout=1200):
    done = subprocess.run(cmd, cwd=cwd, env=pipeline_env(), capture_output=True, text=True,
                          timeout=timeout)
    return done


# The models the pipeline evaluates, in evaluate's order (tests/test_dvc_yaml.py checks this
# list is every model a stage makes: each train: section and the ensemble).
MODELS = tuple(yaml.safe_load((ROOT / "params.yaml").read_text())["evaluate"]["models"])


def pipeline_env():
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # ImageNet weights: a closed local port stands in for the offline internet, and a fresh
    # Keras cache keeps a user's downloaded weights out of the test
    env["DEEPFAKE_WEIGHTS_URL"] = "http://127.0.0.1:9/xception_notop.h5"
    env["KERAS_HOME"] = str(KERAS_HOME)
    env.update(DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid")
    return env


def reproduced_files(repo: Path) -> dict[str, bytes]:
    """What a deterministic rerun must repeat byte for byte besides the models' metrics."""
    files = ["metrics/explain.json", "metrics/summary.csv",
             *(str(p.relative_to(repo)) for p in sorted((repo / "reports").rglob("*.png")))]
    return {f: (repo / f).read_bytes() for f in files}


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """The repository copied (tracked and new files, as a fresh clone has them), tiny
    params, committed, and `dvc repro` run once."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["synthetic"]["n_images"] = 300
    params["data"]["synthetic"]["videos"].update(clips=8, seconds=4, fps=8)  # 16 short clips
    for model in params["train"].values():
        model["epochs"] = 1
    params["training"]["deterministic"] = True
    params["promote"].update(min_roc_auc=0.0, min_fake_recall=0.0)  # one-epoch models
    # an external set the pipeline never trained on: built-in faces of another seed, one family
    other = tmp_path_factory.mktemp("external") / "other_seed"
    generate(other, SyntheticConfig(n_images=40, seed=7, families=("gan_artifacts",)))
    params["evaluate"]["external"] = {"other_seed": str(other)}
    repo = copy_checkout(ROOT, tmp_path_factory.mktemp("pipeline") / "repo", params)
    started = time.perf_counter()
    done = sh([str(BIN / "dvc"), "repro"], repo)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    metrics = {m: (repo / f"metrics/{m}.json").read_bytes() for m in MODELS}
    metrics.update(reproduced_files(repo))
    metrics["models/registered.json"] = (repo / "models/registered.json").read_bytes()
    yield {"repo": repo, "seconds": time.perf_counter() - started, "log": done.stdout,
           "stderr": done.stderr, "metrics": metrics,
           "lock": (repo / "dvc.lock").read_bytes()}  # a forced rerun must repeat it exactly
    shutil.rmtree(KERAS_HOME, ignore_errors=True)
