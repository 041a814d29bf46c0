"""One real, tiny pipeline run shared by the whole test session: `dvc repro` in a temporary
copy of the repository (a few hundred built-in images, one epoch per model, deterministic
training), then checks on what it wrote, the MLflow runs it recorded, DVC's view of it, the
CLI on its model, and a forced second run that must give bit-identical metrics."""

import difflib
import json
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from pipeline_fixture import BIN, MODELS, reproduced_files, sh

pytestmark = pytest.mark.slow


def training_run(repo, name, monkeypatch) -> str:
    """The run that made ``models/<name>.keras``, as the stages find it (by its tags)."""
    from deepfake_detector import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo / 'mlflow.db'}")
    return tracking.training_run(repo, name)


def test_data_stages_outputs(pipeline):
    repo = pipeline["repo"]
    source = json.loads((repo / "data/raw/source.json").read_text())
    assert source["kind"] == "synthetic" and source["n_images"] == 300
    total = 0
    for split in ("train", "val", "test"):
        manifest = pd.read_csv(repo / f"data/split/{split}.csv", keep_default_na=False)
        assert list(manifest.columns) == ["path", "label", "sha256", "group"]
        with np.load(repo / f"data/processed/{split}.npz") as z:
            assert z["x"].dtype == np.uint8 and z["x"].shape[1:] == (64, 64, 3)
            assert z["paths"].tolist() == manifest["path"].tolist()
            assert np.array_equal(z["y"], manifest["label"].to_numpy())
            assert z["masks"].shape == z["x"].shape[:3]
            assert z["masks"][z["y"] == 0].max() == 0 and z["masks"][z["y"] == 1].max() == 1
        total += len(manifest)
    assert total == 300
    data = json.loads((repo / "metrics/data.json").read_text())
    assert data["total"] == {"real": 150, "fake": 150, "total": 300}
    assert (repo / "reports/figures/class_counts.png").stat().st_size > 1000


@pytest.mark.parametrize("model", MODELS)
def test_evaluate_metrics(pipeline, model):
    metrics = json.loads((pipeline["repo"] / f"metrics/{model}.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "threshold"):
        assert 0.0 <= metrics[key] <= 1.0, key
    (tn, fp), (fn, tp) = metrics["confusion"]
    assert tn + fp + fn + tp == metrics["n"] == 46
    assert metrics["accuracy"] == pytest.approx((tn + tp) / metrics["n"])
    # what serving reads: the settings evaluate@<model> fitted, beside the model
    settings = json.loads((pipeline["repo"] / f"models/{model}.settings.json").read_text())
    assert settings["schema_version"] == 1 and settings["model"] == model
    assert (settings["threshold"], settings["temperature"]) == (metrics["threshold"],
                                                                metrics["temperature"])


def test_evaluation_tables_figures_and_dvc_plots(pipeline, tmp_path):

    repo = pipeline["repo"]
    summary = pd.read_csv(repo / "metrics/summary.csv")
    assert summary["model"].tolist() == list(MODELS)
    for column in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "eer", "ece",
                   "ece_uncalibrated", "temperature", "accuracy_jpeg_50", "accuracy_blur_1",
                   "accuracy_rescale_0.5", "real_called_fake_blur_1"):
        assert summary[column].notna().all(), column
    severities = yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]["robustness"]
    conditions = [f"{kind}_{level:g}" for kind, levels in severities.items() for level in levels]
    for model in MODELS:
        metrics = json.loads((repo / f"metrics/{model}.json").read_text())
        assert metrics["temperature"] > 0
        assert list(metrics["robustness"]) == conditions
        # the built-in fakes' families are known: each one's recall, clean and perturbed
        families = {"recall_face_swap", "recall_gan_artifacts", "recall_eye_mismatch"}
        assert families <= set(metrics) and families <= set(metrics["robustness"]["blur_1"])
        for kind in ("roc", "pr", "calibration", "confusion"):
            assert (repo / f"metrics/plots/{kind}/{model}.csv").stat().st_size > 20
    for figure in ("roc", "pr", "calibration", "confusion", "robustness"):
        with Image.open(repo / f"reports/figures/{figure}.png") as img:
            img.verify()
    done = sh([str(BIN / "dvc"), "plots", "show", "--out", str(tmp_path / "plots")], repo)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    page = (tmp_path / "plots" / "index.html").read_text()
    for title in ("ROC (test split)", "precision-recall", "calibration", "confusion",
                  "learning curves", "robustness.png", "mean_gradcam.png"):
        assert title in page, title


