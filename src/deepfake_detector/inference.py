"""Scoring uint8 images with a Keras model through one traced call."""

from __future__ import annotations

import numpy as np


def compiled_predict(model, batch_size: int = 256):
    """A function ``x (N×H×W×3 uint8) → P(fake) (N,)`` that runs ``model`` in batches through
    one traced call, built once and reused (LIME and occlusion score thousands of images).

    Not ``model.predict``: that sets up a predict loop on every call (~50 ms for one image
    here, against ~2.5 ms for a traced call) and does not run under
    MultiWorkerMirroredStrategy."""
    import tensorflow as tf

    call = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)

    def predict(x: np.ndarray) -> np.ndarray:
        out = [np.asarray(call(x[i:i + batch_size])).reshape(-1)
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    return predict
