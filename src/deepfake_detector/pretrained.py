"""Resolve each model's pretrained weights into a tracked record.

The ``pretrained`` stage writes ``models/pretrained/<model>.json``: what was asked for, what
was used (a file and its sha256, or none) and why. Training reads it and tags its MLflow run
with it, and DVC re-trains a model when its record changes, so a run online and a run offline
with the same ``params.yaml`` never differ silently.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .download import sha256_file
from .models import ImagenetWeights, imagenet_weights, keras_weights_cache


def weights_url(weights: ImagenetWeights) -> str:
    """Overridable (``DEEPFAKE_WEIGHTS_URL``) so tests can serve the file from 127.0.0.1."""
    return os.environ.get("DEEPFAKE_WEIGHTS_URL") or weights.url


def _record(requested, used: Path | None, note: str = "") -> dict:
    return {"requested": str(requested), "used": str(used) if used else "none",
            "sha256": sha256_file(used) if used else None, "note": note}


def resolve(name: str, cfg: dict, root: Path) -> dict:
    """The weights record of model ``name`` from its ``train.<name>`` section ``cfg``."""
    requested = cfg["weights"]
    if requested in (None, "none", False):
        return _record("none", None)
    if requested != "imagenet":
        path = (root / str(requested)).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"weights file {requested!r} not found (set the model's "
                                    "weights to imagenet, none, or an existing .h5 path)")
        return _record(requested, path)
    weights = imagenet_weights(name, cfg)
    cached = keras_weights_cache() / weights.file
    if not cached.is_file():
        try:
            import keras

            # Keras falls back to /tmp/.keras when the folder does not exist yet
            cached.parent.mkdir(parents=True, exist_ok=True)
            keras.utils.get_file(weights.file, weights_url(weights),
                                 cache_dir=str(cached.parent.parent), cache_subdir="models")
        except Exception as exc:  # offline, blocked, or a server error: all mean "no weights"
            text = str(exc).strip()
            why = text.splitlines()[-1][:160] if text else type(exc).__name__
            app = weights.application
            note = (f"ImageNet weights for {app} are not available ({why}): "
                    f"{app} trains FROM SCRATCH. To fine-tune from ImageNet instead, put "
                    f"{weights.file} in {cached.parent}/ (Keras' cache) or set "
                    f"train.{name}.weights to its path, then run "
                    "`dvc repro -f pretrained && dvc repro`.")
            print(f"NOTE: {note}", file=sys.stderr)
            return _record("imagenet", None, note)
    return _record("imagenet", cached)
