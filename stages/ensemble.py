"""ensemble: the member models → models/ensemble.keras, models/ensemble.val_scores.npz (the
validation scores evaluate@ensemble fits its threshold on)."""

import json

import numpy as np
from _common import ROOT, load_params, run_stage

from deepfake_detector.atomic import atomic_path, write_text
from deepfake_detector.paths import Workspace


def main():
    import keras

    from deepfake_detector import ensemble, tracking
    from deepfake_detector.datasets import load_split, write_val_scores
    from deepfake_detector.reproducible import save_model
    from deepfake_detector.training import configure, predict

    params, workspace = load_params(ROOT), Workspace(ROOT)
    cfg, seed = params["ensemble"], params["base"]["seed"]
    configure(seed, params["training"])
    members = [keras.models.load_model(workspace.model(m), compile=False)
               for m in cfg["members"]]
    val = load_split(workspace.processed("val"))
    model, oof = ensemble.build(members, val, cfg, seed, params["preprocess"]["image_size"])
    mlflow = tracking.setup(ROOT)
    # Named last, after its run is recorded (as in training): later stages find the run by
    # the file's md5 (tracking.training_run), so no run id goes into a DVC output.
    with atomic_path(workspace.model("ensemble")) as tmp:
        save_model(model, tmp)
        with tracking.new_run("ensemble"):
            mlflow.set_tags(tracking.run_tags(
                ROOT, "ensemble", [workspace.processed("val")], model="ensemble",
                **{"model.md5": tracking.md5_file(tmp)}))
            mlflow.log_params(tracking.flatten({**cfg, "seed": seed}))
            if oof is not None:
                mlflow.log_metric("val_oof_accuracy", float(np.mean((oof >= 0.5) == val["y"])))
            tracking.log_keras_model(model, val["x"][:1])
    write_text(workspace.history("ensemble"), json.dumps(
        {"model": "ensemble", "method": cfg["method"], "members": cfg["members"],
         "history": []}, indent=2) + "\n")
    # out-of-fold for the stacked combiner (fitted on validation itself); for the average,
    # where nothing was fitted on validation, the plain predictions
    write_val_scores(workspace.val_scores("ensemble"),
                     oof if oof is not None else predict(model, val["x"]), val["paths"])
    print(f"ensemble ({cfg['method']}) of {', '.join(cfg['members'])} saved")


if __name__ == "__main__":
    run_stage(main)
