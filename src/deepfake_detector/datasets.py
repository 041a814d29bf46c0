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

CHUNK_BATCHES = 32


def load_split(path: Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a processed split; ``keys``: only these (the images are the large part)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in (keys or z.files)}


def jpeg_recompress(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    return Image.open(buf).convert("RGB")


def rescale(img: Image.Image, factor: float) -> Image.Image:
    """Down-scale by ``factor`` and back: the detail a shrunken re-share loses."""
    small = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
    return img.resize(small, Image.BILINEAR).resize(img.size, Image.BILINEAR)


PERTURBATIONS = {
    "jpeg": lambda img, v: jpeg_recompress(img, v),
    "blur": lambda img, v: img.filter(ImageFilter.GaussianBlur(v)),
    "rescale": rescale,
}


def perturb(x: np.ndarray, kind: str, value: float) -> np.ndarray:
    """Every image of ``x`` through one perturbation (``jpeg`` quality, ``blur`` sigma,
    ``rescale`` factor): the robustness table's inputs."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; known: {sorted(PERTURBATIONS)}")
    fn = PERTURBATIONS[kind]
    return np.stack([np.asarray(fn(Image.fromarray(img), value)) for img in x]) if len(x) else x


def augment_batch(x: np.ndarray, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """Random flip, JPEG re-compression and Gaussian blur: what re-shared images go through."""
    out = x.copy()
    for i in range(len(out)):
        if cfg["flip"] and rng.random() < 0.5:
            out[i] = out[i, :, ::-1]
        jpeg, blur = cfg["jpeg"] and rng.random() < cfg["p"], \
            cfg["blur"] and rng.random() < cfg["p"]
        if jpeg or blur:
            img = Image.fromarray(out[i])
            if blur:
                lo, hi = cfg["blur_sigma"]
                img = img.filter(ImageFilter.GaussianBlur(rng.uniform(lo, hi)))
            if jpeg:
                lo, hi = cfg["jpeg_quality"]
                img = jpeg_recompress(img, int(rng.integers(lo, hi + 1)))
            out[i] = np.asarray(img)
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

    active = augment and any(augment[k] for k in ("flip", "jpeg", "blur"))
    state = {"epoch": 0}

    def generate():
        epoch = state["epoch"]
        state["epoch"] += 1
        rng = np.random.default_rng([seed, epoch, 1])
        idx = index_batches(len(x), batch_size, shuffle, seed, epoch, shard,
                            drop_remainder)[:max_steps]
        # Whole chunks of batches per Python call: the generator's per-call overhead (and the
        # GIL it takes from the training loop) made streamed epochs uneven. rebatch() splits
        # them back into the same batches.
        for start in range(0, len(idx), CHUNK_BATCHES):
            rows = np.concatenate(idx[start:start + CHUNK_BATCHES])
            xb = augment_batch(x[rows], rng, augment) if active else x[rows]
            yield xb, y[rows].astype(np.float32)

    steps = len(index_batches(len(x), batch_size, False, seed, 0, shard, drop_remainder))
    steps = min(steps, max_steps) if max_steps else steps
    spec = (tf.TensorSpec((None, *x.shape[1:]), tf.uint8), tf.TensorSpec((None,), tf.float32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec).rebatch(batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def write_val_scores(path: Path, p: np.ndarray, paths: np.ndarray) -> None:
    """``models/<m>.val_scores.npz``: P(fake) of each validation image, with the image's path so
    that a reader can check the scores belong to its split. The one place that writes it."""
    from .atomic import atomic_path
    from .reproducible import savez

    with atomic_path(path) as tmp:
        savez(tmp, p=np.asarray(p, dtype=np.float32), paths=np.asarray(paths))


def read_val_scores(path: Path, val_paths: np.ndarray) -> np.ndarray:
    """The P(fake) of ``path``, refused when it scores other images than ``val_paths``."""
    with np.load(path, allow_pickle=False) as z:
        p, paths = z["p"], z["paths"]
    if not np.array_equal(paths, val_paths):
        raise ValueError(f"{Path(path).name} scores other images than the validation split: "
                         "run `dvc repro` to recompute it")
    return p.astype(np.float64)
