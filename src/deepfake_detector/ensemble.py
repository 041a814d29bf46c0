"""The ensemble: members side by side on one input, and a combiner fitted without bias.

The stacked combiner learns from member predictions on the validation split (the members
never trained on it). The threshold is chosen on validation too, so it must not see
predictions of a combiner fitted on the same rows: the stage also writes out-of-fold
predictions on validation (each row scored by a combiner fitted on the other folds), and
``evaluate`` chooses the ensemble's threshold on those. The saved combiner is fitted on
all of validation.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold

from .models import build_ensemble
from .training import predict


def fit_head(p: np.ndarray, y: np.ndarray, cfg: dict, seed: int):
    """A Dense(head_units, relu) → Dense(1, sigmoid) combiner on member probabilities."""
    import keras

    keras.utils.set_random_seed(seed)
    head = keras.Sequential([keras.Input((p.shape[1],)),
                             keras.layers.Dense(cfg["head_units"], activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])
    head.compile(optimizer=keras.optimizers.Adam(cfg["learning_rate"]),
                 loss="binary_crossentropy")
    head.fit(p, y.astype(np.float32), epochs=cfg["epochs"], batch_size=cfg["batch_size"],
             verbose=0)
    return head


def out_of_fold(p: np.ndarray, y: np.ndarray, cfg: dict, seed: int) -> np.ndarray:
    oof = np.zeros(len(y), dtype=np.float32)
    folds = StratifiedKFold(n_splits=cfg["folds"], shuffle=True, random_state=seed)
    for k, (fit_rows, held_out) in enumerate(folds.split(p, y)):
        head = fit_head(p[fit_rows], y[fit_rows], cfg, seed + k)
        oof[held_out] = np.asarray(head(p[held_out], training=False)).reshape(-1)
    return oof


def build(members: list, val: dict, cfg: dict, seed: int, size: int):
    """(ensemble model, out-of-fold validation predictions or None when nothing is fitted)."""
    method = cfg["method"]
    model = build_ensemble(members, size, method, cfg["head_units"])
    if method == "average":
        return model, None
    p_val = np.stack([predict(m, val["x"]) for m in members], axis=1)
    oof = out_of_fold(p_val, val["y"], cfg, seed)
    head = fit_head(p_val, val["y"], cfg, seed)
    hidden, output = [layer for layer in head.layers if layer.weights]
    model.get_layer("head_hidden").set_weights(hidden.get_weights())
    model.get_layer("p_fake").set_weights(output.get_weights())
    return model, oof
