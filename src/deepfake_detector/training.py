"""One training function for every model."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from . import tracking
from .datasets import batches, load_split


def configure(seed: int, deterministic: bool) -> None:
    import keras
    import tensorflow as tf

    if deterministic:
        # Seeds alone do not make TF training bit-identical here; one inter-op thread does.
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)


def train(name: str, cfg: dict, *, training: dict, seed: int, data_dir: Path, model_path: Path,
          history_path: Path, root: Path, image_size: int) -> dict:
    """Fit model ``name`` with its params ``cfg``, save it, and record the MLflow run."""
    configure(seed, training.get("deterministic", False))
    import keras
    import mlflow.tensorflow
    from mlflow.models import infer_signature

    from .models import build_model, make_optimizer

    train_split, val_split = load_split(data_dir / "train.npz"), load_split(data_dir / "val.npz")
    model = build_model(name, image_size, cfg)
    model.compile(optimizer=make_optimizer(cfg), loss="binary_crossentropy",
                  metrics=["accuracy", keras.metrics.AUC(name="auc")])
    stop = cfg.get("early_stopping", {})
    callbacks = [keras.callbacks.EarlyStopping(
        monitor=stop.get("monitor", "val_accuracy"), patience=stop.get("patience", 3),
        min_delta=stop.get("min_delta", 0.0), restore_best_weights=True), tracking.epoch_logger()]

    mlflow = tracking.setup(root)
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags({"model": name, "dvc.stage": f"train@{name}",
                         "git.commit": tracking.git_commit(root),
                         "data.hash": tracking.files_hash([data_dir / "train.npz",
                                                           data_dir / "val.npz"])})
        mlflow.log_params(tracking.flatten({"model": name, **cfg, "training": training,
                                            "seed": seed, "image_size": image_size,
                                            "n_train": len(train_split["y"]),
                                            "n_val": len(val_split["y"])}))
        bs = cfg.get("batch_size", 32)
        started = time.perf_counter()
        history = model.fit(
            batches(train_split["x"], train_split["y"], bs, shuffle=True, seed=seed),
            validation_data=batches(val_split["x"], val_split["y"], bs, shuffle=False, seed=seed),
            epochs=cfg["epochs"], callbacks=callbacks, verbose=2 if os.environ.get("CI") else 1)
        seconds = time.perf_counter() - started
        model_path.parent.mkdir(parents=True, exist_ok=True)
        model.save(model_path)
        example = train_split["x"][:1]
        import tensorflow as tf

        mlflow.tensorflow.log_model(
            model, name="model", input_example=example,
            signature=infer_signature(example, model.predict(example, verbose=0)),
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"])
        mlflow.log_metric("train_seconds", seconds)
        record = {"model": name, "run_id": run.info.run_id,
                  "epochs_run": len(history.history.get("loss", [])),
                  "history": {k: [float(v) for v in vals] for k, vals in
                              history.history.items()}}
    history_path.parent.mkdir(parents=True, exist_ok=True)
    history_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """P(fake) for uint8 images, batched through one compiled call."""
    return model.predict(x, batch_size=batch_size, verbose=0).reshape(-1)
