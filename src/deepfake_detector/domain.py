"""Whether an image looks like the model's training data: the Mahalanobis distance of the
model's own penultimate features to those of its training images, flagged ``out`` past a
quantile of the validation images' distances (``evaluate.domain``).

A detector trained on cartoon faces has nothing to say about a photograph; the score lets every
answer carry that warning. The fit (mean and whitening matrix, Ledoit-Wolf shrunk covariance)
is written into the model's settings, so the CLI, the pyfunc and the service flag alike.
"""

from __future__ import annotations

import numpy as np

MAX_VECTOR = 256  # a penultimate vector wider than this is a flattened map: pool the map


def _feature_tensor(model):
    """The model's penultimate features: the input of its ``p_fake`` layer when that is a
    vector of at most ``MAX_VECTOR``; otherwise (the baseline's flattened feature map) the
    last feature map averaged over its pixels."""
    import keras

    t = model.get_layer("p_fake").input
    if len(t.shape) == 2 and t.shape[-1] <= MAX_VECTOR:
        return t
    flatten = [layer for layer in model.layers if isinstance(layer, keras.layers.Flatten)]
    if not flatten or len(flatten[-1].input.shape) != 4:
        raise ValueError(f"{model.name}: no penultimate vector or feature map to score the "
                         "domain on")
    return keras.layers.GlobalAveragePooling2D()(flatten[-1].input)


def _members(model) -> list:
    """The member models of an ensemble (nested models with their own ``p_fake``)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return [m for m in nested if any(layer.name == "p_fake" for layer in m.layers)]


def feature_function(model, batch_size: int = 256):
    """``x (N×H×W×3 uint8) → features (N×D)`` through one traced call; an ensemble's features
    are its members' side by side."""
    import keras
    import tensorflow as tf

    sources = _members(model) or [model]
    extractor = keras.Model(
        model.inputs, [keras.Model(m.inputs, _feature_tensor(m))(model.inputs[0])
                       if m is not model else _feature_tensor(m) for m in sources])
    call = tf.function(lambda batch: extractor(batch, training=False), reduce_retracing=True)

    def features(x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), batch_size):
            parts = call(x[i:i + batch_size])
            parts = parts if isinstance(parts, (list, tuple)) else [parts]
            out.append(np.concatenate([np.asarray(p, np.float64) for p in parts], axis=1))
        return np.concatenate(out) if out else np.zeros((0, 0))

    return features


def _short(values: np.ndarray) -> list:
    """Six significant digits: the settings file stays small and readable."""
    return [float(f"{v:.6g}") for v in np.asarray(values).reshape(-1)]


def fit_domain(train_features: np.ndarray, val_features: np.ndarray, quantile: float) -> dict:
    """Mean and whitening matrix of the training features (Ledoit-Wolf shrinkage keeps the
    covariance invertible with few images), and the threshold: the ``quantile`` of the
    validation images' distances (images the fit never saw)."""
    from sklearn.covariance import LedoitWolf

    mean = train_features.mean(axis=0)
    covariance = LedoitWolf().fit(train_features - mean).covariance_
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.maximum(eigenvalues, eigenvalues.max() * 1e-9)
    domain = {"quantile": quantile, "features": int(mean.size),
              "fitted_on": int(len(train_features)), "mean": _short(mean),
              "whiten": [_short(row) for row in (eigenvectors / np.sqrt(eigenvalues)).T]}
    domain["threshold"] = float(f"{np.quantile(distances(val_features, domain), quantile):.6g}")
    return domain


def distances(features: np.ndarray, domain: dict) -> np.ndarray:
    """Mahalanobis distance of each row of ``features`` to the training features."""
    centred = np.asarray(features, np.float64) - np.asarray(domain["mean"])
    return np.linalg.norm(centred @ np.asarray(domain["whiten"]).T, axis=1)


def verdict(distance: float, domain: dict) -> str:
    """``out`` past the threshold: the model has not seen images like this one."""
    return "out" if distance > domain["threshold"] else "in"
