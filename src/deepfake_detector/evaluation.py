"""Metrics of a binary detector (1 = fake): a threshold and a temperature fitted on validation
only, then the full metric set on test; ``run`` evaluates one pipeline model end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from .scoring import EPS, apply_temperature, label, logit  # noqa: F401 - apply_temperature: public here too
from .verdicts import decided_metrics, fit_band


def choose_threshold(y: np.ndarray, p: np.ndarray, rule, target_fake_recall: float = 0.95) -> float:
    """``max_accuracy``, ``eer`` (false positive rate = false negative rate), ``fake_recall``
    (the highest threshold that still catches ``target_fake_recall`` of the fakes), or a
    number used as it is."""
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        return float(rule)
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    thresholds = np.clip(thresholds, 0.0, 1.0)
    if rule == "eer":
        return float(thresholds[np.nanargmin(np.abs(fpr - (1 - tpr)))])
    if rule == "max_accuracy":
        pos, neg = y.sum(), len(y) - y.sum()
        accuracy = (tpr * pos + (1 - fpr) * neg) / len(y)
        return float(thresholds[np.argmax(accuracy)])
    if rule == "fake_recall":
        if not 0 < target_fake_recall <= 1:
            raise ValueError("evaluate.target_fake_recall must be in (0, 1], "
                             f"not {target_fake_recall!r}")
        # thresholds fall as tpr rises: the first that reaches the target is the highest
        return float(thresholds[np.argmax(tpr >= target_fake_recall - 1e-12)])
    raise ValueError("evaluate.threshold must be max_accuracy, eer, fake_recall or a number "
                     f"in [0, 1], not {rule!r}")


def fit_temperature(y: np.ndarray, p: np.ndarray) -> float:
    """The temperature that minimises the log loss of ``p`` on (validation) labels ``y``.
    One parameter, monotonic: ranking metrics (ROC AUC, AP) cannot change."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=np.float64)
    z = logit(p)

    def nll(log_t):
        q = np.clip(1.0 / (1.0 + np.exp(-z / np.exp(log_t))), EPS, 1 - EPS)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))

    return float(np.exp(minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded").x))


def equal_error_rate(y: np.ndarray, p: np.ndarray) -> float:
    fpr, tpr, _ = skm.roc_curve(y, p)
    i = np.nanargmin(np.abs(fpr - (1 - tpr)))
    return float((fpr[i] + 1 - tpr[i]) / 2)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |confidence − frequency| of fakes over equal-width bins, weighted by bin size."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(p[in_bin].mean() - y[in_bin].mean())
    return float(ece)


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Every metric of the contract; precision/recall/f1 are the fake class's, ``*_real`` the
    real class's."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    pred = (label(p, threshold) == "fake").astype(int)
    both = len(np.unique(y)) == 2
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y, pred, labels=[0, 1], zero_division=0)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        # the mean recall of the classes present (one class: that class's recall)
        "balanced_accuracy": float(np.mean([recall[c] for c in (0, 1) if (y == c).any()]))
        if len(y) else None,
        "precision": float(precision[1]), "recall": float(recall[1]), "f1": float(f1[1]),
        "precision_real": float(precision[0]), "recall_real": float(recall[0]),
        "f1_real": float(f1[0]),
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else None,
        "average_precision": float(skm.average_precision_score(y, p)) if both else None,
        "eer": equal_error_rate(y, p) if both else None,
        "log_loss": float(skm.log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p, pos_label=1)) if len(y) else None,
        "ece": expected_calibration_error(y, p),
        "threshold": float(threshold),
        "confusion": skm.confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "n": int(len(y)),
    }


def fit_on_validation(y_val: np.ndarray, p_val: np.ndarray, cfg: dict) -> dict:
    """Temperature (when ``cfg['calibration']`` is ``temperature``), threshold and the
    inconclusive band (``verdicts.fit_band``, ``cfg['decide']``), from validation scores
    alone: the test split never moves any of them."""
    calibration = cfg["calibration"]
    if calibration not in ("temperature", "none", None):
        raise ValueError(f"evaluate.calibration must be temperature or none, not {calibration!r}")
    temperature = fit_temperature(y_val, p_val) if calibration == "temperature" else 1.0
    calibrated = apply_temperature(p_val, temperature)
    threshold = choose_threshold(y_val, calibrated, cfg["threshold"], cfg["target_fake_recall"])
    band = fit_band(y_val, calibrated, threshold,
                    (cfg.get("decide") or {}).get("target_accuracy"))
    return {"temperature": temperature, "threshold": threshold, "band": band}


