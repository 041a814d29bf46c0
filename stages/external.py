"""external: every evaluated model scores each labelled folder of evaluate.external as it is
served → metrics/external/<set>.json; with the test-split metrics, metrics/external.csv and
reports/figures/external.png (in-domain vs cross-domain); logged to each model's run."""

import json

from _common import ROOT, load_params, run_stage


def main():
    import shutil

    from deepfake_detector import external, tracking
    from deepfake_detector.atomic import write_text
    from deepfake_detector.detector import Detector
    from deepfake_detector.model_settings import read_settings
    from deepfake_detector.paths import Workspace
    from deepfake_detector.reporting import read_reports, write_rows

    params = load_params(ROOT)
    cfg, workspace = params["evaluate"], Workspace(ROOT)
    names, sets = cfg["models"], cfg["external"] or {}
    in_domain = read_reports(workspace, names)
    max_bytes = int(params["preprocess"]["max_file_mb"] * 2**20)
    folders = {s: external.labelled_files(ROOT / folder, params["data"]["class_names"], max_bytes)
               for s, folder in sets.items()}  # every folder checked before any model loads
    reports = {s: {"data": str(folder), "n": len(folders[s][0]),
                   "rejected": len(folders[s][2]), "models": {}}
               for s, folder in sets.items()}
    for name in names:
        detector = Detector.load(workspace.model(name), read_settings(workspace.settings(name)))
        for s, (files, labels, _) in folders.items():
            m = external.score_folder(detector, files, labels, bootstrap=cfg["bootstrap"])
            reports[s]["models"][name] = {k: v for k, v in m.items() if k != "confusion"}
            print(f"{name} on {s}: n={m['n']} accuracy={m['accuracy']:.4f} "
                  f"roc_auc={m['roc_auc'] if m['roc_auc'] is None else round(m['roc_auc'], 4)}"
                  + ("" if m["out_of_domain"] is None else
                     f" out_of_domain={m['out_of_domain']:.3f}"))
    shutil.rmtree(workspace.external_dir, ignore_errors=True)  # a set dropped from params goes
    workspace.external_dir.mkdir(parents=True)
    for s, report in reports.items():
        write_text(workspace.external(s), json.dumps(report, indent=2) + "\n")
    # always one file (a set name starts with a letter or digit): git keeps no empty folder,
    # and a missing output would make a fresh clone's `dvc status` re-run this stage
    index = {"sets": {s: str(folder) for s, folder in sets.items()}, "models": names}
    write_text(workspace.external_dir / "_index.json", json.dumps(index, indent=2) + "\n")
    rows = external.table_rows(in_domain, reports)
    write_rows(workspace.external_table, external.TABLE_COLUMNS, rows)
    workspace.figures.mkdir(parents=True, exist_ok=True)
    external.table_figure(workspace.figure("external"), rows)
    mlflow = tracking.setup(ROOT)
    for name in names:
        with tracking.resumed_run(tracking.training_run(ROOT, name)):
            mlflow.log_metrics({f"external_{s}_{k}": v for s, r in reports.items()
                                for k, v in r["models"][name].items()
                                if isinstance(v, float)})
            mlflow.log_artifact(str(workspace.external_table), "evaluation")
            mlflow.log_artifact(str(workspace.figure("external")), "evaluation")
    print(f"wrote {workspace.external_table.relative_to(ROOT)} ({len(sets)} external sets)")


if __name__ == "__main__":
    run_stage(main)
