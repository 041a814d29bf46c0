"""Why a model says "fake": LIME (batched, through a compiled call), Grad-CAM, occlusion,
first-layer activations, and how well each map points at the truly manipulated pixels.

Every map is H×W for a uint8 H×W×3 image; larger means "more evidence of fake".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LIME_KERNEL_WIDTH = 0.25  # lime_image's default


@dataclass
class LimeResult:
    segments: np.ndarray  # H×W segment ids
    weights: np.ndarray  # one per segment: its local linear weight for P(fake)
    score: float  # R² of the local linear fit

    def heatmap(self) -> np.ndarray:
        return self.weights[self.segments]


def slic_segments(image: np.ndarray, n_segments: int = 50, compactness: float = 10.0,
                  sigma: float = 1.0) -> np.ndarray:
    from skimage.segmentation import slic

    return slic(image, n_segments=n_segments, compactness=compactness, sigma=sigma,
                start_label=0)


def mean_colour_image(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Each segment filled with its mean colour: LIME's ``hide_color=None`` "switched off"."""
    fudged = image.copy()
    for s in np.unique(segments):
        fudged[segments == s] = image[segments == s].mean(axis=0)
    return fudged


def lime_explain(image: np.ndarray, predict, segments: np.ndarray, num_samples: int = 1000,
                 seed: int = 0, batch_size: int = 500) -> LimeResult:
    """LIME's image explanation of P(fake), computed as ``lime_image`` does (the same samples
    for the same seed, the same kernel, distance and ridge fit through ``lime_base``) but with
    the perturbed images built in one vectorised step and scored ``batch_size`` at a time
    through ``predict`` (a compiled call), not 10 at a time through ``model.predict``."""
    import sklearn.metrics
    from lime import lime_base

    n_features = int(segments.max()) + 1
    rng = np.random.RandomState(seed)
    data = rng.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
    data[0, :] = 1  # the first sample is the image itself
    fudged = mean_colour_image(image, segments)
    p = np.concatenate([
        predict(np.where(data[i:i + batch_size][:, segments][..., None], image, fudged))
        for i in range(0, num_samples, batch_size)])
    labels = np.stack([1 - p, p], axis=1)
    distances = sklearn.metrics.pairwise_distances(
        data, data[0].reshape(1, -1), metric="cosine").ravel()
    base = lime_base.LimeBase(
        lambda d: np.sqrt(np.exp(-(d ** 2) / LIME_KERNEL_WIDTH ** 2)), random_state=rng)
    _, local_exp, score, _ = base.explain_instance_with_data(
        data, labels, distances, 1, n_features, feature_selection="auto")
    weights = np.zeros(n_features)
    for feature, weight in local_exp:
        weights[feature] = weight
    return LimeResult(segments, weights, float(score))


def _conv_layers(graph, min_size: int):
    return [layer for layer in graph.layers if "Conv" in type(layer).__name__
            and len(layer.output.shape) == 4 and (layer.output.shape[1] or 0) >= min_size]


