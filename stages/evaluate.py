"""evaluate: every model's temperature and threshold fitted on validation, its metrics on test
(clean and perturbed) → metrics/<model>.json, metrics/summary.csv, plot data and PNG figures."""

import json

import numpy as np
from _common import ROOT, load_params, run_stage

from deepfake_detector.atomic import write_text


def main():
    import keras

    from deepfake_detector import reporting, tracking
    from deepfake_detector.datasets import load_split, perturb
    from deepfake_detector.evaluation import apply_temperature, binary_metrics, evaluate_scores
    from deepfake_detector.inference import compiled_predict

    params = load_params(ROOT)
    cfg = params["evaluate"]
    data = ROOT / "data" / "processed"
    val, test = load_split(data / "val.npz"), load_split(data / "test.npz")
    perturbed = {kind: perturb(test["x"], kind, value)
                 for kind, value in (cfg.get("robustness") or {}).items()}
    mlflow = tracking.setup(ROOT)
    results, test_scores = {}, {}
    for name in cfg["models"]:
        predict = compiled_predict(
            keras.models.load_model(ROOT / "models" / f"{name}.keras", compile=False))
        p_val = np.zeros(0)
        if name == "ensemble":  # its combiner was fitted on val: use out-of-fold scores
            with np.load(ROOT / "models" / "ensemble_val_scores.npz") as z:
                p_val = z["p"]  # empty for ensemble.method: average (nothing fitted)
        if not len(p_val):
            p_val = predict(val["x"])
        p_test = predict(test["x"])
        result = evaluate_scores(val["y"], p_val, test["y"], p_test, cfg)
        result["robustness"] = {}
        for kind, images in perturbed.items():
            shaken = binary_metrics(test["y"], apply_temperature(
                predict(images), result["temperature"]), result["threshold"])
            result["robustness"][kind] = {k: v for k, v in shaken.items()
                                          if k not in ("confusion", "threshold", "n")}
        results[name] = result
        test_scores[name] = (test["y"], apply_temperature(p_test, result["temperature"]))
        reporting.write_plot_data(ROOT / "metrics" / "plots", name, *test_scores[name],
                                  result["threshold"])
        write_text(ROOT / "metrics" / f"{name}.json", json.dumps(result, indent=2) + "\n")
        print(f"{name:9s} on test: " + ", ".join(
            f"{k}={result[k]:.4f}" for k in ("accuracy", "recall", "roc_auc", "ece")) +
              f" (uncalibrated ece={result['ece_uncalibrated']:.4f})")
    reporting.write_summary(ROOT / "metrics" / "summary.csv", results)
    figures = reporting.write_figures(ROOT / "reports" / "figures", test_scores, results)
    for name, result in results.items():
        with tracking.resumed_run(tracking.training_run(ROOT, name)):
            flat = tracking.flatten({"test": {k: v for k, v in result.items()
                                              if k != "confusion"}}, sep="_")
            mlflow.log_metrics({k: v for k, v in flat.items() if isinstance(v, float)})
            mlflow.log_dict(result, "evaluation/metrics.json")
            for figure in figures:
                mlflow.log_artifact(str(figure), "evaluation")
    print(f"wrote metrics/summary.csv, plot data under metrics/plots/ and "
          f"{len(figures)} figures under reports/figures/")


if __name__ == "__main__":
    run_stage(main)