def evaluate_scores(y_val, p_val, y_test, p_test, cfg: dict, family=None,
                    out_of_domain=None) -> dict:
    """The metrics of test scores, calibrated and thresholded with what validation chose,
    with the harm metrics (``harm_metrics``), the three-way verdicts' ``coverage`` and
    ``accuracy_decided`` (out-of-domain images count as inconclusive) and
    (``cfg['bootstrap']``) intervals."""
    fitted = fit_on_validation(y_val, p_val, cfg)
    calibrated = apply_temperature(p_test, fitted["temperature"])
    result = binary_metrics(y_test, calibrated, fitted["threshold"])
    result.update(harm_metrics(y_test, calibrated, fitted["threshold"], family, out_of_domain))
    result.update(decided_metrics(y_test, calibrated, fitted["threshold"], fitted["band"],
                                  out_of_domain))
    result.update(bootstrap_intervals(y_test, calibrated, fitted["threshold"],
                                      cfg.get("bootstrap") or {}))
    result["temperature"] = fitted["temperature"]
    result["ece_uncalibrated"] = expected_calibration_error(
        np.asarray(y_test, dtype=np.float64), np.asarray(p_test, dtype=np.float64))
    return result


def harm_metrics(y: np.ndarray, p: np.ndarray, threshold: float,
                 family: np.ndarray | None = None, out_of_domain: np.ndarray | None = None) -> dict:
    """The false accusation rate ``real_called_fake`` (reals at or past ``threshold``) and,
    when the fakes' manipulation ``family`` is known, ``recall_<family>`` for each. With the
    images' ``out_of_domain`` flags: their share, and ``real_called_fake_unflagged``, the
    reals called fake with no out-of-domain warning beside the verdict (of all reals)."""
    y = np.asarray(y).astype(int)
    called_fake = np.asarray(p) >= threshold
    reals = y == 0
    out = {"real_called_fake": float(called_fake[reals].mean()) if reals.any() else None}
    if out_of_domain is not None:
        out["out_of_domain"] = float(np.mean(out_of_domain)) if len(y) else None
        out["real_called_fake_unflagged"] = (
            float((called_fake & ~out_of_domain)[reals].mean()) if reals.any() else None)
    if family is not None:
        for name in sorted({str(f) for f in family[y == 1]} - {""}):
            mine = (y == 1) & (family == name)
            out[f"recall_{name}"] = float(called_fake[mine].mean())
    return out


def condition_name(kind: str, level) -> str:
    """``jpeg_50``, ``blur_1``, ``rescale_0.5``: one severity of one perturbation (names
    MLflow accepts as metric names: no ``@``)."""
    return f"{kind}_{float(level):g}"


def robustness(predict, test: dict, perturbations: dict, fitted: dict,
               out_of_domain=None) -> dict:
    """The metrics of the test images re-shared at each severity of ``evaluate.robustness``
    (lists of JPEG qualities, blur sigmas, rescale factors; an empty list skips a kind), with
    the temperature and threshold of ``fitted``: ``{"jpeg_50": {...}, ...}``. With
    ``out_of_domain`` (images → flags), the harm metrics count the warnings too."""
    from .datasets import perturb

    shaken = {}
    for kind, levels in perturbations.items():
        for level in levels or []:
            x = perturb(test["x"], kind, level)
            p = apply_temperature(predict(x), fitted["temperature"])
            metrics = binary_metrics(test["y"], p, fitted["threshold"])
            metrics.update(harm_metrics(test["y"], p, fitted["threshold"], test.get("family"),
                                        out_of_domain(x) if out_of_domain else None))
            shaken[condition_name(kind, level)] = {
                k: v for k, v in metrics.items() if k not in ("confusion", "threshold", "n")}
    return shaken