def test_external_sets_scored_by_every_model_beside_the_test_split(pipeline):
    repo = pipeline["repo"]
    report = json.loads((repo / "metrics/external/other_seed.json").read_text())
    assert report["n"] == 40 and report["rejected"] == 0 and list(report["models"]) == list(MODELS)
    for metrics in report["models"].values():
        assert metrics["n"] == 40 and metrics["roc_auc_ci_low"] <= metrics["roc_auc_ci_high"]
        assert metrics["out_of_domain"] is not None
    table = pd.read_csv(repo / "metrics/external.csv")
    assert table[["model", "set", "domain"]].values.tolist() == [
        [m, s, d] for m in MODELS for s, d in (("test", "in"), ("other_seed", "cross"))]
    test_auc = table.query("set == 'test'").set_index("model")["roc_auc"]
    for model in MODELS:  # the in-domain row is the model's own test report
        own = json.loads((repo / f"metrics/{model}.json").read_text())["roc_auc"]
        assert test_auc[model] == pytest.approx(own, abs=1e-4)
    with Image.open(repo / "reports/figures/external.png") as img:
        img.verify()
    shown = sh([str(BIN / "dvc"), "metrics", "show", "--json"], repo)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "metrics/external/other_seed.json" in shown.stdout


def test_explain_stage_outputs(pipeline, monkeypatch):
    import re

    repo = pipeline["repo"]
    page = (repo / "reports/explain/index.html").read_text()
    images = re.findall(r"src='([^']+)'", page)
    assert len(images) == 2 * 8 + 1  # 8 examples with activations, the mean maps
    for name in images:
        with Image.open(repo / "reports/explain" / name) as img:
            img.verify()
    assert page.count("truth <b>fake</b>") == 4 and page.count("truth <b>real</b>") == 4
    assert "http" not in page  # nothing from the internet
    scores = json.loads((repo / "metrics/explain.json").read_text())
    assert scores["perfect"]["pointing_game"] == 1.0 and scores["n_fakes"] == 23
    for method in ("random", "occlusion", "lime", "gradcam_baseline", "gradcam_tuned",
                   "gradcam_xception"):
        assert 0 <= scores[method]["iou"] <= scores["perfect"]["iou"], method
    assert 0 < scores["aggregate"]["fake_gradcam_share_in_band"] < 1
    timings = json.loads((repo / "reports/timings.json").read_text())["explain"]
    assert timings["lime_images"] == 8 and timings["lime_seconds_median"] > 0
    assert "reports/timings.json" not in (repo / "dvc.lock").read_text()  # untracked
    assert " s</p>" not in page  # no wall-clock time in a DVC output
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    run_id = training_run(repo, "tuned", monkeypatch)  # found by its tags, not a stored id
    explained = [a.path for a in client.list_artifacts(run_id, "explain")]
    assert "explain/index.html" in explained and "explain/mean_gradcam.png" in explained
    assert "evaluation/roc.png" in [a.path for a in client.list_artifacts(run_id, "evaluation")]
    logged = client.get_run(run_id).data.metrics
    assert logged["explain_lime_seconds_median"] == pytest.approx(timings["lime_seconds_median"])


def test_offline_imagenet_says_once_that_xception_trains_from_scratch(pipeline):
    repo = pipeline["repo"]
    record = json.loads((repo / "models/pretrained/xception.json").read_text())
    assert record["requested"] == "imagenet" and record["used"] == "none"
    said = pipeline["log"] + pipeline["stderr"]
    assert said.count("Xception trains FROM SCRATCH") == 1
    assert "xception_weights_tf_dim_ordering_tf_kernels_notop.h5" in said
    for other in ("baseline", "tuned"):
        assert json.loads((repo / f"models/pretrained/{other}.json").read_text())["used"] == \
            "none"


def test_ensemble_shares_one_input_and_was_cross_fitted(pipeline):
    import keras

    repo = pipeline["repo"]
    model = keras.models.load_model(repo / "models/ensemble.keras")
    assert len(model.inputs) == 1
    members = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert sorted(members) == ["tuned", "xception"]
    with np.load(repo / "models/ensemble.val_scores.npz") as z, \
            np.load(repo / "data/processed/val.npz") as val:
        assert len(z["p"]) == len(val["y"]) and z["paths"].tolist() == val["paths"].tolist()
        from deepfake_detector.training import predict

        in_sample = predict(model, val["x"])
        assert not np.allclose(z["p"], in_sample)  # out-of-fold, not the final combiner's
        # evaluate@ensemble chose its threshold on those out-of-fold scores
        import yaml

        from deepfake_detector.evaluation import fit_on_validation

        cfg = yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]
        settings = json.loads((repo / "models/ensemble.settings.json").read_text())
        assert settings["threshold"] == fit_on_validation(val["y"], z["p"], cfg)["threshold"]


