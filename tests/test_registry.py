"""The registry on a real SQLite MLflow store in a temporary project: register, the gate,
forced promotion, the stale-champion guard, rollback, and model loading for the CLI."""

import json

import numpy as np
import pytest
import yaml
from conftest import ROOT
from helpers import jpeg_bytes

from deepfake_detector import cli, registry
from deepfake_detector.inference import load_detector
from deepfake_detector.model_settings import SETTINGS_SCHEMA_VERSION, settings_for_defaults
from deepfake_detector.pyfunc import COLUMNS

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


def params_of(root) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text())


def serving_settings(root, **fitted) -> dict:
    """models/tuned.settings.json as evaluate@tuned writes it (``fitted`` overrides)."""
    return {"schema_version": SETTINGS_SCHEMA_VERSION, "model": "tuned",
            **settings_for_defaults(params_of(root)), "threshold": 0.5, "temperature": 1.0,
            **fitted}


def new_model(root, seed: int, metrics: dict, settings: dict | None = None,
              run_params: dict | None = None) -> dict:
    """Train nothing: a small CNN with seeded weights, its settings, metrics and a run (with
    ``run_params`` as the training stage logs its params), then register."""
    import keras
    import mlflow

    from deepfake_detector import tracking
    from deepfake_detector.models import build_model
    from deepfake_detector.params_check import complete_model

    keras.utils.set_random_seed(seed)
    build_model("baseline", 64, complete_model("baseline")).save(root / "models/tuned.keras")
    (root / "models/tuned.settings.json").write_text(json.dumps(
        serving_settings(root) if settings is None else settings))
    (root / "metrics/tuned.json").write_text(json.dumps(
        {**metrics, "threshold": 0.5, "temperature": 1.0}))
    tracking.setup(root)
    with mlflow.start_run(run_name="tuned"):  # tagged as train@tuned tags its run
        mlflow.set_tags({"dvc.stage": "train@tuned", "model": "tuned",
                         "model.md5": tracking.md5_file(root / "models/tuned.keras")})
        mlflow.log_params(run_params or {})
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
        load_detector(None, project, params)
    new_model(project, 1, GOOD)
    warnings = []
    detector, uri = load_detector(None, project, params, warn=warnings.append)
    assert uri.endswith("@challenger") and "no champion yet" in warnings[0]
    assert detector.settings["threshold"] == 0.5 and detector.settings["image_size"] == 64
    registry.promote("deepfake-detector", GATE)
    _, uri = load_detector(None, project, params, warn=warnings.append)
    assert uri.endswith("@champion") and len(warnings) == 1
    _, uri = load_detector(str(project / "models/tuned.keras"), project, params)
    assert uri.endswith("tuned.keras")
    with pytest.raises(FileNotFoundError):
        load_detector("models:/deepfake-detector/9", project, params)


def test_a_model_file_is_served_with_its_settings_file_not_its_report(project):
    params = params_of(project)
    new_model(project, 1, GOOD, serving_settings(project, threshold=0.3, temperature=2.0))
    (project / "metrics/tuned.json").write_text(json.dumps({**GOOD, "threshold": 0.9}))
    detector, _ = load_detector(str(project / "models/tuned.keras"), project, params)
    assert (detector.threshold, detector.settings["temperature"]) == (0.3, 2.0)
    version = registry.list_versions("deepfake-detector")[0]["tags"]
    assert (version["threshold"], version["temperature"]) == ("0.3", "2.0")
    (project / "models/tuned.settings.json").unlink()
    warnings = []
    detector, _ = load_detector(str(project / "models/tuned.keras"), project, params,
                                warn=warnings.append)
    assert detector.threshold == 0.5 and "no models/tuned.settings.json" in warnings[0]
    with pytest.raises(FileNotFoundError, match="evaluate@tuned"):
        registry.register(project, params)


def test_a_champion_registered_before_settings_had_a_schema_still_serves(project):
    """A version as the register stage made it before models/<m>.settings.json existed: its
    settings.json has no schema_version (read as 0)."""
    import mlflow

    params = params_of(project)
    old_style = {**settings_for_defaults(params), "model": "tuned", "temperature": 1.5,
                 "threshold": 0.37}
    new_model(project, 1, GOOD, old_style)
    assert registry.promote("deepfake-detector", GATE)["promoted"]
    detector, uri = load_detector(None, project, params)
    assert uri.endswith("@champion") and "schema_version" not in detector.settings
    assert (detector.threshold, detector.settings["temperature"]) == (0.37, 1.5)
    rows = detector.score([jpeg_bytes(1)], face_crop=False)
    assert rows[0]["error"] == "" and rows[0]["label"] in ("real", "fake")
    pyfunc = mlflow.pyfunc.load_model("models:/deepfake-detector@champion")
    out = pyfunc.predict(np.zeros((2, 64, 64, 3), np.uint8))
    assert list(out.columns)[:2] == ["p_fake", "label"] and len(out) == 2


def test_settings_of_a_newer_schema_are_refused_in_one_clear_line(project):
    import keras

    from deepfake_detector.models import build_model
    from deepfake_detector.params_check import complete_model

    params = params_of(project)
    new_model(project, 1, GOOD)
    keras.utils.set_random_seed(2)
    build_model("baseline", 64, complete_model("baseline")).save(project / "models/tuned.keras")
    future = serving_settings(project, schema_version=SETTINGS_SCHEMA_VERSION + 1)
    registry._new_version(project, "deepfake-detector", "tuned", project / "models/tuned.keras",
                          future, "from-a-newer-release")
    with pytest.raises(ValueError, match=r"schema_version 2, newer than this code reads \(1\)"):
        load_detector("models:/deepfake-detector/2", project, params)
    (project / "models/tuned.settings.json").write_text(json.dumps(future))
    with pytest.raises(ValueError, match="tuned.settings.json has settings schema_version 2"):
        load_detector(str(project / "models/tuned.keras"), project, params)


