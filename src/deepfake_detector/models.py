"""Model architectures. Each takes uint8 images and outputs P(fake) (label 1 = fake)."""

from __future__ import annotations

import keras
from keras import layers


def image_input(size: int) -> keras.KerasTensor:
    # uint8 in, scaling inside: a saved model is self-contained.
    return keras.Input(shape=(size, size, 3), dtype="uint8", name="image")


def build_baseline(size: int, cfg: dict) -> keras.Model:
    """The study's baseline CNN."""
    inputs = image_input(size)
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="baseline")


BUILDERS = {"baseline": build_baseline}


def build_model(name: str, size: int, cfg: dict) -> keras.Model:
    try:
        builder = BUILDERS[cfg.get("architecture", name)]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; known: {sorted(BUILDERS)}") from None
    return builder(size, cfg)


def make_optimizer(cfg: dict) -> keras.optimizers.Optimizer:
    name = cfg.get("optimizer", "rmsprop").lower()
    kwargs = {"learning_rate": cfg.get("learning_rate", 0.001)}
    if name == "sgd" and "momentum" in cfg:
        kwargs["momentum"] = cfg["momentum"]
    try:
        return keras.optimizers.get({"class_name": name, "config": kwargs})
    except ValueError:
        raise ValueError(f"Unknown optimizer {name!r} in params") from None