def test_each_trained_model_ships_the_validation_scores_of_its_saved_weights(pipeline):
    import keras

    from deepfake_detector.training import predict

    repo = pipeline["repo"]
    with np.load(repo / "data/processed/val.npz") as val:
        x, paths = val["x"], val["paths"]
    for name in ("baseline", "tuned"):
        with np.load(repo / f"models/{name}.val_scores.npz") as z:
            assert z["paths"].tolist() == paths.tolist()
            saved = keras.models.load_model(repo / f"models/{name}.keras", compile=False)
            assert np.allclose(z["p"], predict(saved, x), atol=1e-6), name


def test_mlflow_run_in_the_projects_sqlite_store(pipeline, monkeypatch):
    repo = pipeline["repo"]
    db = repo / "mlflow.db"
    assert db.exists(), "the default store is <project root>/mlflow.db"
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("deepfake-detection")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == sorted(MODELS)
    assert runs["xception"].data.tags["weights"] == "none"
    assert runs["xception"].data.params["input_size"] == "71"
    locked = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for name in MODELS:
        # no run id in a DVC output: the run is found by its tags, the model file's md5 as
        # dvc.lock records it among them
        assert "run_id" not in json.loads((repo / f"metrics/train/{name}.json").read_text())
        md5 = next(out["md5"] for stage in locked.values() for out in stage.get("outs", [])
                   if out["path"] == f"models/{name}.keras")
        assert runs[name].data.tags["model.md5"] == md5
        assert training_run(repo, name, monkeypatch) == runs[name].info.run_id
        assert "test_roc_auc" in runs[name].data.metrics
    run = runs["baseline"]
    assert run.data.params["epochs"] == "1" and run.data.params["optimizer"] == "rmsprop"
    assert run.data.tags["dvc.stage"] == "train@baseline"
    assert len(run.data.tags["git.commit"]) == 40 and len(run.data.tags["data.hash"]) == 64
    # lineage: a clean commit (dvc.lock and outputs aside) and the data md5 dvc.lock records
    assert run.data.tags["git.dirty"] == "false"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train@baseline"]
    for dep in ("data/processed/train.npz", "data/processed/val.npz"):
        recorded = next(d["md5"] for d in lock["deps"] if d["path"] == dep)
        assert run.data.tags[f"dvc.md5.{dep}"] == recorded
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [0]
    assert run.data.metrics["test_accuracy"] == pytest.approx(
        json.loads((repo / "metrics/baseline.json").read_text())["accuracy"])
    assert run.info.artifact_uri.startswith((repo / "mlartifacts").as_uri()), \
        "artifacts stay beside the database, whatever folder the stage ran in"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    with np.load(repo / "data/processed/test.npz") as z:
        x = z["x"][:4]
    out = np.asarray(model.predict(x)).reshape(-1)
    assert out.shape == (4,) and ((out >= 0) & (out <= 1)).all()
    assert sqlite3.connect(db).execute("select count(*) from runs").fetchone() == (4,)


def test_second_repro_has_nothing_to_do(pipeline):
    started = time.perf_counter()
    done = sh([str(BIN / "dvc"), "repro"], pipeline["repo"])
    seconds = time.perf_counter() - started
    assert done.returncode == 0
    assert "Data and pipelines are up to date" in done.stdout
    assert "Running stage" not in done.stdout
    print(f"no-op dvc repro: {seconds:.1f} s")
    assert seconds < 15  # 5 s on an idle machine; CI shares the cores


def test_cli_predict_on_the_trained_model(pipeline):
    repo = pipeline["repo"]
    real = repo / "data/raw/real/000000.jpg"
    (repo / "notes.txt").write_text("not an image")
    out = repo / "pred.csv"
    done = sh([str(BIN / "deepfake"), "predict", str(real), "notes.txt", "--model",
               "models/baseline.keras", "--out", str(out)], repo)
    assert done.returncode == 1, done.stderr  # one file could not be scored
    rows = pd.read_csv(out, keep_default_na=False)
    assert list(rows.columns) == ["file", "p_fake", "label", "error", "domain", "domain_score",
                                  "verdict", "reason", "face_found", "trained_on", "provenance",
                                  "provenance_verified", "provenance_trusted",
                                  "provenance_summary"]
    assert rows["provenance"].tolist() == ["none", "none"]  # read for any file it could open
    assert rows["error"].tolist() == ["", "not_image"]
    assert 0 <= float(rows["p_fake"][0]) <= 1 and rows["label"][0] in ("real", "fake")
    assert rows["verdict"][0] in ("real", "fake", "inconclusive") and rows["verdict"][1] == ""
    assert rows["trained_on"][0].startswith("synthetic: ")  # evaluate@baseline recorded it
    # a training image is in the model's domain; an unreadable file has no domain
    assert rows["domain"].tolist() == ["in", ""] and float(rows["domain_score"][0]) > 0
    done = sh([str(BIN / "deepfake"), "predict", str(real), "--model", "models/baseline.keras"],
              repo)
    table = done.stdout.splitlines()
    assert done.returncode == 0 and table[0].startswith("model trained on synthetic: ")
    assert table[1].split() == ["file", "verdict", "face", "domain", "provenance", "note"]
    assert "P(fake) " in table[2] and ", threshold " in table[2]
    done = sh([str(BIN / "deepfake"), "predict", str(real), "--model", "nope.keras"], repo)
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr
    (repo / "notes.txt").unlink()
    out.unlink()


