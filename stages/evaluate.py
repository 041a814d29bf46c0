"""evaluate@<model>: the temperature and threshold fitted on the model's own validation scores,
and the domain score fitted on its training features → models/<model>.settings.json; its test
metrics, clean and at each severity of each perturbation → metrics/<model>.json and plot data
under metrics/plots/; clip-level metrics (the built-in clips, or frames grouped by
split.group_regex: video_eval); the metrics logged to the model's training run."""

import sys

from _common import ROOT, load_params, run_stage


def main():
    from deepfake_detector import evaluation, tracking, verdicts, video_eval
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
    train = load_split(workspace.processed("train"), keys=("y",) + ("x",) * domain_on)
    # what every verdict is shown beside (the date is added when the model is registered)
    serving = {**trained_settings(params),
               "trained_on": {"source": str(params["data"]["source"]),
                              "images": int(len(train["y"]))}}
    val = load_split(workspace.processed("val"), keys=("y", "paths") + ("x",) * domain_on)
    test = load_split(workspace.processed("test"))
    result = evaluation.run(name, workspace.model(name), workspace.val_scores(name), val, test,
                            cfg, serving, workspace, train_x=train.get("x"))
    report = result["metrics"]
    if video_eval.add_clip_metrics(name, params, workspace, result, val, test):
        print(f"{name} on test clips: " + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in report.items() if k.startswith(("video_", "group_"))))
    print(f"{name} on test: threshold {report['threshold']:.4f}, inconclusive band "
          f"[{report['band_low']:.4f}, {report['band_high']:.4f}), temperature "
          f"{report['temperature']:.3f}, ece {report['ece']:.4f} (uncalibrated "
          f"{report['ece_uncalibrated']:.4f})")
    for line in verdicts.report_lines(report):
        print("  " + line)
    mlflow = tracking.setup(ROOT)
    with tracking.resumed_run(tracking.training_run(ROOT, name)):
        flat = tracking.flatten({"test": {k: v for k, v in report.items() if k != "confusion"}},
                                sep="_")
        mlflow.log_metrics({k: v for k, v in flat.items() if isinstance(v, float)})
        mlflow.log_dict(report, "evaluation/metrics.json")


if __name__ == "__main__":
    run_stage(main)
