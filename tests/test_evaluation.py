"""Metrics against scikit-learn, the threshold and temperature fitted on validation only,
temperature scaling on an overconfident model, the plot files, and one model's evaluation
(``evaluation.run``) on a tiny Keras model."""

import json

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from deepfake_detector import datasets, evaluation, reporting
from deepfake_detector.evaluation import (
    apply_temperature,
    binary_metrics,
    choose_threshold,
    evaluate_scores,
    expected_calibration_error,
    fit_temperature,
)
from deepfake_detector.params_check import defaults
from deepfake_detector.paths import Workspace

EVALUATE = defaults()["evaluate"]  # the evaluate params every test starts from

Y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0])
P = np.array([.1, .4, .35, .8, .2, .9, .65, .3, .7, .95, .55, .05])


def test_metrics_on_hand_made_predictions_match_scikit_learn():
    m = binary_metrics(Y, P, 0.5)
    pred = (P >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(Y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(Y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(Y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(Y, pred))
    assert m["precision_real"] == pytest.approx(skm.precision_score(Y, pred, pos_label=0))
    assert m["recall_real"] == pytest.approx(skm.recall_score(Y, pred, pos_label=0))
    assert m["f1_real"] == pytest.approx(skm.f1_score(Y, pred, pos_label=0))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(Y, P))
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(Y, P))
    assert m["log_loss"] == pytest.approx(skm.log_loss(Y, P))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(Y, P))
    assert m["confusion"] == skm.confusion_matrix(Y, pred).tolist() == [[5, 1], [1, 5]]
    # by hand: 5 of 6 reals right, 5 of 6 fakes caught
    assert (m["accuracy"], m["recall"], m["recall_real"]) == pytest.approx((10 / 12, 5 / 6, 5 / 6))


def test_equal_error_rate_and_ece_by_hand():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([.1, .2, .3, .6, .4, .7, .8, .9])  # one real above one fake
    assert binary_metrics(y, p, 0.5)["eer"] == pytest.approx(0.25)
    y2, p2 = np.array([0, 1, 1, 1]), np.array([0.05, 0.05, 0.95, 0.95])
    # bin 0: mean p 0.05, frequency 0.5 → |0.45| × 0.5; bin 9: 0.95 vs 1 → 0.05 × 0.5
    assert expected_calibration_error(y2, p2) == pytest.approx(0.25)


def test_threshold_rules_on_validation():
    assert choose_threshold(Y, P, 0.5) == 0.5
    t = choose_threshold(Y, P, "max_accuracy")
    best = max(skm.accuracy_score(Y, P >= c) for c in np.unique(P))
    assert skm.accuracy_score(Y, P >= t) == pytest.approx(best)
    t = choose_threshold(Y, P, "fake_recall", target_fake_recall=1.0)
    assert skm.recall_score(Y, P >= t) == 1.0 and t == pytest.approx(0.3)  # the lowest fake
    with pytest.raises(ValueError, match="evaluate.threshold"):
        choose_threshold(Y, P, "median")


def test_threshold_and_temperature_come_from_validation_only():
    rng = np.random.default_rng(0)
    y_val = rng.integers(0, 2, 400)
    p_val = np.clip(0.3 * y_val + rng.uniform(0.1, 0.6, 400), 0, 1)
    y_test = rng.integers(0, 2, 400)
    p_test = np.clip(0.3 * y_test + rng.uniform(0.1, 0.6, 400), 0, 1)
    cfg = {**EVALUATE, "threshold": "max_accuracy", "calibration": "temperature"}
    clean = evaluate_scores(y_val, p_val, y_test, p_test, cfg)
    shifted = evaluate_scores(y_val, p_val, y_test, np.clip(p_test + 0.3, 0, 1), cfg)
    assert shifted["threshold"] == clean["threshold"]
    assert shifted["temperature"] == clean["temperature"]
    assert shifted["accuracy"] < clean["accuracy"] - 0.1  # the shift did reach the metrics
    # and the threshold a test-fitted rule would pick has moved
    assert choose_threshold(y_test, np.clip(p_test + 0.3, 0, 1), "max_accuracy") != \
        pytest.approx(clean["threshold"], abs=0.05)


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    import keras

    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 1)).astype("float32")
    y = (rng.random(4000) < 1 / (1 + np.exp(-x[:, 0]))).astype(int)  # true P(fake) = σ(x)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="sigmoid")])
    model.layers[0].set_weights([np.array([[4.0]]), np.array([0.0])])  # 4× too sure
    p = np.asarray(model(x)).reshape(-1)
    val, test = slice(0, 2000), slice(2000, None)
    temperature = fit_temperature(y[val], p[val])
    assert temperature == pytest.approx(4.0, rel=0.2)
    before = expected_calibration_error(y[test], p[test])
    after = expected_calibration_error(y[test], apply_temperature(p[test], temperature))
    assert before > 0.1 and after < before / 3
    ranked = evaluate_scores(y[val], p[val], y[test], p[test], {**EVALUATE, "threshold": 0.5})
    assert ranked["roc_auc"] == pytest.approx(skm.roc_auc_score(y[test], p[test]))
    assert ranked["ece"] < ranked["ece_uncalibrated"]
    with pytest.raises(ValueError, match="evaluate.calibration"):
        evaluate_scores(y[val], p[val], y[test], p[test], {**EVALUATE, "calibration": "platt"})


