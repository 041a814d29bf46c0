"""explain: LIME, Grad-CAM, occlusion and activation maps for chosen test images →
reports/explain/ (figures, index.html), metrics/explain.json (scores against the true
masks); timings to the model's MLflow run and reports/timings.json (untracked)."""

import json

from _common import ROOT, load_params, run_stage

from deepfake_detector.atomic import write_text
from deepfake_detector.paths import Workspace


def main():
    from deepfake_detector import tracking
    from deepfake_detector.explain_run import run

    params, workspace = load_params(ROOT), Workspace(ROOT)
    out_dir = workspace.explain_dir
    result = run(ROOT, params, out_dir)
    metrics = {**result["scores"], "aggregate": result["aggregate"]}
    write_text(workspace.explain_scores, json.dumps(metrics, indent=2) + "\n")
    # wall-clock times differ on every run: an untracked report and MLflow, not DVC outputs
    write_text(workspace.timings, json.dumps({"explain": result["timings"]}, indent=2) + "\n")
    mlflow = tracking.setup(ROOT)
    with tracking.resumed_run(tracking.training_run(ROOT, params["explain"]["model"])):
        mlflow.log_artifacts(str(out_dir), "explain")
        mlflow.log_dict(metrics, "explain/explain.json")
        mlflow.log_metrics({f"explain_{k}": v for k, v in tracking.flatten(
            result["scores"], sep="_").items() if isinstance(v, float)})
        mlflow.log_metrics({f"explain_{k}": float(v) for k, v in result["timings"].items()
                            if v is not None})
    print(result["aggregate"]["summary"])
    print(f"wrote {len(result['examples'])} explained examples to {out_dir}/index.html; "
          f"LIME median {result['timings']['lime_seconds_median']:.2f} s per image")


if __name__ == "__main__":
    run_stage(main)
