"""Architectures: uint8 in, P(fake) out; the study's settings reach the layers."""

import keras
import numpy as np
import pytest

from deepfake_detector.models import build_ensemble, build_model
from deepfake_detector.params_check import complete_model

TUNED = complete_model("tuned", {
    "conv": [{"filters": 8, "activation": "relu"}, {"filters": 4, "activation": "tanh"}],
    "batch_norm": {"momentum": 0.95, "epsilon": 0.005}, "dense": [8, 4]})
BASELINE = complete_model("baseline")


def images(n=3, size=64):
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("name,cfg", [("baseline", {}), ("tuned", TUNED),
                                      ("xception", {"input_size": 71, "dense": [8]})])
def test_models_take_uint8_and_output_probabilities(name, cfg):
    model = build_model(name, 64, complete_model(name, cfg))
    assert model.inputs[0].dtype == "uint8"
    out = np.asarray(model(images(), training=False))
    assert out.shape == (3, 1) and ((out > 0) & (out < 1)).all()


def test_tuned_uses_the_batch_norm_and_activations_of_params():
    model = build_model("tuned", 64, TUNED)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [(b.momentum, b.epsilon) for b in bns] == [(0.95, 0.005)] * 2
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.activation.__name__ for c in convs] == ["relu", "tanh"]


def test_a_stride_2_stem_halves_the_first_feature_map():
    cfg = complete_model("tuned", {**TUNED, "conv": [{"filters": 8, "stride": 2},
                                                     {"filters": 4}]})
    model = build_model("tuned", 64, cfg)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.strides for c in convs] == [(2, 2), (1, 1)]
    assert convs[0].output.shape[1:3] == (31, 31)  # (64 - 3) // 2 + 1; 62 at stride 1
    assert np.asarray(model(images(), training=False)).shape == (3, 1)


def test_xception_base_is_fine_tuned_by_default_and_resized_inside():
    model = build_model("xception", 64, complete_model("xception", {"input_size": 80,
                                                                     "dense": [8]}))
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert base.trainable and base.input_shape[1:3] == (80, 80)
    frozen = build_model("xception", 64, complete_model("xception", {"trainable_base": False}))
    assert not next(layer for layer in frozen.layers if isinstance(layer, keras.Model)).trainable


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown model 'vit'"):
        build_model("vit", 64, {})


def test_ensemble_shares_one_input_and_freezes_members():
    a, b = build_model("baseline", 64, BASELINE), build_model("tuned", 64, TUNED)
    stacked = build_ensemble([a, b], 64, "stacked", head_units=32)
    assert len(stacked.inputs) == 1 and not a.trainable and not b.trainable
    trainable = {w.path for w in stacked.trainable_weights}
    assert trainable and all("head_hidden" in p or "p_fake" in p for p in trainable)
    average = build_ensemble([a, b], 64, "average", head_units=32)
    x = images()
    expected = (np.asarray(a(x)) + np.asarray(b(x))) / 2
    assert np.allclose(np.asarray(average(x)), expected, atol=1e-6)


def test_highpass_adds_the_noise_residual_channels():
    plain = build_model("tuned", 64, TUNED)
    highpass = build_model("tuned", 64, {**TUNED, "highpass": True})
    def first_conv(model):
        return next(la for la in model.layers if isinstance(la, keras.layers.Conv2D))

    conv = first_conv(highpass)
    assert conv.kernel.shape[2] == 6 and first_conv(plain).kernel.shape[2] == 3
    flat = np.full((1, 64, 64, 3), 128, np.uint8)  # a flat image has no residual
    stem = keras.Model(highpass.inputs, conv.input)
    assert np.allclose(np.asarray(stem(flat))[0, 8:-8, 8:-8, 3:], 0, atol=1e-6)


def test_out_of_fold_scores_come_from_heads_that_never_saw_their_rows():
    """Cross-fitting: the folds are disjoint and cover every row, and each held-out row's
    score is what a head fitted on the other folds alone gives it (not the full head)."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from deepfake_detector.ensemble import fit_head, out_of_fold

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 30)
    p = np.clip(y[:, None] * 0.3 + rng.random((60, 2)) * 0.7, 0, 1).astype(np.float32)
    cfg = {"folds": 3, "head_units": 4, "epochs": 5, "batch_size": 16, "learning_rate": 0.05}
    oof = out_of_fold(p, y, cfg, seed=7)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=7).split(p, y))
    held = np.concatenate([rows for _, rows in folds])
    assert sorted(held.tolist()) == list(range(60))  # disjoint, and every row once
    fit_rows, rows = folds[1]
    assert not set(fit_rows) & set(rows)
    head = fit_head(p[fit_rows], y[fit_rows], cfg, 7 + 1)
    assert np.allclose(oof[rows], np.asarray(head(p[rows], training=False)).reshape(-1),
                       atol=1e-5)
    full = fit_head(p, y, cfg, 7)  # the head saved with the ensemble scores differently
    assert not np.allclose(oof, np.asarray(full(p, training=False)).reshape(-1), atol=1e-3)