def test_plot_data_summary_and_figures(tmp_path):
    import pandas as pd

    out = Workspace(tmp_path)
    results = {}
    for name, shift in (("a", 0.0), ("b", 0.1)):
        p = np.clip(P + shift, 0, 1)
        results[name] = {**binary_metrics(Y, p, 0.5), "temperature": 1.0,
                         "ece_uncalibrated": 0.1,
                         "robustness": {"jpeg_50": binary_metrics(Y, P[::-1], 0.5),
                                        "jpeg_30": binary_metrics(Y, 1 - P, 0.5),
                                        "blur_1": binary_metrics(Y, P, 0.5)}}
        reporting.write_plot_data(out, name, Y, p, 0.5)
        reporting.write_robustness_data(out, name, results[name])
    roc = pd.read_csv(tmp_path / "metrics/plots/roc/a.csv")
    assert list(roc.columns) == ["fpr", "tpr"] and roc["tpr"].iloc[-1] == 1.0
    confusion = pd.read_csv(tmp_path / "metrics/plots/confusion/a.csv")
    assert len(confusion) == len(Y) and set(confusion["actual"]) == {"real", "fake"}
    assert list(pd.read_csv(tmp_path / "metrics/plots/pr/b.csv").columns) == ["recall",
                                                                             "precision"]
    reporting.write_summary(tmp_path / "summary.csv", results)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["model"].tolist() == ["a", "b"]
    assert {"accuracy_jpeg_30", "real_called_fake_blur_1", "roc_auc_ci_low"} <= set(
        summary.columns)
    # a severity curve starts at the clean point, then follows the listed levels
    curves = reporting.severity_curves(reporting.read_plot_data(out.plot("robustness", "a")),
                                       "accuracy")
    assert curves["jpeg"][0] == [100, 50.0, 30.0] and curves["blur"][0] == [0, 1.0]
    assert curves["jpeg"][1][0] == pytest.approx(results["a"]["accuracy"], abs=1e-6)
    figures = reporting.write_figures(out, results)
    assert sorted(f.name for f in figures) == ["calibration.png", "confusion.png", "pr.png",
                                               "robustness.png", "roc.png"]
    for figure in figures:
        with Image.open(figure) as img:
            img.verify()


def tiny_model(path):
    """A one-layer Keras model on 16×16 uint8 images: P(fake) rises with the red channel."""
    import keras

    inputs = keras.Input((16, 16, 3), dtype="uint8")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    dense = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.array([[8.0], [0.0], [0.0]]), np.array([-4.0])])
    model.save(path)
    return model


