"""summary: every evaluated model's report and plot data → metrics/summary.csv and
reports/figures/{roc,pr,calibration,confusion,robustness}.png, the figures logged to each
model's training run; each trained model's history (metrics/train/<model>.json) →
reports/figures/learning/<model>.png, logged to that model's run."""

from _common import ROOT, load_params, run_stage


def main():
    from deepfake_detector import learning_curves, reporting, tracking
    from deepfake_detector.paths import Workspace

    names = load_params(ROOT)["evaluate"]["models"]
    workspace = Workspace(ROOT)
    results = reporting.read_reports(workspace, names)
    reporting.write_summary(workspace.summary, results)
    figures = reporting.write_figures(workspace, results)
    curves = learning_curves.write_learning_curves(workspace, names)
    mlflow = tracking.setup(ROOT)
    for name in names:
        with tracking.resumed_run(tracking.training_run(ROOT, name)):
            for figure in figures:
                mlflow.log_artifact(str(figure), "evaluation")
            if name in curves:
                mlflow.log_artifact(str(curves[name]), "training")
    print(f"wrote {workspace.summary.relative_to(ROOT)} and {len(figures) + len(curves)} "
          f"figures under {workspace.figures.relative_to(ROOT)}/")


if __name__ == "__main__":
    run_stage(main)
