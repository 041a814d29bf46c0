"""evaluate: every model on val (threshold) and test (metrics) → metrics/<model>.json."""

import json

import numpy as np
from _common import ROOT, load_params, run_stage


def main():
    import keras

    from deepfake_detector import tracking
    from deepfake_detector.datasets import load_split
    from deepfake_detector.evaluation import binary_metrics, choose_threshold
    from deepfake_detector.training import predict

    params = load_params(ROOT)
    data = ROOT / "data" / "processed"
    val, test = load_split(data / "val.npz"), load_split(data / "test.npz")
    mlflow = tracking.setup(ROOT)
    for name in params["evaluate"]["models"]:
        model = keras.models.load_model(ROOT / "models" / f"{name}.keras", compile=False)
        p_val = np.zeros(0)
        if name == "ensemble":  # its combiner was fitted on val: use out-of-fold scores
            with np.load(ROOT / "models" / "ensemble_val_scores.npz") as z:
                p_val = z["p"]  # empty for ensemble.method: average (nothing fitted)
        if not len(p_val):
            p_val = predict(model, val["x"])
        threshold = choose_threshold(val["y"], p_val, params["evaluate"]["threshold"])
        result = binary_metrics(test["y"], predict(model, test["x"]), threshold)
        (ROOT / "metrics" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        history = ROOT / "metrics" / "train" / f"{name}.json"
        if history.exists():  # log test metrics into the model's training run
            with mlflow.start_run(run_id=json.loads(history.read_text())["run_id"]):
                mlflow.log_metrics({f"test_{k}": v for k, v in result.items()
                                    if isinstance(v, float)})
        print(f"{name:9s} on test: " + ", ".join(
            f"{k}={result[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1",
                                            "roc_auc")))


if __name__ == "__main__":
    run_stage(main)