def _auc_by_ranks(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney statistic (ties share ranks): sklearn's value, faster for
    the thousand resamples of a bootstrap."""
    from scipy.stats import rankdata

    positives = y == 1
    n_pos, n_neg = positives.sum(), len(y) - positives.sum()
    if n_pos == 0 or n_neg == 0:
        return np.nan
    ranks = rankdata(p)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_intervals(y: np.ndarray, p: np.ndarray, threshold, cfg: dict,
                        level: float = 0.95) -> dict:
    """Percentile bootstrap intervals of ROC AUC, accuracy and balanced accuracy
    (``evaluate.bootstrap``:
    ``resamples``, 0 for none, and ``seed``), as flat keys ``roc_auc_ci_low`` … so that
    ``dvc metrics show`` lists them. Images are resampled with replacement, the threshold held
    (one number, or one per image where pooled models each have their own)."""
    resamples = int(cfg.get("resamples") or 0)
    y = np.asarray(y).astype(int)
    if resamples == 0 or len(y) == 0:
        return {}
    p = np.asarray(p, dtype=np.float64)
    correct = (p >= threshold).astype(int) == y
    rng = np.random.default_rng(cfg.get("seed", 0))
    aucs, accuracies, balanced = (np.empty(resamples) for _ in range(3))
    for i in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        aucs[i], accuracies[i] = _auc_by_ranks(y[idx], p[idx]), correct[idx].mean()
        # the mean recall of the classes drawn: the verdicts' accuracy whatever the class mix
        balanced[i] = np.mean([correct[idx][y[idx] == c].mean() for c in (0, 1)
                               if (y[idx] == c).any()])
    tails = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    out = {}
    for name, values in (("roc_auc", aucs), ("accuracy", accuracies),
                         ("balanced_accuracy", balanced)):
        values = values[~np.isnan(values)]
        low, high = np.percentile(values, tails) if len(values) else (None, None)
        out[f"{name}_ci_low"] = None if low is None else float(low)
        out[f"{name}_ci_high"] = None if high is None else float(high)
    return out


def spread_sample(x: np.ndarray, most: int) -> np.ndarray:
    """At most ``most`` rows of ``x``, evenly spread (deterministic, both classes kept)."""
    return x if len(x) <= most else x[np.linspace(0, len(x) - 1, most).astype(int)]


def fit_domain_score(model, train_x, val_x, cfg: dict):
    """The domain fit of ``model`` (``domain.fit_domain`` on up to ``cfg['max_images']``
    training and validation images) and a function ``images → out-of-domain flags``;
    (None, None) when ``cfg['quantile']`` is null or no training images are given."""
    from . import domain

    if cfg.get("quantile") is None or train_x is None:
        return None, None
    features = domain.feature_function(model)
    fitted = domain.fit_domain(features, spread_sample(train_x, cfg["max_images"]),
                               spread_sample(val_x, cfg["max_images"]), cfg["quantile"])
    return fitted, lambda x: domain.scores(features, x, fitted) > 1


def run(name: str, model_file: Path, val_scores: Path, val: dict, test: dict, cfg: dict,
        serving: dict, out, train_x: np.ndarray | None = None) -> dict:
    """Evaluate one model. Its temperature and threshold are fitted on its own validation
    scores (``val_scores``, written by the stage that made it: the test split never moves
    either); then the test split is scored clean and perturbed. With ``train_x`` (training
    images) and ``val['x']`` the domain score is fitted too (``fit_domain_score``). Writes
    ``out.settings(name)`` (what serving needs: ``serving``, i.e.
    ``model_settings.trained_settings(params)``, with the fitted values), ``out.metrics(name)``
    (the report) and the plot data ``out.plot(kind, name)``; ``out`` is a
    ``paths.Workspace``. ``val`` needs ``y`` and ``paths``, ``test`` ``x`` and ``y``; ``cfg``
    is ``params['evaluate']``. Returns ``{settings, metrics, p_val, p_test}`` (the last two
    calibrated, for clip-level metrics over frames: ``video_eval.grouped_metrics``)."""
    import keras

    from . import datasets, reporting
    from .atomic import write_text
    from .model_settings import SETTINGS_SCHEMA_VERSION
    from .scoring import compiled_predict

    p_val = datasets.read_val_scores(val_scores, val["paths"])
    model = keras.models.load_model(model_file, compile=False)
    predict = compiled_predict(model)
    p_test = predict(test["x"])
    fitted, out_of_domain = fit_domain_score(model, train_x, val.get("x"),
                                             cfg.get("domain") or {})
    report = evaluate_scores(val["y"], p_val, test["y"], p_test, cfg, test.get("family"),
                             out_of_domain(test["x"]) if fitted else None)
    report.setdefault("out_of_domain", None)
    report["robustness"] = robustness(predict, test, cfg["robustness"], report, out_of_domain)
    settings = {"schema_version": SETTINGS_SCHEMA_VERSION, "model": name, **serving,
                "temperature": report["temperature"], "threshold": report["threshold"],
                "band": [report["band_low"], report["band_high"]]}
    if fitted:
        settings["domain"] = fitted
    write_text(out.settings(name), json.dumps(settings, indent=2) + "\n")
    write_text(out.metrics(name), json.dumps(report, indent=2) + "\n")
    reporting.write_plot_data(out, name, test["y"],
                              apply_temperature(p_test, report["temperature"]), report["threshold"])
    reporting.write_robustness_data(out, name, report)
    return {"settings": settings, "metrics": report,
            "p_val": apply_temperature(p_val, report["temperature"]),
            "p_test": apply_temperature(p_test, report["temperature"])}
