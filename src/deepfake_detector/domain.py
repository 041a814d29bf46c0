"""Whether an image looks like the model's training data, from three Mahalanobis distances to
the training images, each thresholded at a quantile of the validation images' distances
(``evaluate.domain``): of the model's own penultimate features, of an 8×8 thumbnail of the
pixels, and of the image's texture (quantiles of its Laplacian). The features say whether the
model sees what it learned from; the thumbnail catches a photograph shown to a model of
cartoon faces, which the features of a small CNN map among its training images (measured on
the built-in tuned CNN, 2026-11-28: 6.5% of the FFHQ/StyleGAN dev faces flagged by its
features, 99.8% by the thumbnail); the texture catches the reverse, flat procedural faces
shown to a model of photographs, and blurred or upscaled images (measured on the dev faces at
128 px, 2026-11-29: 99.0% of built-in faces flagged by texture, 17.6% by the thumbnail).

The fit (means, whitening matrices, Ledoit-Wolf shrunk covariances) is written into the
model's settings, so the CLI, the pyfunc and the service flag alike. The score is the larger
of the two distances over its threshold: above 1 is ``out``.
"""

from __future__ import annotations

import numpy as np

MAX_VECTOR = 256  # a penultimate vector wider than this is a flattened map: pool the map
THUMBNAIL = 8     # pixels a side of the thumbnail part (8×8×3 = 192 values)
TEXTURE_QUANTILES = (0.25, 0.5, 0.75, 0.9, 0.99)  # of |Laplacian|: how much fine detail


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


def feature_function(model, batch_size: int = 256, with_output: bool = False):
    """``x (N×H×W×3 uint8) → features (N×D)`` through one traced call; an ensemble's features
    are its members' side by side. ``with_output``: ``x → (P(fake) (N,), features)``, the
    model's own output from the same call, so scoring and the domain check take one pass."""
    import keras
    import tensorflow as tf

    sources = _members(model) or [model]
    outputs = [keras.Model(m.inputs, _feature_tensor(m))(model.inputs[0])
               if m is not model else _feature_tensor(m) for m in sources]
    extractor = keras.Model(model.inputs, [*model.outputs[:1], *outputs] if with_output
                            else outputs)
    call = tf.function(lambda batch: extractor(batch, training=False), reduce_retracing=True)

    def run(x: np.ndarray):
        p, out = [np.zeros(0, np.float32)], []
        for i in range(0, len(x), batch_size):
            parts = call(x[i:i + batch_size])
            parts = list(parts) if isinstance(parts, (list, tuple)) else [parts]
            if with_output:
                p.append(np.asarray(parts.pop(0)).reshape(-1))
            out.append(np.concatenate([np.asarray(q, np.float64) for q in parts], axis=1))
        features = np.concatenate(out) if out else np.zeros((0, 0))
        return (np.concatenate(p), features) if with_output else features

    return run


def as_arrays(fitted: dict) -> dict:
    """``fitted`` with each part's mean and whitening matrix as arrays, converted once: from
    the settings' lists that conversion took ~2.5 ms a call (2026-11-29)."""
    return {**fitted, "parts": {name: {**part, "mean": np.asarray(part["mean"], np.float64),
                                       "whiten": np.asarray(part["whiten"], np.float64)}
                                for name, part in fitted["parts"].items()}}


def _short(values: np.ndarray) -> list:
    """Six significant digits: the settings file stays small and readable."""
    return [float(f"{v:.6g}") for v in np.asarray(values).reshape(-1)]


def thumbnails(x: np.ndarray) -> np.ndarray:
    """Each image averaged down to ``THUMBNAIL``² pixels (area resampling), flattened."""
    import tensorflow as tf

    if len(x) == 0:
        return np.zeros((0, THUMBNAIL * THUMBNAIL * 3))
    small = tf.image.resize(tf.cast(x, tf.float32), (THUMBNAIL, THUMBNAIL), method="area")
    return np.asarray(small, np.float64).reshape(len(x), -1)


def texture(x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Each image's fine detail: quantiles of the absolute Laplacian of its grey levels
    (log1p), flat for a drawn face, high for a sharp photograph, low once blurred."""
    out = np.zeros((len(x), len(TEXTURE_QUANTILES)))
    for i in range(0, len(x), batch_size):  # float64 copies stay a few hundred MB
        grey = np.asarray(x[i:i + batch_size], np.float64) @ np.array([0.299, 0.587, 0.114])
        laplacian = (4 * grey[:, 1:-1, 1:-1] - grey[:, :-2, 1:-1] - grey[:, 2:, 1:-1]
                     - grey[:, 1:-1, :-2] - grey[:, 1:-1, 2:])
        flat = np.abs(laplacian).reshape(len(grey), -1)
        out[i:i + len(grey)] = np.log1p(np.quantile(flat, TEXTURE_QUANTILES, axis=1).T)
    return out


def _fit_part(train: np.ndarray, val: np.ndarray, quantile: float) -> dict:
    """Mean and whitening matrix of ``train`` (Ledoit-Wolf shrinkage keeps the covariance
    invertible with few images) and the ``quantile`` of the ``val`` distances."""
    from sklearn.covariance import LedoitWolf

    mean = train.mean(axis=0)
    covariance = LedoitWolf().fit(train - mean).covariance_
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    # a part that never varies in training (flat images' texture) still gets a finite scale
    eigenvalues = np.maximum(eigenvalues, max(eigenvalues.max() * 1e-9, 1e-12))
    part = {"size": int(mean.size), "mean": _short(mean),
            "whiten": [_short(row) for row in (eigenvectors / np.sqrt(eigenvalues)).T]}
    threshold = np.quantile(distances(val, part), quantile)
    part["threshold"] = max(float(f"{threshold:.6g}"), 1e-6)  # > 0: scores divide by it
    return part


PARTS = {"pixels": thumbnails, "texture": texture}  # beside the model's own "features"


def _parts(features, x: np.ndarray, names=("features", *PARTS)) -> dict[str, np.ndarray]:
    """The values of each named part; a model fitted before a part existed scores without it.
    ``features``: a ``feature_function``, or its values for ``x`` already computed."""
    return {name: (features(x) if callable(features) else features) if name == "features"
            else PARTS[name](x) for name in names}


def fit_domain(features, train_x: np.ndarray, val_x: np.ndarray, quantile: float) -> dict:
    """The domain fit of a model whose ``feature_function`` is ``features``: each part fitted
    on the training images, thresholded on the validation images (which the fit never saw)."""
    train, val = _parts(features, train_x), _parts(features, val_x)
    return {"quantile": quantile, "fitted_on": int(len(train_x)),
            "parts": {name: _fit_part(train[name], val[name], quantile) for name in train}}


def distances(values: np.ndarray, part: dict) -> np.ndarray:
    """Mahalanobis distance of each row of ``values`` to one part's training values."""
    centred = np.asarray(values, np.float64) - np.asarray(part["mean"])
    return np.linalg.norm(centred @ np.asarray(part["whiten"]).T, axis=1)


def scores(features, x: np.ndarray, fitted: dict) -> np.ndarray:
    """Each image's domain score: its largest distance over that part's threshold
    (``features``: a ``feature_function`` or its values for ``x``, as ``_parts`` takes)."""
    values = _parts(features, x, fitted["parts"])
    return np.max([distances(values[name], part) / part["threshold"]
                   for name, part in fitted["parts"].items()], axis=0)


def verdict(score: float) -> str:
    """``out`` past 1: the model has not seen images like this one."""
    return "out" if score > 1 else "in"
