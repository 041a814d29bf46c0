"""The three-way verdict: the inconclusive band fitted on validation alone, the coverage and
accuracy of the decided images on test, the verdict rule and the text people read."""

import numpy as np
import pytest

from deepfake_detector import evaluation, verdicts
from deepfake_detector.params_check import defaults

EVALUATE = defaults()["evaluate"]


def scores(n: int, seed: int, overlap: float = 0.25):
    """Labels and P(fake): fakes near 1, reals near 0, with a middle where they mix."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(np.where(y == 1, 0.5 + overlap, 0.5 - overlap) + rng.normal(0, 0.2, n), 0, 1)
    return y, p


def brute_force_band(y, p, threshold, target):
    """Every band between validation scores, by enumeration: the most images decided."""
    edges = np.unique(np.concatenate([[0, threshold, verdicts.ABOVE_ONE], p]))
    best = None
    for low in edges[edges <= threshold]:
        for high in edges[edges >= threshold]:
            decided = ~((p >= low) & (p < high))
            if decided.any() and ((p[decided] >= threshold) == y[decided]).mean() >= target:
                if best is None or decided.sum() > best:
                    best = decided.sum()
    return best


def test_band_is_the_widest_coverage_that_reaches_the_target_on_validation():
    y, p = scores(300, 0)
    threshold = 0.5
    low, high = verdicts.fit_band(y, p, threshold, 0.95)
    assert low < threshold < high  # the middle of the scores mixes: a band is needed
    decided = ~((p >= low) & (p < high))
    assert ((p[decided] >= threshold) == y[decided]).mean() >= 0.95
    assert decided.sum() == brute_force_band(y, p, threshold, 0.95)
    # a looser target keeps more images decided; null means no band at all
    low2, high2 = verdicts.fit_band(y, p, threshold, 0.8)
    assert (~((p >= low2) & (p < high2))).sum() > decided.sum()
    assert verdicts.fit_band(y, p, threshold, None) == [threshold, threshold]


def test_an_unreachable_target_makes_everything_inconclusive():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.9, 0.1, 0.8, 0.2])  # every decision wrong
    low, high = verdicts.fit_band(y, p, 0.5, 0.95)
    assert (low, high) == (0.0, verdicts.ABOVE_ONE)
    assert verdicts.decided_metrics(y, p, 0.5, [low, high]) == {
        "coverage": 0.0, "accuracy_decided": None, "band_low": 0.0,
        "band_high": verdicts.ABOVE_ONE}


def test_band_comes_from_validation_alone_and_trades_coverage_for_accuracy_on_test():
    y_val, p_val = scores(400, 1)
    y_test, p_test = scores(400, 2)
    cfg = {**EVALUATE, "calibration": "none", "decide": {"target_accuracy": 0.95}}
    report = evaluation.evaluate_scores(y_val, p_val, y_test, p_test, cfg)
    fitted = evaluation.fit_on_validation(y_val, p_val, cfg)
    assert [report["band_low"], report["band_high"]] == fitted["band"]
    # other test scores cannot move the band; other validation scores do
    shifted = evaluation.evaluate_scores(y_val, p_val, 1 - y_test, p_test, cfg)
    assert [shifted["band_low"], shifted["band_high"]] == fitted["band"]
    y_other, p_other = scores(400, 3, overlap=0.1)
    assert evaluation.fit_on_validation(y_other, p_other, cfg)["band"] != fitted["band"]
    # the trade: fewer images decided, those decided more often right
    assert 0.3 < report["coverage"] < 1.0
    assert report["accuracy_decided"] > report["accuracy"] + 0.03
    no_band = evaluation.evaluate_scores(y_val, p_val, y_test, p_test,
                                         {**cfg, "decide": {"target_accuracy": None}})
    assert no_band["coverage"] == 1.0 and no_band["accuracy_decided"] == no_band["accuracy"]
    # out-of-domain images are inconclusive too
    flagged = np.zeros(len(y_test), bool)
    flagged[:100] = True
    with_domain = evaluation.evaluate_scores(y_val, p_val, y_test, p_test, cfg,
                                             out_of_domain=flagged)
    assert with_domain["coverage"] < report["coverage"]


def test_verdict_rule_and_text():
    band = [0.4, 0.7]
    assert verdicts.verdict(0.39, 0.6, band) == ("real", "")
    assert verdicts.verdict(0.4, 0.6, band) == ("inconclusive", "in_band")
    assert verdicts.verdict(0.69, 0.6, band) == ("inconclusive", "in_band")
    assert verdicts.verdict(0.7, 0.6, band) == ("fake", "")
    assert verdicts.verdict(0.99, 0.6, band, "out") == ("inconclusive", "out_of_domain")
    assert verdicts.verdict(0.99, 0.6, None, "in") == ("fake", "")
    assert verdicts.verdict(None, 0.6, band) == (None, "")
    assert verdicts.verdict_text(0.388, 0.68, "real") == "P(fake) 0.39, threshold 0.68: real"
    assert "unlike the model's training data" in verdicts.verdict_text(
        0.9, 0.68, "inconclusive", "out_of_domain")


def test_report_lines_warn_when_the_auc_interval_holds_chance():
    m = {"n": 1600, "balanced_accuracy": 0.51, "recall_real": 0.02, "recall": 0.9888,
         "roc_auc": 0.51, "roc_auc_ci_low": 0.48, "roc_auc_ci_high": 0.54, "coverage": 0.1,
         "accuracy_decided": 0.5, "out_of_domain": 0.99}
    text = "\n".join(verdicts.report_lines(m))
    assert "balanced accuracy 0.510" in text and "real recall 0.020" in text
    assert "ROC AUC 0.510 (95% CI 0.480-0.540)" in text
    assert "indistinguishable from chance" in text
    good = "\n".join(verdicts.report_lines({**m, "roc_auc_ci_low": 0.8, "roc_auc_ci_high": 0.9}))
    assert "chance" not in good
    # ranks a little better than chance, decides no better than a coin: said too
    coin = "\n".join(verdicts.report_lines({
        **m, "roc_auc_ci_low": 0.53, "roc_auc_ci_high": 0.59,
        "balanced_accuracy_ci_low": 0.49, "balanced_accuracy_ci_high": 0.54}))
    assert "real/fake calls are indistinguishable from chance" in coin
    assert "95% CI 0.490-0.540, contains 0.5" in coin
    assert "near chance on this data: even the top of the ROC AUC interval (0.590)" in coin
    assert "near chance" not in good
    worse = "\n".join(verdicts.report_lines({**m, "roc_auc_ci_low": 0.2, "roc_auc_ci_high": 0.3}))
    assert "worse than chance" in worse
    # only real photographs: no AUC, and no "fake recall 0.000" that reads like a finding
    one_class = evaluation.binary_metrics(np.zeros(10), np.linspace(0, 0.4, 10), 0.5)
    assert one_class["balanced_accuracy"] == 1.0 and one_class["roc_auc"] is None
    text = "\n".join(verdicts.report_lines(one_class))
    assert "fake recall n/a (no fake images)" in text and "only one class" in text
    no_interval = "\n".join(verdicts.report_lines({**m, "roc_auc_ci_low": None,
                                                     "roc_auc_ci_high": None}))
    assert "no interval" in no_interval


@pytest.mark.parametrize("n", [1, 2, 50])
def test_band_on_tiny_validation_sets_matches_brute_force(n):
    y, p = scores(n, 10 + n)
    low, high = verdicts.fit_band(y, p, 0.5, 0.9)
    decided = ~((p >= low) & (p < high))
    assert decided.sum() == (brute_force_band(y, p, 0.5, 0.9) or 0)


def test_tied_and_saturated_scores_move_in_or_out_of_the_band_together():
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(2, 30))
        y = rng.integers(0, 2, n)
        p = np.round(rng.random(n), 1)  # many ties, and exact 0.0 and 1.0
        low, high = verdicts.fit_band(y, p, 0.5, 0.9)
        decided = ~((p >= low) & (p < high))
        assert decided.sum() == (brute_force_band(y, p, 0.5, 0.9) or 0), (y, p, low, high)
        if decided.any():
            assert ((p[decided] >= 0.5) == y[decided]).mean() >= 0.9
    assert verdicts.fit_band([0, 1, 1], [0.7, 0.7, 0.9], 0.5, 0.95) == [0.5, 0.8]
    assert verdicts.fit_band([1, 0, 1], [0.7, 0.7, 0.9], 0.5, 0.95) == [0.5, 0.8]
    with pytest.raises(ValueError, match="needs validation scores"):
        verdicts.fit_band([], [], 0.5, 0.95)
    assert verdicts.verdict(float("nan"), 0.5, [0.4, 0.6]) == (None, "")
    assert verdicts.verdict_text(0.6799, 0.68, "real") == "P(fake) 0.6799, threshold 0.6800: real"
