"""Finding a model's training run by its tags, on a real SQLite MLflow store."""

import pytest
import yaml

from deepfake_detector import tracking


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with a model file and a store of its own (mlflow.db)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # any default artifact folder lands here
    (tmp_path / "models").mkdir()
    (tmp_path / "models/tuned.keras").write_bytes(b"the tuned model's bytes")
    yield tmp_path
    import mlflow

    mlflow.set_tracking_uri(None)


def _run(mlflow, tags: dict, status: str = "FINISHED") -> str:
    with mlflow.start_run(run_name="tuned") as run:
        mlflow.set_tags(tags)
    mlflow.MlflowClient().set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_the_newest_finished_run_of_this_very_file_is_found(project):
    mlflow = tracking.setup(project)
    md5 = tracking.md5_file(project / "models/tuned.keras")
    tags = {"dvc.stage": "train@tuned", "model": "tuned", "model.md5": md5}
    _run(mlflow, tags)
    newest = _run(mlflow, tags)
    _run(mlflow, {**tags, "model.md5": "0" * 32})  # another file's run
    _run(mlflow, tags, status="FAILED")
    _run(mlflow, {**tags, "model": "baseline"})
    assert tracking.training_run(project, "tuned") == newest


def test_without_a_matching_run_one_is_restored_and_found_again(project):
    mlflow = tracking.setup(project)
    _run(mlflow, {"dvc.stage": "train@tuned", "model": "tuned", "model.md5": "0" * 32})
    (project / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "train@tuned": {"cmd": "python stages/train.py tuned",
                        "outs": [{"path": "models/tuned.keras", "md5": "x"}]}}}))
    restored = tracking.training_run(project, "tuned")
    run = mlflow.get_run(restored)
    assert run.info.status == "FINISHED" and run.info.run_name == "tuned"
    assert run.data.tags["restored"] == "true" and run.data.tags["model"] == "tuned"
    assert run.data.tags["dvc.stage"] == "train@tuned"  # the stage dvc.lock names
    assert run.data.tags["model.md5"] == tracking.md5_file(project / "models/tuned.keras")
    assert run.data.tags["git.commit"] == "none"  # not a git checkout
    assert tracking.training_run(project, "tuned") == restored  # no second restored run
    assert len(mlflow.search_runs(experiment_names=[tracking.EXPERIMENT],
                                  output_format="list")) == 2


def test_git_dirty_ignores_outputs_a_first_run_deletes_but_not_code(tmp_path):
    """A fresh clone has no dvc.lock: DVC deleting a committed output (foreach stage
    included) before its stage runs is not a change of code or params; an edited tracked
    source file is."""
    import shutil
    import subprocess
    from pathlib import Path

    shutil.copy(Path(__file__).resolve().parents[1] / "dvc.yaml", tmp_path / "dvc.yaml")
    for rel in ("metrics/train/tuned.json", "metrics/summary.csv", "data/split/train.csv",
                "src/code.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("committed\n")
    who = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for cmd in (["init", "-q"], ["add", "-A"], [*who, "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True)
    for rel in ("metrics/train/tuned.json", "metrics/summary.csv", "data/split/train.csv"):
        (tmp_path / rel).unlink()
    assert not (tmp_path / "dvc.lock").exists()
    assert tracking.git_changes(tmp_path) == []
    (tmp_path / "src/code.py").write_text("edited\n")
    assert tracking.git_changes(tmp_path) == ["src/code.py"]
    assert tracking.git_tags(tmp_path)["git.dirty"] == "true"


def test_the_experiment_is_a_model_training_one_new_or_made_before(project, monkeypatch):
    """MLflow 3's experiment kind tag: set on a new experiment and on one made before the
    tag was set; a kind someone chose since (in the UI) is kept."""
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri(project))
    old = mlflow.create_experiment(tracking.EXPERIMENT)  # as an older checkout made it
    assert tracking.KIND_TAG not in mlflow.get_experiment(old).tags
    tracking.setup(project)
    assert mlflow.get_experiment(old).tags[tracking.KIND_TAG] == "custom_model_development"
    mlflow.MlflowClient().set_experiment_tag(old, tracking.KIND_TAG, "genai_development")
    tracking.setup(project)
    assert mlflow.get_experiment(old).tags[tracking.KIND_TAG] == "genai_development"
    (project / "fresh").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # set_tracking_uri exported it
    tracking.setup(project / "fresh")  # a new store: the experiment is created with it
    new = mlflow.get_experiment_by_name(tracking.EXPERIMENT)
    assert new.tags[tracking.KIND_TAG] == "custom_model_development"
    assert new.artifact_location.endswith("fresh/mlartifacts")
