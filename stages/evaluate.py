"""evaluate@<model>: the temperature and threshold fitted on the model's own validation scores,
and the domain score fitted on its training features → models/<model>.settings.json; its test
metrics, clean and at each severity of each perturbation → metrics/<model>.json and plot data
under metrics/plots/; the metrics logged to the model's training run."""

import sys

from _common import ROOT, load_params, run_stage


def main():
    from deepfake_detector import evaluation, tracking
    from deepfake_detector.datasets import load_split
    from deepfake_detector.model_settings import trained_settings
    from deepfake_detector.paths import Workspace

    name = sys.argv[1]
    params = load_params(ROOT)
    workspace = Workspace(ROOT)
    if not workspace.model(name).exists():
        raise FileNotFoundError(f"no {workspace.model(name).relative_to(ROOT)}: run its stage "
                                "first (dvc repro)")
    cfg = params["evaluate"]
    domain_on = cfg["domain"]["quantile"] is not None  # it needs training and validation images
    result = evaluation.run(
        name, workspace.model(name), workspace.val_scores(name),
        load_split(workspace.processed("val"), keys=("y", "paths") + ("x",) * domain_on),
        load_split(workspace.processed("test")), cfg, trained_settings(params), workspace,
        train_x=load_split(workspace.processed("train"), keys=("x",))["x"] if domain_on else None)
    report = result["metrics"]
    print(f"{name} on test: " + ", ".join(
        f"{k}={report[k]:.4f}" for k in ("accuracy", "recall", "roc_auc", "ece")) +
          f" (uncalibrated ece={report['ece_uncalibrated']:.4f}); threshold "
          f"{report['threshold']:.4f}, temperature {report['temperature']:.3f}" +
          ("" if report["out_of_domain"] is None else
           f"; {report['out_of_domain']:.1%} of test out of domain"))
    mlflow = tracking.setup(ROOT)
    with tracking.resumed_run(tracking.training_run(ROOT, name)):
        flat = tracking.flatten({"test": {k: v for k, v in report.items() if k != "confusion"}},
                                sep="_")
        mlflow.log_metrics({k: v for k, v in flat.items() if isinstance(v, float)})
        mlflow.log_dict(report, "evaluation/metrics.json")


if __name__ == "__main__":
    run_stage(main)