def test_run_writes_settings_report_and_plot_data_and_test_data_moves_neither(tmp_path):
    import pandas as pd

    from deepfake_detector.model_settings import SETTINGS_SCHEMA_VERSION
    from deepfake_detector.scoring import compiled_predict

    out = Workspace(tmp_path)
    out.models_dir.mkdir()
    model = tiny_model(out.model("tiny"))
    rng = np.random.default_rng(0)

    def split(n, seed):
        r = np.random.default_rng(seed)
        y = r.integers(0, 2, n)
        x = r.integers(0, 256, (n, 16, 16, 3)).astype(np.uint8)
        x[..., 0] = np.clip(x[..., 0].astype(int) // 2 + 100 * y[:, None, None], 0, 255)
        return {"x": x, "y": y, "paths": np.array([f"img/{seed}_{i}.jpg" for i in range(n)])}

    val, test = split(60, 1), split(40, 2)
    p_val = compiled_predict(model)(val["x"])
    datasets.write_val_scores(out.val_scores("tiny"), p_val, val["paths"])
    cfg = {"threshold": "max_accuracy", "target_fake_recall": 0.95,
           "calibration": "temperature", "robustness": {"jpeg": [50], "blur": [1.0, 2.0],
                                                         "rescale": [0.5]},
           "bootstrap": {"resamples": 200, "seed": 0}}
    serving = {"image_size": 16, "centre_crop": 1.0, "max_pixels": 1000, "temperature": 1.0,
               "threshold": 0.5, "face_crop": {"enabled": False}}
    val_labels = {"y": val["y"], "paths": val["paths"]}  # what the stage loads of validation
    first = evaluation.run("tiny", out.model("tiny"), out.val_scores("tiny"), val_labels, test,
                           cfg, serving, out)

    settings = json.loads(out.settings("tiny").read_text())
    assert settings == first["settings"]
    assert settings["schema_version"] == SETTINGS_SCHEMA_VERSION == 1
    assert settings["model"] == "tiny" and settings["image_size"] == 16
    fitted = evaluation.fit_on_validation(val["y"], p_val, cfg)
    assert settings["threshold"] == fitted["threshold"] != 0.5
    assert settings["temperature"] == fitted["temperature"] != 1.0
    report = json.loads(out.metrics("tiny").read_text())
    assert report["n"] == 40
    assert list(report["robustness"]) == ["jpeg_50", "blur_1", "blur_2", "rescale_0.5"]
    assert report["roc_auc_ci_low"] <= report["roc_auc"] <= report["roc_auc_ci_high"]
    assert report["real_called_fake"] == pytest.approx(1 - report["recall_real"])
    assert report["threshold"] == settings["threshold"]  # in the report too, for its readers
    # the inconclusive band: fitted on validation, shipped in the settings, its trade-off in
    # the report (coverage of the test images decided and their accuracy)
    assert settings["band"] == fitted["band"] == [report["band_low"], report["band_high"]]
    assert 0 <= report["coverage"] <= 1 and "accuracy_decided" in report
    for kind in ("roc", "pr", "calibration", "confusion", "robustness"):
        assert out.plot(kind, "tiny").stat().st_size > 20, kind
    shaken = pd.read_csv(out.plot("robustness", "tiny"))
    assert shaken["condition"].tolist() == ["clean", "jpeg_50", "blur_1", "blur_2",
                                            "rescale_0.5"]
    assert list(shaken.columns) == ["condition", "accuracy", "recall", "roc_auc",
                                    "real_called_fake"]
    assert shaken["accuracy"].iloc[0] == pytest.approx(report["accuracy"], abs=1e-6)

    # other test images and labels: other metrics, the same settings
    other = split(40, 3)
    other["y"] = 1 - other["y"]
    second = evaluation.run("tiny", out.model("tiny"), out.val_scores("tiny"), val_labels,
                            other, cfg, serving, out)
    assert second["metrics"]["accuracy"] != first["metrics"]["accuracy"]
    assert second["settings"] == first["settings"]
    # and the validation scores do move them
    datasets.write_val_scores(out.val_scores("tiny"), rng.uniform(size=60), val["paths"])
    moved = evaluation.run("tiny", out.model("tiny"), out.val_scores("tiny"), val_labels, test,
                           cfg, serving, out)
    assert moved["settings"]["threshold"] != first["settings"]["threshold"]

    # scores of other images than the validation split are refused
    datasets.write_val_scores(out.val_scores("tiny"), p_val, test["paths"][:60])
    with pytest.raises(ValueError, match="other images than the validation split"):
        evaluation.run("tiny", out.model("tiny"), out.val_scores("tiny"), val_labels, test, cfg,
                       serving, out)


def test_harm_metrics_count_reals_called_fake_and_each_familys_recall():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.9, 0.2, 0.3, 0.8, 0.2, 0.9, 0.9])
    family = np.array(["", "", "", "", "face_swap", "face_swap", "eye_mismatch", "eye_mismatch"])
    assert evaluation.harm_metrics(y, p, 0.5, family) == {
        "real_called_fake": 0.25, "recall_eye_mismatch": 1.0, "recall_face_swap": 0.5}
    assert evaluation.harm_metrics(y, p, 0.5) == {"real_called_fake": 0.25}
    # the one real called fake is flagged out of domain: no unflagged false accusation left
    flagged = np.array([False, True, False, False, False, False, True, True])
    assert evaluation.harm_metrics(y, p, 0.5, out_of_domain=flagged) == {
        "real_called_fake": 0.25, "out_of_domain": 0.375, "real_called_fake_unflagged": 0.0}


def test_bootstrap_intervals_hold_the_estimate_and_narrow_with_more_images():
    rng = np.random.default_rng(1)

    def scores(n):
        y = rng.integers(0, 2, n)
        return y, np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.3, n), 0, 1)

    cfg = {"resamples": 500, "seed": 3}
    widths = []
    for n in (100, 2000):
        y, p = scores(n)
        ci = evaluation.bootstrap_intervals(y, p, 0.5, cfg)
        auc = skm.roc_auc_score(y, p)
        assert ci["roc_auc_ci_low"] < auc < ci["roc_auc_ci_high"]
        accuracy = ((p >= 0.5) == y).mean()
        assert ci["accuracy_ci_low"] < accuracy < ci["accuracy_ci_high"]
        balanced = evaluation.binary_metrics(y, p, 0.5)["balanced_accuracy"]
        assert ci["balanced_accuracy_ci_low"] < balanced < ci["balanced_accuracy_ci_high"]
        widths.append(ci["roc_auc_ci_high"] - ci["roc_auc_ci_low"])
    assert widths[1] < widths[0] / 2  # narrower with 20 times the images
    assert evaluation.bootstrap_intervals(y, p, 0.5, cfg) == evaluation.bootstrap_intervals(
        y, p, 0.5, cfg)  # seeded
    assert evaluation.bootstrap_intervals(y, p, 0.5, {"resamples": 0}) == {}
    ties = np.round(p, 1)  # the rank AUC agrees with scikit-learn's, ties included
    assert evaluation._auc_by_ranks(y, ties) == pytest.approx(skm.roc_auc_score(y, ties))
