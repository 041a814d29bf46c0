"""summary: every evaluated model's report and plot data → metrics/summary.csv and
reports/figures/{roc,pr,calibration,confusion,robustness}.png, the figures logged to each
model's training run."""

from _common import ROOT, load_params, run_stage


def main():
    from deepfake_detector import reporting, tracking
    from deepfake_detector.paths import Workspace

    names = load_params(ROOT)["evaluate"]["models"]
    workspace = Workspace(ROOT)
    results = reporting.read_reports(workspace, names)
    reporting.write_summary(workspace.summary, results)
    figures = reporting.write_figures(workspace, results)
    mlflow = tracking.setup(ROOT)
    for name in names:
        with tracking.resumed_run(tracking.training_run(ROOT, name)):
            for figure in figures:
                mlflow.log_artifact(str(figure), "evaluation")
    print(f"wrote {workspace.summary.relative_to(ROOT)} and {len(figures)} figures under "
          f"{workspace.figures.relative_to(ROOT)}/")


if __name__ == "__main__":
    run_stage(main)
