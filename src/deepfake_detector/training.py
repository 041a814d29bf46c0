"""One training function for every model, on one device, mirrored devices or several workers."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np

from . import interrupts, tracking
from .atomic import atomic_path, write_text
from .datasets import load_split, write_val_scores
from .reproducible import save_model
from .training_input import batches, images_in_graph


def configure(seed: int, training: dict) -> None:
    """Threads, determinism and logical devices: before TensorFlow touches a device."""
    import keras
    import tensorflow as tf

    devices = int(training["cpu_devices"])
    if devices > 1 and not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    if training["deterministic"]:
        # Seeds alone do not make TF training bit-identical here; one inter-op thread does.
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)


def make_strategy(kind: str):
    import tensorflow as tf

    if kind in (None, "none"):
        return None
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("training.distribute: multi_worker needs TF_CONFIG (the cluster "
                             "and this worker's index) in the environment")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"training.distribute must be none, mirrored or multi_worker, not {kind!r}")


def worker_info() -> tuple[int, int]:
    """(this worker's index, number of workers) from TF_CONFIG; (0, 1) without it."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    workers = len(config.get("cluster", {}).get("worker", [])) or 1
    return int(config.get("task", {}).get("index", 0)), workers


def fit_custom(model, strategy, optimizer, train_split, val_split, cfg, training, seed,
               callbacks_epoch) -> dict:
    """A train step through ``strategy.run``: Keras 3's ``fit`` does not run under
    MultiWorkerMirroredStrategy (keras issue 20585). Each worker reads its own shard."""
    import tensorflow as tf

    index, workers = worker_info()
    per_worker = int(cfg["batch_size"])
    global_batch = per_worker * workers
    loss_fn = tf.keras.losses.BinaryCrossentropy(reduction="none")
    step_vars = model.trainable_variables

    @tf.function
    def train_step(x, y):
        def replica(x, y):
            with tf.GradientTape() as tape:
                p = model(x, training=True)
                loss = tf.nn.compute_average_loss(loss_fn(y[:, None], p),
                                                  global_batch_size=global_batch)
            optimizer.apply_gradients(zip(tape.gradient(loss, step_vars), step_vars))
            return loss

        per_replica = strategy.run(replica, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    # BatchNorm's moving statistics are updated from each worker's own shard and all-reduce
    # never sees them: averaged after each epoch, every worker (and the chief's saved model)
    # holds statistics of the whole training set, not of one shard.
    state = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]

    @tf.function
    def average_state():
        def replica():
            return tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.MEAN, [tf.identity(v) for v in state])

        return strategy.experimental_local_results(strategy.run(replica))[0]

    stop = cfg["early_stopping"]
    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "val_accuracy": []}
    best, best_weights, waited = -np.inf, None, 0
    for epoch in range(cfg["epochs"]):
        data = batches(train_split["x"], train_split["y"], per_worker, True, seed + epoch,
                       augment=training["augment"], shard=(index, workers),
                       drop_remainder=True, max_steps=training["max_steps_per_epoch"])
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        losses = []
        for x, y in strategy.experimental_distribute_dataset(data.with_options(options)):
            losses.append(float(train_step(x, y)))
            interrupts.check()
        for variable, mean in zip(state, average_state() if state else []):
            variable.assign(mean)
        p = predict(model, val_split["x"])
        yv = val_split["y"].astype(np.float64)
        val_loss = float(-np.mean(yv * np.log(np.clip(p, 1e-7, 1)) +
                                  (1 - yv) * np.log(np.clip(1 - p, 1e-7, 1))))
        logs = {"loss": float(np.mean(losses)) * workers if losses else float("nan"),
                "val_loss": val_loss, "val_accuracy": float(np.mean((p >= 0.5) == yv))}
        for key, value in logs.items():
            history[key].append(value)
        print(f"epoch {epoch + 1}/{cfg['epochs']} worker {index}: " +
              " ".join(f"{k}={v:.4f}" for k, v in logs.items()), flush=True)
        callbacks_epoch(epoch, logs)
        monitored = logs.get(stop["monitor"], logs["val_accuracy"])
        sign = -1 if "loss" in stop["monitor"] else 1
        if sign * monitored > best + stop["min_delta"]:
            best, best_weights, waited = sign * monitored, model.get_weights(), 0
        else:
            waited += 1
            if waited >= stop["patience"]:
                break
    if best_weights is not None:
        model.set_weights(best_weights)
    return history


