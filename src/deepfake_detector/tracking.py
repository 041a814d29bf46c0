"""MLflow tracking: where runs go and what ties each run to its code and data."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from .config import main_checkout

EXPERIMENT = "deepfake-detection"


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the checkout's ``mlflow.db`` by absolute path
    (a relative one would land in throwaway copies under ``.dvc/tmp/exps``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{main_checkout(root) / 'mlflow.db'}"


def setup(root: Path):
    import mlflow

    local_store = "MLFLOW_TRACKING_URI" not in os.environ  # set_tracking_uri exports it
    mlflow.set_tracking_uri(tracking_uri(root))
    if local_store and mlflow.get_experiment_by_name(EXPERIMENT) is None:
        # Artifacts beside the database, not under whatever folder the first run started in.
        artifacts = (main_checkout(root) / "mlartifacts").as_uri()
        try:
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
        except mlflow.exceptions.MlflowException:
            pass  # created meanwhile by a parallel stage
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        return "none"


def files_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def flatten(d: dict, prefix: str = "", sep: str = ".") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}{sep}", sep))
        else:
            out[name] = value
    return out


def run_tags(root: Path, stage: str, data_files: list[Path], **extra) -> dict:
    """The tags that tie a run to its code and data."""
    return {"dvc.stage": stage, "git.commit": git_commit(root),
            "data.hash": files_hash(data_files), **extra}


def log_keras_model(model, example) -> None:
    """The model with signature and input example. ``mlflow.tensorflow`` (``mlflow.keras``
    with ``input_example`` fails in MLflow 3.17), explicit requirements (inferring them
    costs seconds and lists both TensorFlow wheels)."""
    import keras
    import mlflow.tensorflow
    import numpy as np
    import tensorflow as tf
    from mlflow.models import infer_signature

    out = np.asarray(model(example, training=False))
    mlflow.tensorflow.log_model(
        model, name="model", input_example=example, signature=infer_signature(example, out),
        pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"])