def models_table(capsys) -> tuple[dict[int, str], str]:
    """`deepfake models`: its rows by version, and what it said on stderr."""
    capsys.readouterr()  # not what came before
    assert cli.main(["models"]) == 0
    out, err = capsys.readouterr()
    rows = [line.split() for line in out.splitlines()[1:]]
    return {int(row[0]): " ".join(row) for row in rows}, err


def test_promotion_records_the_gate_and_an_alias_set_around_it_is_marked(project, capsys):
    import mlflow

    client = mlflow.MlflowClient()
    new_model(project, 1, GOOD)
    client.set_registered_model_alias("deepfake-detector", "champion", "1")  # the UI's editor
    rows, err = models_table(capsys)
    assert "champion" in rows[1] and " NOT GATED " in rows[1]
    assert "alias champion on version 1 was set outside `deepfake promote`" in err
    assert "`deepfake promote --version 1` checks it" in err
    assert cli.main(["promote", "--version", "1"]) == 0  # checks it, records it
    assert client.get_model_version("deepfake-detector", "1").tags["promotion.gate"] == "passed"
    rows, err = models_table(capsys)
    assert " passed " in rows[1] and err == ""
    new_model(project, 2, {**GOOD, "roc_auc": 0.7})
    assert cli.main(["promote", "--force", "--reason", "known bias fix"]) == 0
    rows, err = models_table(capsys)
    assert "champion" in rows[2] and " forced " in rows[2] and " passed " in rows[1]
    assert err == ""
    # back to version 1 by hand: it passed the gate once, but not this move
    client.set_registered_model_alias("deepfake-detector", "champion", "1")
    rows, err = models_table(capsys)
    assert " NOT GATED " in rows[1] and " forced " in rows[2]
    assert "version 1 was set outside" in err
    assert registry.list_versions("deepfake-detector")[0]["gate"] == registry.NOT_GATED


def test_models_shows_what_each_version_was_trained_on(project, capsys):
    import mlflow

    client = mlflow.MlflowClient()
    new_model(project, 1, GOOD)  # a run without n_train and settings without trained_on
    new_model(project, 2, GOOD, run_params={"n_train": 40})
    new_model(project, 3, GOOD, serving_settings(
        project, trained_on={"source": "synthetic", "images": 7}), {"n_train": 40})
    versions = {n: client.get_model_version("deepfake-detector", str(n)) for n in (1, 2, 3)}
    day = registry._day(client.get_run(versions[2].run_id).info.start_time)
    assert registry.trained_on(versions[2]) == {"source": "synthetic", "images": 40, "date": day}
    assert [registry.trained_on(versions[n])["images"] for n in (1, 3)] == [None, 7]
    rows, _ = models_table(capsys)
    assert rows[1].endswith(f"0.9000 - {day} synthetic")
    assert rows[2].endswith(f"0.9000 40 {day} synthetic")
    for tag in ("data.images", "trained.date", "data.source"):  # a version registered before
        client.delete_model_version_tag("deepfake-detector", "1", tag)
    older = client.get_model_version("deepfake-detector", "1")
    assert registry.trained_on(older) == {"source": None, "images": None,
                                          "date": registry._day(older.creation_timestamp)}


def test_the_registered_version_says_what_it_takes_and_returns(project):
    """Its description and output signature name the pyfunc's real input and columns, and a
    `mlflow models serve` request (its own handler, without the HTTP server) is still
    answered, as is a uint8 array."""
    import base64

    import mlflow
    from mlflow.pyfunc import scoring_server

    new_model(project, 1, GOOD, run_params={"n_train": 40})
    client = mlflow.MlflowClient()
    described = client.get_model_version("deepfake-detector", "1").description
    assert "column `image` of base64-encoded image files" in described
    assert "uint8 array N×H×W×3" in described and "verdict (fake|real|inconclusive)" in described
    assert all(column in described for column in COLUMNS)
    assert "trained on synthetic: 40 images" in described and "image size 64" in described
    assert "marks it NOT GATED" in client.get_registered_model("deepfake-detector").description
    pyfunc = mlflow.pyfunc.load_model("models:/deepfake-detector/1")
    signature = pyfunc.metadata.signature
    assert signature.inputs is None and signature.outputs.input_names() == COLUMNS
    body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [
        [base64.b64encode(jpeg_bytes(1)).decode()], ["bm90IGFuIGltYWdl"]]}})
    answer = scoring_server.invocations(body, "application/json", pyfunc,
                                        pyfunc.metadata.get_input_schema())
    assert answer.status == 200, answer.response
    first, second = json.loads(answer.response)["predictions"]
    assert list(first) == COLUMNS and first["verdict"] in ("fake", "real", "inconclusive")
    assert first["error"] == "" and 0 <= first["p_fake"] <= 1 and second["error"] != ""
    assert len(pyfunc.predict(np.zeros((2, 64, 64, 3), np.uint8))) == 2
    detector, _ = load_detector("models:/deepfake-detector/1", project, params_of(project))
    assert detector.trained_on.startswith("synthetic: 40 images, trained 20")
