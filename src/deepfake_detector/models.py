"""Model architectures. Each takes uint8 images and outputs P(fake) (label 1 = fake).

Scaling (and resizing, for Xception) happens inside the model, so a saved model is
self-contained and every model takes the same input. Each builder reads a complete
``train.<name>`` section (``params_check.complete`` fills in the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers


@dataclass(frozen=True)
class ImagenetWeights:
    """An architecture's ImageNet weights (no top), as Keras applications publish them."""

    application: str  # the Keras application they belong to, as messages name it
    file: str  # the file name in Keras' cache ($KERAS_HOME/models)
    url: str


_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications"
_XCEPTION_FILE = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
# `weights: imagenet` means this file for the architecture; an architecture not here has none
IMAGENET_WEIGHTS = {
    "xception": ImagenetWeights("Xception", _XCEPTION_FILE,
                                f"{_KERAS_APPLICATIONS}/xception/{_XCEPTION_FILE}"),
}


def architecture(name: str, cfg: dict) -> str:
    """The builder of model ``name``: ``train.<name>.architecture``, else the name itself."""
    return cfg.get("architecture", name)


def imagenet_weights(name: str, cfg: dict) -> ImagenetWeights:
    """The ImageNet weights of model ``name``'s architecture; a clear error if it has none."""
    arch = architecture(name, cfg)
    if arch not in IMAGENET_WEIGHTS:
        raise ValueError(f"train.{name}.weights is imagenet, but the {arch} architecture has "
                         f"no ImageNet weights (only {', '.join(sorted(IMAGENET_WEIGHTS))}); "
                         "set it to none or to the path of a .h5 weights file")
    return IMAGENET_WEIGHTS[arch]


def image_input(size: int) -> keras.KerasTensor:
    return keras.Input(shape=(size, size, 3), dtype="uint8", name="image")


def scaled(inputs, cfg: dict):
    """Pixels to [0, 1]; with ``highpass: true`` also the noise residual (image minus its
    3×3 local mean) as three more channels: generator artefacts live in high frequencies."""
    x = layers.Rescaling(1 / 255.0)(inputs)
    if cfg["highpass"]:
        blurred = layers.AveragePooling2D(3, strides=1, padding="same")(x)
        residual = layers.Subtract()([x, blurred])
        x = layers.Concatenate()([x, layers.Rescaling(4.0)(residual)])
    return x


def build_baseline(size: int, cfg: dict) -> keras.Model:
    """The study's baseline CNN."""
    inputs = image_input(size)
    x = scaled(inputs, cfg)
    for block in cfg["conv"]:
        x = layers.Conv2D(block["filters"], block["kernel"], strides=block.get("stride", 1),
                          activation=block["activation"])(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="baseline")


def build_tuned(size: int, cfg: dict) -> keras.Model:
    """The study's hand-tuned CNN: conv+BN blocks, dense head (the model it deployed)."""
    bn = cfg["batch_norm"]
    inputs = image_input(size)
    x = scaled(inputs, cfg)
    for block in cfg["conv"]:
        x = layers.Conv2D(block["filters"], block["kernel"], strides=block.get("stride", 1),
                          activation=block["activation"])(x)
        x = layers.BatchNormalization(momentum=bn["momentum"], epsilon=bn["epsilon"])(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    for units in cfg["dense"]:
        x = layers.Dense(units, activation="relu")(x)
        if cfg["dropout"]:
            x = layers.Dropout(cfg["dropout"])(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="tuned")


def build_xception(size: int, cfg: dict) -> keras.Model:
    """Keras' Xception base (fine-tuned unless ``trainable_base: false``) and a dense head.

    ``cfg["weights_file"]`` is the resolved weights file (the ``weights`` stage decides it),
    or None to start from random weights.
    """
    input_size = cfg["input_size"]  # at least 71 (params_check): Xception's smallest
    weights_file = cfg.get("weights_file")  # not a parameter: the train stage adds it
    base = keras.applications.Xception(include_top=False, weights=None,
                                       input_shape=(input_size, input_size, 3), pooling="avg")
    if weights_file:
        base.load_weights(weights_file)
    base.trainable = cfg["trainable_base"]
    if cfg["base_bn_momentum"] is not None:
        # Keras' 0.99 suits ImageNet fine-tuning; from scratch on a few hundred steps the
        # moving statistics lag far behind and validation sees a constant output.
        for layer in base.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = float(cfg["base_bn_momentum"])
    inputs = image_input(size)
    x = layers.Resizing(input_size, input_size)(inputs) if input_size != size else inputs
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(x)  # Xception's own preprocessing
    # training=False keeps BatchNorm statistics put when the base is frozen (keras-io guide)
    x = base(x, training=None if base.trainable else False)
    for units in cfg["dense"]:
        x = layers.Dense(units, activation="relu")(x)
    if cfg["dropout"]:
        x = layers.Dropout(cfg["dropout"])(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="xception")


BUILDERS = {"baseline": build_baseline, "tuned": build_tuned, "xception": build_xception}


def build_model(name: str, size: int, cfg: dict) -> keras.Model:
    try:
        builder = BUILDERS[architecture(name, cfg)]
    except KeyError:  # an unknown architecture
        raise ValueError(f"Unknown model {name!r}; known: {sorted(BUILDERS)} "
                         "(or set train.<name>.architecture)") from None
    return builder(size, cfg)


def build_ensemble(members: list[keras.Model], size: int, method: str,
                   head_units: int) -> keras.Model:
    """Members side by side on one shared input, frozen; a stacked head or their mean."""
    inputs = image_input(size)
    outs = []
    for member in members:
        member.trainable = False
        outs.append(member(inputs, training=False))
    if method == "average":
        outputs = layers.Average(name="p_fake")(outs)
    elif method == "stacked":
        x = layers.Concatenate(name="member_p_fake")(outs)
        x = layers.Dense(head_units, activation="relu", name="head_hidden")(x)
        outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    else:
        raise ValueError(f"ensemble.method must be stacked or average, not {method!r}")
    return keras.Model(inputs, outputs, name="ensemble")


def make_optimizer(cfg: dict) -> keras.optimizers.Optimizer:
    name = cfg["optimizer"].lower()
    kwargs = {"learning_rate": cfg["learning_rate"]}
    if name == "sgd":
        kwargs["momentum"] = cfg["momentum"]
    try:
        return keras.optimizers.get({"class_name": name, "config": kwargs})
    except ValueError:
        raise ValueError(f"Unknown optimizer {name!r} in params") from None


def keras_weights_cache() -> Path:
    """Where Keras keeps downloaded application weights (``$KERAS_HOME/models``)."""
    import os

    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home) / "models"
