"""The registry on a real SQLite MLflow store in a temporary project: register, the gate,
forced promotion, the stale-champion guard, rollback, and model loading for the CLI."""

import json

import numpy as np
import pytest
import yaml
from conftest import ROOT

from deepfake_detector import cli, registry

GOOD = {"accuracy": 0.85, "precision": 0.9, "recall": 0.8, "f1": 0.85, "roc_auc": 0.9,
        "average_precision": 0.9}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with params, data records and a store of its own (mlflow.db)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for folder in ("models", "metrics/train", "data/raw", "data/processed"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "data/raw/source.json").write_text(json.dumps({"source": "synthetic"}))
    np.savez(tmp_path / "data/processed/train.npz", y=np.zeros(2))
    yield tmp_path
    import mlflow

    mlflow.set_tracking_uri(None)


def new_model(root, seed: int, metrics: dict) -> dict:
    """Train nothing: a small CNN with seeded weights, its metrics and a run, then register."""
    import keras
    import mlflow

    from deepfake_detector import tracking
    from deepfake_detector.models import build_model

    keras.utils.set_random_seed(seed)
    build_model("baseline", 64, {}).save(root / "models/tuned.keras")
    (root / "metrics/tuned.json").write_text(json.dumps(
        {**metrics, "threshold": 0.5, "temperature": 1.0}))
    tracking.setup(root)
    with mlflow.start_run(run_name="tuned"):  # tagged as train@tuned tags its run
        mlflow.set_tags({"dvc.stage": "train@tuned", "model": "tuned",
                         "model.md5": tracking.md5_file(root / "models/tuned.keras")})
    return registry.register(root, yaml.safe_load((root / "params.yaml").read_text()))


def champion(name="deepfake-detector"):
    import mlflow

    version = registry.alias_version(mlflow.MlflowClient(), name, "champion")
    return int(version.version) if version else None


GATE = {"min_roc_auc": 0.75, "min_fake_recall": 0.6, "max_drop": 0.01}


def test_register_is_idempotent_and_versions_differ_by_weights(project):
    first = new_model(project, 1, GOOD)
    assert first["version"] == 1 and first["created"] and first["alias"] == "challenger"
    again = registry.register(project, yaml.safe_load((project / "params.yaml").read_text()))
    assert again["version"] == 1 and not again["created"]  # same weights and settings
    second = new_model(project, 2, GOOD)
    assert second["version"] == 2 and second["created"]
    versions = registry.list_versions("deepfake-detector")
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["aliases"] == ["challenger"] and versions[0]["aliases"] == []
    tags = versions[0]["tags"]
    assert tags["data.source"] == "synthetic" and tags["dvc.stage"] == "register"
    assert float(tags["test_roc_auc"]) == 0.9 and "fingerprint" in tags


def test_gate_refuses_a_worse_version_and_changes_nothing(project, capsys):
    new_model(project, 1, GOOD)
    assert registry.promote("deepfake-detector", GATE)["promoted"]
    assert champion() == 1
    new_model(project, 2, {**GOOD, "accuracy": 0.80, "roc_auc": 0.7})
    assert cli.main(["promote"]) == 1  # the CLI says why and exits 1
    said = capsys.readouterr().out
    assert "roc_auc 0.7 is below the floor 0.75 (by 0.05)" in said
    assert "accuracy 0.8000 is 0.0500 below the champion's 0.8500" in said
    assert "refused" in said and champion() == 1
    with pytest.raises(ValueError, match="--reason"):
        registry.promote("deepfake-detector", GATE, force=True)
    assert cli.main(["promote", "--force", "--reason", "hotfix for a known bias"]) == 0
    assert champion() == 2
    import mlflow

    tags = mlflow.MlflowClient().get_model_version("deepfake-detector", "2").tags
    assert tags["promotion.forced_reason"] == "hotfix for a known bias"
    assert cli.main(["rollback"]) == 0 and champion() == 1


def test_a_decision_against_a_champion_that_changed_is_not_applied(project):
    import mlflow

    new_model(project, 1, {**GOOD, "accuracy": 0.80})
    registry.promote("deepfake-detector", GATE)
    new_model(project, 2, {**GOOD, "accuracy": 0.82})  # passes against version 1
    new_model(project, 3, {**GOOD, "accuracy": 0.95})
    client = mlflow.MlflowClient()

    def someone_promotes_version_3_meanwhile():
        client.set_registered_model_alias("deepfake-detector", "champion", "3")

    result = registry.promote("deepfake-detector", GATE, version=2,
                              before_move=someone_promotes_version_3_meanwhile)
    assert not result["promoted"] and "champion changed" in result["failures"][0]
    assert champion() == 3  # the stale decision for version 2 was not applied
    # asked again, the gate now compares with version 3 and refuses
    again = registry.promote("deepfake-detector", GATE, version=2)
    assert not again["promoted"] and "below the champion's 0.9500" in again["failures"][0]


def test_load_detector_prefers_champion_then_challenger(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    with pytest.raises(FileNotFoundError, match="make repro"):
        registry.load_detector(None, project, params)
    new_model(project, 1, GOOD)
    warnings = []
    detector, uri = registry.load_detector(None, project, params, warn=warnings.append)
    assert uri.endswith("@challenger") and "no champion yet" in warnings[0]
    assert detector.settings["threshold"] == 0.5 and detector.settings["image_size"] == 64
    registry.promote("deepfake-detector", GATE)
    _, uri = registry.load_detector(None, project, params, warn=warnings.append)
    assert uri.endswith("@champion") and len(warnings) == 1
    _, uri = registry.load_detector(str(project / "models/tuned.keras"), project, params)
    assert uri.endswith("tuned.keras")
    with pytest.raises(FileNotFoundError):
        registry.load_detector("models:/deepfake-detector/9", project, params)
