"""evaluate@<model>: the model on val (threshold) and test (metrics) → metrics/<model>.json."""

import json
import sys

from _common import ROOT, load_params, run_stage


def main():
    import keras

    from deepfake_detector import tracking
    from deepfake_detector.datasets import load_split
    from deepfake_detector.evaluation import binary_metrics, choose_threshold
    from deepfake_detector.training import predict

    name = sys.argv[1]
    params = load_params(ROOT)
    model = keras.models.load_model(ROOT / "models" / f"{name}.keras")
    data = ROOT / "data" / "processed"
    val, test = load_split(data / "val.npz"), load_split(data / "test.npz")
    threshold = choose_threshold(val["y"], predict(model, val["x"]),
                                 params["evaluate"]["threshold"])
    result = binary_metrics(test["y"], predict(model, test["x"]), threshold)
    (ROOT / "metrics" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    run_id = json.loads((ROOT / "metrics" / "train" / f"{name}.json").read_text())["run_id"]
    mlflow = tracking.setup(ROOT)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"test_{k}": v for k, v in result.items()
                            if isinstance(v, float)})
    print(f"{name} on test: " + ", ".join(f"{k}={result[k]:.4f}" for k in
                                          ("accuracy", "precision", "recall", "f1", "roc_auc")))


if __name__ == "__main__":
    run_stage(main)
