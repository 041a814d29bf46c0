"""Metrics against scikit-learn, the threshold and temperature fitted on validation only,
temperature scaling on an overconfident model, and the plot files."""

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from deepfake_detector import reporting
from deepfake_detector.evaluation import (
    apply_temperature,
    binary_metrics,
    choose_threshold,
    evaluate_scores,
    expected_calibration_error,
    fit_temperature,
)

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
    cfg = {"threshold": "max_accuracy", "calibration": "temperature"}
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
    ranked = evaluate_scores(y[val], p[val], y[test], p[test], {"threshold": 0.5})
    assert ranked["roc_auc"] == pytest.approx(skm.roc_auc_score(y[test], p[test]))
    assert ranked["ece"] < ranked["ece_uncalibrated"]
    with pytest.raises(ValueError, match="evaluate.calibration"):
        evaluate_scores(y[val], p[val], y[test], p[test], {"calibration": "platt"})


def test_plot_data_summary_and_figures(tmp_path):
    import pandas as pd

    results = {}
    scores = {}
    for name, shift in (("a", 0.0), ("b", 0.1)):
        p = np.clip(P + shift, 0, 1)
        results[name] = {**binary_metrics(Y, p, 0.5), "temperature": 1.0,
                         "ece_uncalibrated": 0.1,
                         "robustness": {"jpeg": binary_metrics(Y, P[::-1], 0.5)}}
        scores[name] = (Y, p)
        reporting.write_plot_data(tmp_path / "plots", name, Y, p, 0.5)
    roc = pd.read_csv(tmp_path / "plots/roc/a.csv")
    assert list(roc.columns) == ["fpr", "tpr"] and roc["tpr"].iloc[-1] == 1.0
    confusion = pd.read_csv(tmp_path / "plots/confusion/a.csv")
    assert len(confusion) == len(Y) and set(confusion["actual"]) == {"real", "fake"}
    assert list(pd.read_csv(tmp_path / "plots/pr/b.csv").columns) == ["recall", "precision"]
    reporting.write_summary(tmp_path / "summary.csv", results)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary["model"].tolist() == ["a", "b"] and "accuracy_jpeg" in summary.columns
    figures = reporting.write_figures(tmp_path / "fig", scores, results)
    assert sorted(f.name for f in figures) == ["calibration.png", "confusion.png", "pr.png",
                                               "robustness.png", "roc.png"]
    for figure in figures:
        with Image.open(figure) as img:
            img.verify()
