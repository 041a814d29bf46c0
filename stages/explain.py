"""explain: LIME, Grad-CAM, occlusion and activation maps for chosen test images →
reports/explain/ (figures, index.html), metrics/explain.json (scores against the true
masks), reports/timings.json."""

import json

from _common import ROOT, load_params, run_stage

from deepfake_detector.atomic import write_text


def main():
    from deepfake_detector import tracking
    from deepfake_detector.explain_run import run

    params = load_params(ROOT)
    out_dir = ROOT / "reports" / "explain"
    result = run(ROOT, params, out_dir)
    metrics = {**result["scores"], "aggregate": result["aggregate"]}
    write_text(ROOT / "metrics" / "explain.json", json.dumps(metrics, indent=2) + "\n")
    write_text(ROOT / "reports" / "timings.json",
               json.dumps({"explain": result["timings"]}, indent=2) + "\n")
    history = ROOT / "metrics" / "train" / f"{params['explain']['model']}.json"
    mlflow = tracking.setup(ROOT)
    with tracking.resumed_run(json.loads(history.read_text())["run_id"]):
        mlflow.log_artifacts(str(out_dir), "explain")
        mlflow.log_dict(metrics, "explain/explain.json")
        mlflow.log_metrics({f"explain_{k}": v for k, v in tracking.flatten(
            result["scores"], sep="_").items() if isinstance(v, float)})
    print(result["aggregate"]["summary"])
    print(f"wrote {len(result['examples'])} explained examples to {out_dir}/index.html; "
          f"LIME median {result['timings']['lime_seconds_median']:.2f} s per image")


if __name__ == "__main__":
    run_stage(main)