def gradcam_function(model, min_size: int = 8):
    """``x → (maps N×H×W in [0, 1], P(fake))`` with Grad-CAM on the last convolution layer
    whose output is at least ``min_size`` pixels wide (the last one of a 64-px CNN is 4×4:
    too coarse to say which region). The class score is the logit of P(fake).

    Works for flat models and for a chain holding a nested backbone (our Xception)."""
    import keras
    import tensorflow as tf

    nested = [layer for layer in model.layers
              if isinstance(layer, keras.Model) and _conv_layers(layer, min_size)]
    if nested:
        base = nested[0]
        inner = keras.Model(base.inputs[0], [_conv_layers(base, min_size)[-1].output, base.output])

        def forward(x):
            features, h = None, x
            for layer in model.layers[1:]:  # our backbone models are chains
                if layer is base:
                    features, h = inner(h, training=False)
                else:
                    h = layer(h, training=False)
            return features, h
    else:
        convs = _conv_layers(model, min_size)
        if not convs:
            raise ValueError(f"model {model.name!r} has no convolution layer for Grad-CAM")
        both = keras.Model(model.inputs[0], [convs[-1].output, model.output])

        def forward(x):
            return both(x, training=False)

    size = model.inputs[0].shape[1:3]

    @tf.function(reduce_retracing=True)
    def cam(x):
        with tf.GradientTape() as tape:
            features, p = forward(x)
            p = tf.clip_by_value(tf.reshape(p, [-1]), 1e-7, 1 - 1e-7)
            score = tf.math.log(p) - tf.math.log(1 - p)
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        maps = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))
        maps = tf.image.resize(maps, size, method="bilinear")[..., 0]
        peak = tf.reduce_max(maps, axis=(1, 2), keepdims=True)
        return tf.math.divide_no_nan(maps, peak), p

    def run(x: np.ndarray, batch_size: int = 128):
        parts = [cam(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return (np.concatenate([np.asarray(m) for m, _ in parts]),
                np.concatenate([np.asarray(p) for _, p in parts]))

    return run


def occlusion_maps(images: np.ndarray, predict, patch: int = 8, stride: int = 4,
                   chunk: int = 8) -> np.ndarray:
    """How much P(fake) drops when a ``patch``-pixel square is filled with the image's mean
    colour, averaged over the patches covering each pixel (negative drops count as 0)."""
    n, h, w, _ = images.shape
    tops = range(0, h - patch + 1, stride)
    lefts = range(0, w - patch + 1, stride)
    positions = [(t, lf) for t in tops for lf in lefts]
    coverage = np.zeros((h, w))
    for t, lf in positions:
        coverage[t:t + patch, lf:lf + patch] += 1
    maps = np.zeros((n, h, w))
    base = predict(images)
    for start in range(0, n, chunk):
        block = images[start:start + chunk]
        occluded = np.repeat(block[:, None], len(positions), axis=1)
        fill = block.reshape(len(block), -1, 3).mean(axis=1).astype(np.uint8)
        for j, (t, lf) in enumerate(positions):
            occluded[:, j, t:t + patch, lf:lf + patch] = fill[:, None, None]
        p = predict(occluded.reshape(-1, h, w, 3)).reshape(len(block), len(positions))
        drop = np.clip(base[start:start + chunk, None] - p, 0, None)
        for j, (t, lf) in enumerate(positions):
            maps[start:start + chunk, t:t + patch, lf:lf + patch] += drop[:, j, None, None]
    return maps / np.maximum(coverage, 1)


def first_layer_activations(model, image: np.ndarray, max_maps: int = 32) -> np.ndarray:
    """The first convolution layer's output for one image: C×h×w (at most ``max_maps``)."""
    import keras

    convs = _conv_layers(model, 1)
    if not convs:
        raise ValueError(f"model {model.name!r} has no convolution layer")
    out = keras.Model(model.inputs[0], convs[0].output)(image[None], training=False)
    return np.moveaxis(np.asarray(out)[0], -1, 0)[:max_maps]


def map_scores(maps: np.ndarray, masks: np.ndarray, area: float = 0.1) -> dict:
    """Pointing game (is the map's peak inside the manipulated region?) and IoU of the map's
    top ``area`` share of pixels with the region, averaged over images with a region.
    Ties break toward the first pixel in row order, so a flat map scores as one spot."""
    hits, ious = [], []
    for heat, mask in zip(maps, masks):
        truth = mask.reshape(-1).astype(bool)
        if not truth.any():
            continue
        flat = np.asarray(heat, dtype=np.float64).reshape(-1)
        top = np.argsort(-flat, kind="stable")[:max(1, round(area * flat.size))]
        chosen = np.zeros_like(truth)
        chosen[top] = True
        hits.append(bool(truth[np.argmax(flat)]))
        ious.append((chosen & truth).sum() / (chosen | truth).sum())
    return {"pointing_game": float(np.mean(hits)) if hits else None,
            "iou": float(np.mean(ious)) if ious else None, "n": len(hits)}


def random_map_scores(masks: np.ndarray, area: float = 0.1, draws: int = 20,
                      seed: int = 0) -> dict:
    """The scores of uniformly random maps: what a method that explains nothing gets."""
    rng = np.random.default_rng(seed)
    scores = [map_scores(rng.random(masks.shape), masks, area) for _ in range(draws)]
    return {"pointing_game": float(np.mean([s["pointing_game"] for s in scores])),
            "iou": float(np.mean([s["iou"] for s in scores])), "n": scores[0]["n"]}


def choose_examples(y: np.ndarray, predicted: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` test rows, half fakes and half reals; within each class, half the model got wrong
    (when it got that many wrong) and the rest it got right. Fakes first."""
    rng = np.random.default_rng(seed)
    chosen = []
    for truth, want in ((1, n - n // 2), (0, n // 2)):
        rows = np.flatnonzero(y == truth)
        wrong = rng.permutation(rows[predicted[rows] != truth])
        right = rng.permutation(rows[predicted[rows] == truth])
        n_wrong = min(len(wrong), want // 2, want)
        n_right = min(len(right), want - n_wrong)
        n_wrong = min(len(wrong), want - n_right)
        chosen += list(right[:n_right]) + list(wrong[:n_wrong])
    return np.array(chosen, dtype=int)


def band_share(mean_map: np.ndarray, rows: tuple[float, float]) -> float:
    """The share of a map's total inside a horizontal band of rows (fractions of the height)."""
    h = mean_map.shape[0]
    top, bottom = round(rows[0] * h), round(rows[1] * h)
    total = float(mean_map.sum())
    return float(mean_map[top:bottom].sum() / total) if total > 0 else 0.0
