"""One framing for training, evaluation and serving (issue 14, item 1): with
``preprocess.face_crop`` the preprocess stage frames each image on its largest face exactly
as the CLI and the service do for that model, so a file gets the same P(fake) from the
pipeline's test path and from ``deepfake predict`` / ``deepfake evaluate``."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from helpers import jpeg_bytes, mini_project, run_stage

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MLFLOW_DISABLE_TELEMETRY": "true"}


def test_pipeline_and_cli_frame_and_score_each_file_alike(tmp_path):
    from deepfake_detector.datasets import load_split
    from deepfake_detector.evaluation import binary_metrics
    from deepfake_detector.model_settings import SETTINGS_SCHEMA_VERSION, trained_settings
    from deepfake_detector.models import build_model
    from deepfake_detector.scoring import apply_temperature, compiled_predict

    project = mini_project(tmp_path / "project", ROOT, {
        "preprocess.face_crop": True, "preprocess.image_size": 32})
    for label, fake in (("real", False), ("fake", True)):  # 128 px: Haar finds about half
        (project / "data/raw" / label).mkdir(parents=True)
        for i in range(40):
            (project / "data/raw" / label / f"{i:03d}.jpg").write_bytes(
                jpeg_bytes(i + 100 * fake, fake, 128))
    for stage in ("split", "preprocess"):
        done = run_stage(project, stage)
        assert done.returncode == 0, done.stderr
    params = yaml.safe_load((project / "params.yaml").read_text())
    test = load_split(project / "data/processed/test.npz")
    found = test["face_found"]
    assert 0 < found.sum() < len(found)  # both framings are exercised: a face, or none

    model = build_model("baseline", 32, params["train"]["baseline"])
    (project / "models").mkdir()
    model.save(project / "models/baseline.keras")
    settings = {**trained_settings(params), "temperature": 1.7, "threshold": 0.45,
                "schema_version": SETTINGS_SCHEMA_VERSION, "model": "baseline"}
    assert settings["framing"] == "face"
    (project / "models/baseline.settings.json").write_text(json.dumps(settings))
    pipeline = apply_temperature(compiled_predict(model)(test["x"]), 1.7)

    folder = tmp_path / "test-files"  # the test split's files, as a user would hand them over
    for path, y in zip(test["paths"], test["y"]):
        dest = folder / ("fake" if y else "real") / Path(path).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(project / path, dest)
    for command, out in ((["predict", str(folder)], "p.json"),
                         (["evaluate", "--data", str(folder)], "e.json")):
        done = subprocess.run([str(BIN / "deepfake"), *command, "--model",
                               "models/baseline.keras", "--out", str(tmp_path / out)],
                              cwd=project, env=ENV, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    rows = {Path(r["file"]).relative_to(folder).as_posix(): r
            for r in json.loads((tmp_path / "p.json").read_text())}
    assert len(rows) == len(pipeline)
    for path, p, face in zip(test["paths"], pipeline, found):
        row = rows[Path(path).relative_to("data/raw").as_posix()]
        assert abs(row["p_fake"] - p) <= 1e-4 and row["face_found"] == bool(face), path
        assert row["label"] == ("fake" if p >= 0.45 else "real")
    served = json.loads((tmp_path / "e.json").read_text())["as_served"]
    ours = binary_metrics(test["y"], pipeline, 0.45)
    assert served["n"] == len(pipeline) and served["faces_found"] == int(found.sum())
    assert served["accuracy"] == pytest.approx(ours["accuracy"])
    assert served["roc_auc"] == pytest.approx(ours["roc_auc"], abs=1e-3)
