"""Reading the processed splits and streaming them to Keras."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_split(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int):
    """A tf.data pipeline fed by index: uint8 stays uint8, no copy of the split in the graph."""
    import tensorflow as tf

    n = len(x)

    def generate():
        order = np.random.default_rng(seed + generate.epoch).permutation(n) if shuffle \
            else np.arange(n)
        generate.epoch += 1
        for start in range(0, n, batch_size):
            idx = np.sort(order[start:start + batch_size])  # sorted: faster gather
            yield x[idx], y[idx].astype(np.float32)

    generate.epoch = 0
    spec = (tf.TensorSpec((None, *x.shape[1:]), tf.uint8), tf.TensorSpec((None,), tf.float32))
    steps = -(-n // batch_size)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)
