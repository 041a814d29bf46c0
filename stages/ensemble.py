"""ensemble: the member models → models/ensemble.keras (+ out-of-fold validation scores)."""

import json

import numpy as np
from _common import ROOT, load_params, run_stage

from deepfake_detector.atomic import atomic_path, write_text


def main():
    import keras

    from deepfake_detector import ensemble, tracking
    from deepfake_detector.datasets import load_split
    from deepfake_detector.training import configure

    params = load_params(ROOT)
    cfg, seed = params["ensemble"], params["base"]["seed"]
    configure(seed, {"deterministic": params["training"].get("deterministic")})
    members = [keras.models.load_model(ROOT / "models" / f"{m}.keras", compile=False)
               for m in cfg["members"]]
    val = load_split(ROOT / "data" / "processed" / "val.npz")
    model, oof = ensemble.build(members, val, cfg, seed, params["preprocess"]["image_size"])
    with atomic_path(ROOT / "models" / "ensemble.keras") as tmp:
        model.save(tmp)
    mlflow = tracking.setup(ROOT)
    with tracking.new_run("ensemble") as run:
        mlflow.set_tags(tracking.run_tags(ROOT, "ensemble", [ROOT / "data/processed/val.npz"],
                                          model="ensemble"))
        mlflow.log_params(tracking.flatten({**cfg, "seed": seed}))
        if oof is not None:
            mlflow.log_metric("val_oof_accuracy", float(np.mean((oof >= 0.5) == val["y"])))
        tracking.log_keras_model(model, val["x"][:1])
    write_text(ROOT / "metrics" / "train" / "ensemble.json", json.dumps(
        {"model": "ensemble", "run_id": run.info.run_id, "method": cfg["method"],
         "members": cfg["members"], "history": []}, indent=2) + "\n")
    # evaluate picks the ensemble's threshold on these (None: nothing was fitted on val)
    with atomic_path(ROOT / "models" / "ensemble_val_scores.npz") as tmp:
        np.savez(tmp, p=oof if oof is not None else np.zeros(0, np.float32),
                 paths=val["paths"])
    print(f"ensemble ({cfg['method']}) of {', '.join(cfg['members'])} saved")


if __name__ == "__main__":
    run_stage(main)