@pytest.mark.parametrize("model", MODELS)
def test_clip_metrics_and_the_clip_rule_fitted_on_validation_clips(pipeline, model):
    repo = pipeline["repo"]
    metrics = json.loads((repo / f"metrics/{model}.json").read_text())
    settings = json.loads((repo / f"models/{model}.settings.json").read_text())
    assert metrics["video_clips"] + metrics["video_clips_unscored"] == 8  # the test clips
    assert 0 <= metrics["video_accuracy"] <= 1 and 0 <= metrics["video_roc_auc"] <= 1
    assert settings["video"] == {"top_fraction": 0.2, "threshold": metrics["video_threshold"],
                                 "chosen_on": "8 validation clips", "fps": 2.0,
                                 "max_frames": 600}


def test_deepfake_scan_on_the_built_in_clips_repeats_evaluates_clip_metrics(pipeline, tmp_path):
    """The CLI's scan and the evaluate stage share one scan and one rule: the same clips give
    the same ROC AUC and accuracy (the registered model is the tuned CNN)."""
    repo = pipeline["repo"]
    done = sh([str(BIN / "deepfake"), "scan", "data/raw/videos/test", "--out",
               str(tmp_path / "scan")], repo)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("data/raw/videos")]
    assert len(lines) == 8 and all(" scored  faces -  " in line for line in lines)
    report = json.loads((tmp_path / "scan" / "scan.json").read_text())
    metrics = json.loads((repo / "metrics/tuned.json").read_text())
    assert report["labelled"]["roc_auc"] == pytest.approx(metrics["video_roc_auc"])
    assert report["labelled"]["accuracy"] == pytest.approx(metrics["video_accuracy"])
    assert len(list((tmp_path / "scan").glob("*.timeline.png"))) == 8


def test_forced_rerun_gives_bit_identical_metrics(pipeline):
    """training.deterministic: true → `dvc repro -f` reproduces every model's metrics."""
    repo = pipeline["repo"]
    done = sh([str(BIN / "dvc"), "repro", "-f"], repo)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for model in MODELS:
        assert (repo / f"metrics/{model}.json").read_bytes() == pipeline["metrics"][model], model
    again = reproduced_files(repo)
    first = pipeline["metrics"]
    assert sorted(again) == sorted(k for k in first if k not in MODELS and k.startswith(
        ("metrics/", "reports/")))
    # the same weights and settings: the register stage reran and registered nothing new
    registered = json.loads((repo / "models/registered.json").read_text())
    assert registered["version"] == json.loads(first["models/registered.json"])["version"]
    assert (repo / "models/registered.json").read_bytes() == first["models/registered.json"]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    assert [int(v.version) for v in client.search_model_versions(
        f"name='{registered['name']}'")] == [registered["version"]]
    # no run id, timing or save date in any output: DVC's record is the same byte for byte
    lock = (repo / "dvc.lock").read_bytes()
    assert lock == pipeline["lock"], "dvc.lock changed:\n" + "".join(difflib.unified_diff(
        pipeline["lock"].decode().splitlines(True), lock.decode().splitlines(True),
        "first run", "dvc repro -f"))
    for name, content in again.items():  # LIME, Grad-CAM and the figures included
        assert content == pipeline["metrics"][name], name


def test_exp_run_with_a_changed_param_and_metrics_show(pipeline):
    repo = pipeline["repo"]
    done = sh([str(BIN / "dvc"), "exp", "run", "-S", "train.baseline.epochs=2"], repo)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Running stage 'fetch'" not in done.stdout  # only training and evaluation re-ran
    assert "train@baseline" in done.stdout
    record = json.loads((repo / "metrics/train/baseline.json").read_text())
    assert record["epochs_run"] == 2
    shown = sh([str(BIN / "dvc"), "metrics", "show"], repo)
    for model in MODELS:
        assert f"metrics/{model}.json" in shown.stdout
    assert "roc_auc" in shown.stdout