def train(name: str, cfg: dict, *, training: dict, seed: int, data_dir: Path, model_path: Path,
          history_path: Path, root: Path, image_size: int, pretrained: dict | None = None,
          val_scores_path: Path | None = None) -> dict:
    """Fit model ``name`` with its params ``cfg``, save it, and record one MLflow run; with
    ``val_scores_path``, also the final model's P(fake) of the validation split."""
    configure(seed, training)
    import keras

    from .models import build_model, make_optimizer

    kind = training["distribute"]
    strategy = make_strategy(kind)
    index, workers = worker_info() if kind == "multi_worker" else (0, 1)
    chief = index == 0
    # the training images live in TensorFlow's memory only: tf.data gathers batches there
    train_split = {**load_split(data_dir / "train.npz", keys=("y", "paths")),
                   "x": images_in_graph(data_dir / "train.npz")}
    val_split = load_split(data_dir / "val.npz")
    cfg = {**cfg, "weights_file": None if not pretrained or pretrained["used"] == "none"
           else pretrained["used"]}
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_model(name, image_size, cfg)
        optimizer = make_optimizer(cfg)
        if kind != "multi_worker":
            model.compile(optimizer=optimizer, loss="binary_crossentropy",
                          metrics=["accuracy", keras.metrics.AUC(name="auc")])

    mlflow = tracking.setup(root) if chief else None
    with tracking.new_run(name) if chief else contextlib.nullcontext() as run:
        if chief:
            mlflow.set_tags(tracking.run_tags(
                root, f"train@{name}", [data_dir / "train.npz", data_dir / "val.npz"],
                model=name, weights=(pretrained or {}).get("used", "none"),
                **{"weights.sha256": (pretrained or {}).get("sha256") or "none",
                   "distribute": kind,
                   "replicas": strategy.num_replicas_in_sync if strategy else 1}))
            mlflow.log_params(tracking.flatten({
                "model": name, **{k: v for k, v in cfg.items() if k != "weights_file"},
                "training": training, "seed": seed, "image_size": image_size,
                "n_train": len(train_split["y"]), "n_val": len(val_split["y"])}))

        def log_epoch(epoch, logs):
            if chief:
                mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch)

        started = time.perf_counter()
        if kind == "multi_worker":
            history = fit_custom(model, strategy, optimizer, train_split, val_split, cfg,
                                 training, seed, log_epoch)
        else:
            history = _fit_keras(model, train_split, val_split, cfg, training, seed, log_epoch)
        seconds = time.perf_counter() - started
        if not chief:  # every worker saves (collective ops need all); only the chief's is kept
            scratch = model_path.parent / f".worker{index}-{model_path.name}"
            scratch.parent.mkdir(parents=True, exist_ok=True)
            model.save(scratch)
            scratch.unlink()
            return {"model": name, "worker": index}
        # The model gets its real name last, after its run and history are recorded: a stage
        # interrupted before that leaves no models/<name>.keras behind.
        with atomic_path(model_path) as unfinished:
            save_model(model, unfinished)
            # later stages find this run by the file's md5 (tracking.training_run): the
            # history below holds no run id, which would change dvc.lock on every run
            mlflow.set_tag("model.md5", tracking.md5_file(unfinished))
            # one row by a sparse read: slicing the variable reads it whole (a full copy)
            tracking.log_keras_model(model, train_split["x"].sparse_read([0]).numpy())
            mlflow.log_metric("train_seconds", seconds)
            epochs = len(history.get("loss", []))
            record = {"model": name, "epochs_run": epochs,
                      "replicas": strategy.num_replicas_in_sync if strategy else 1,
                      "weights": (pretrained or {}).get("used", "none"),
                      "history": [{"epoch": e, **{k: float(v[e]) for k, v in history.items()}}
                                  for e in range(epochs)]}
            write_text(history_path, json.dumps(record, indent=2) + "\n")
            if val_scores_path is not None:  # evaluate@<name> fits its threshold on these
                write_val_scores(val_scores_path, predict(model, val_split["x"]),
                                 val_split["paths"])
    return {**record, "run_id": run.info.run_id}


def _fit_keras(model, train_split, val_split, cfg, training, seed, log_epoch) -> dict:
    import keras

    stop = cfg["early_stopping"]
    bs = int(cfg["batch_size"])
    max_steps = training["max_steps_per_epoch"]
    callbacks = [keras.callbacks.EarlyStopping(
        monitor=stop["monitor"], patience=stop["patience"],
        min_delta=stop["min_delta"], restore_best_weights=True),
        keras.callbacks.LambdaCallback(on_epoch_end=log_epoch,
                                       on_train_batch_end=lambda batch, logs: interrupts.check())]
    fitted = model.fit(
        batches(train_split["x"], train_split["y"], bs, shuffle=True, seed=seed,
                augment=training["augment"], max_steps=max_steps),
        validation_data=batches(val_split["x"], val_split["y"], bs, shuffle=False, seed=seed),
        epochs=cfg["epochs"], callbacks=callbacks, shuffle=False,  # the dataset shuffles
        verbose=2 if os.environ.get("CI") else 1)
    return fitted.history


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """P(fake) for uint8 images (see ``scoring.compiled_predict``)."""
    from .scoring import compiled_predict

    return compiled_predict(model, batch_size)(x)
