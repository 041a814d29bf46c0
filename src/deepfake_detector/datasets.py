"""Reading the processed splits and streaming them to Keras.

Training never builds a float32 copy of a split and never puts a whole array into the graph
(``from_tensor_slices`` would): a generator hands ``tf.data`` one batch of uint8 rows at a
time, gathered by index, and the model scales inside.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def load_split(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def augment_batch(x: np.ndarray, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """Random flip, JPEG re-compression and Gaussian blur: what re-shared images go through."""
    out = x.copy()
    for i in range(len(out)):
        if cfg.get("flip") and rng.random() < 0.5:
            out[i] = out[i, :, ::-1]
        jpeg, blur = cfg.get("jpeg") and rng.random() < cfg.get("p", 0.5), \
            cfg.get("blur") and rng.random() < cfg.get("p", 0.5)
        if jpeg or blur:
            img = Image.fromarray(out[i])
            if blur:
                lo, hi = cfg.get("blur_sigma", [0.3, 1.2])
                img = img.filter(ImageFilter.GaussianBlur(rng.uniform(lo, hi)))
            if jpeg:
                lo, hi = cfg.get("jpeg_quality", [40, 95])
                buf = io.BytesIO()
                img.save(buf, "JPEG", quality=int(rng.integers(lo, hi + 1)))
                img = Image.open(buf)
            out[i] = np.asarray(img.convert("RGB"))
    return out


def index_batches(n: int, batch_size: int, shuffle: bool, seed: int, epoch: int,
                  shard: tuple[int, int] = (0, 1), drop_remainder: bool = False):
    """The row indices of each batch of one epoch (sorted inside a batch: faster gather).
    ``shard=(i, k)``: worker i of k takes every k-th batch, all workers the same count."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    starts = range(0, n - (batch_size - 1 if drop_remainder else 0), batch_size)
    starts = list(starts)
    index, count = shard
    if count > 1:
        starts = starts[:len(starts) // count * count][index::count]
    return [np.sort(order[s:s + batch_size]) for s in starts]


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int,
            augment: dict | None = None, max_steps: int | None = None,
            shard: tuple[int, int] = (0, 1), drop_remainder: bool = False):
    """A ``tf.data`` pipeline over ``(x, y)`` fed by index; a new shuffle every epoch."""
    import tensorflow as tf

    active = augment and any(augment.get(k) for k in ("flip", "jpeg", "blur"))
    state = {"epoch": 0}

    def generate():
        epoch = state["epoch"]
        state["epoch"] += 1
        rng = np.random.default_rng([seed, epoch, 1])
        for idx in index_batches(len(x), batch_size, shuffle, seed, epoch, shard,
                                 drop_remainder)[:max_steps]:
            xb = augment_batch(x[idx], rng, augment) if active else x[idx]
            yield xb, y[idx].astype(np.float32)

    steps = len(index_batches(len(x), batch_size, False, seed, 0, shard, drop_remainder))
    steps = min(steps, max_steps) if max_steps else steps
    spec = (tf.TensorSpec((None, *x.shape[1:]), tf.uint8), tf.TensorSpec((None,), tf.float32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)
