"""Training augmentation as TensorFlow ops on blocks of images: what re-shared images go
through (a small shift, a flip, colour changes, a shrink and re-enlarge, blur, JPEG
re-compression), run in tf.data's threads inside the input graph rather than per image in
Python.

The random numbers come with the rows (``draws``: one row of uniforms per image, drawn from
``(base seed, epoch)`` and indexed by the image's row), so an epoch's augmentation is the same
in every run, whatever the thread timing. Each kind is chosen per image; shift, flip and colour
take their values per image too, while the rescale factor, blur sigma and JPEG quality are
one draw per block (the block's first image): one matrix or one encode serves the whole block,
which is what makes them cheap (see ``_linear`` and ``_jpeg``).

Written for this CPU, where TensorFlow's small convolutions and per-image resizes cost
0.1–0.7 ms an image: geometry and colour are one XLA-compiled function (fused into a few
passes), shrink-and-enlarge and blur are matrix products (what TensorFlow does fastest), and
JPEG encodes the chosen images of a block stacked as one picture (libjpeg's per-call cost
paid once).

The robustness evaluation keeps its own Pillow perturbations (``datasets.perturb``): it
measures the model against the processing images meet outside, which should not be the very
code the model was trained with.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

# The order images go through: geometry, then colour, then the loss of detail a re-share
# brings, JPEG last as a platform's re-encode would be.
KINDS = ("shift", "flip", "colour", "rescale", "blur", "jpeg")
# Columns of ``draws``: a chance per kind, then the values each kind draws.
VALUES = ("shift_y", "shift_x", "brightness", "contrast", "saturation", "rescale_factor",
          "blur_sigma", "jpeg_quality")
COLUMNS = {name: i for i, name in enumerate((*KINDS, *VALUES))}
assert len(COLUMNS) == len(KINDS) + len(VALUES)
# libjpeg's largest side, and its MCU (the 16-pixel square that 4:2:0 chroma is coded in)
JPEG_MAX_SIDE, JPEG_MCU = 65535, 16


def active(cfg: dict | None) -> bool:
    """Whether ``training.augment`` turns on any kind."""
    return bool(cfg) and any(cfg[kind] for kind in KINDS)


def draws(seed: int, epoch: int, n: int) -> np.ndarray:
    """Uniforms in [0, 1) for every row of an ``n``-image split in one epoch."""
    return np.random.default_rng([seed, epoch, 2]).random((n, len(COLUMNS)), dtype=np.float32)


def block_size(height: int, batch_size: int) -> int:
    """Images augmented together: enough to pay each op's fixed cost once for many images,
    few enough that a block's JPEG mosaic stays within libjpeg's height."""
    return max(1, min(max(64, batch_size), JPEG_MAX_SIDE // _tile_height(height)))


def _reflect(index, size: int):
    """Indices past an edge mirrored back (edge pixel not repeated), as tf.pad's REFLECT;
    for a tensor or a numpy array alike."""
    return (size - 1) - abs((size - 1) - abs(index))


@functools.lru_cache(maxsize=None)
def _geometry_colour(cfg_key: tuple):
    cfg = dict(cfg_key)

    @tf.function(jit_compile=True)
    def run(images, u):
        """uint8 [b, h, w, 3] to float32 in 0–255: shift and flip as one gather, then colour
        as one fused expression. Images not chosen get neutral values (no select)."""
        batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]

        def chosen(kind):
            return u[:, COLUMNS[kind]] < (0.5 if kind == "flip" else cfg["p"])

        rows = tf.broadcast_to(tf.range(height)[None], [batch, height])
        cols = tf.broadcast_to(tf.range(width)[None], [batch, width])
        if cfg["flip"]:
            cols = tf.where(chosen("flip")[:, None], width - 1 - cols, cols)
        margin = round(cfg["shift_fraction"] * min(height, width)) if cfg["shift"] else 0
        if margin:  # a shift_fraction under half a pixel shifts nothing
            dy, dx = (tf.where(chosen("shift"), tf.cast(tf.floor(
                u[:, COLUMNS[name]] * (2 * margin + 1)), tf.int32) - margin, 0)
                for name in ("shift_y", "shift_x"))
            rows, cols = _reflect(rows + dy[:, None], height), _reflect(cols + dx[:, None],
                                                                        width)
        x = images
        if cfg["flip"] or margin:
            x = tf.gather(tf.gather(x, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        x = tf.cast(x, tf.float32)
        if cfg["colour"]:
            k = cfg["colour_strength"]
            on = chosen("colour")

            def value(name, lo, hi):
                return tf.where(on, lo + (hi - lo) * u[:, COLUMNS[name]], (lo + hi) / 2)[
                    :, None, None, None]

            # brightness b, then contrast c about the image's mean m, then saturation s about
            # each pixel's grey g: s·c·x + c·(1 − s)·g + (1 − c)·m + b, in one pass
            b, c, s = (value("brightness", -k, k) * 255.0, value("contrast", 1 - k, 1 + k),
                       value("saturation", 1 - k, 1 + k))
            grey = tf.reduce_mean(x, axis=3, keepdims=True)
            mean = tf.reduce_mean(grey, axis=[1, 2], keepdims=True)
            x = tf.clip_by_value(s * c * x + c * (1 - s) * grey + (1 - c) * mean + b,
                                 0.0, 255.0)
        return x

    return run


@functools.lru_cache(maxsize=None)
def _rescale_table(size: int, smallest: int, largest: int) -> np.ndarray:
    """[sizes, size, size]: for each small side in smallest..largest, the matrix that shrinks
    a line of ``size`` pixels to it (bilinear, antialiased) and enlarges it back, taken from
    tf.image.resize itself applied to unit impulses."""
    with tf.init_scope():
        impulses = tf.eye(size)[:, :, None, None]  # ``size`` one-pixel-wide images
        table = [tf.image.resize(tf.image.resize(impulses, [small, 1], "bilinear",
                                                 antialias=True), [size, 1], "bilinear")
                 [:, :, 0, 0].numpy().T for small in range(smallest, largest + 1)]
    return np.stack(table).astype(np.float32)


def _rescale_matrix(size: int, factor: tf.Tensor, lo: float, hi: float) -> tf.Tensor:
    smallest, largest = (max(1, round(size * f)) for f in (lo, hi))
    table = tf.constant(_rescale_table(size, smallest, largest))
    small = tf.clip_by_value(tf.cast(tf.round(size * factor), tf.int32), smallest, largest)
    return table[small - smallest]


@functools.lru_cache(maxsize=None)
def _blur_taps(size: int, radius: int) -> np.ndarray:
    """[size, taps, size]: one-hot of the (reflected) source pixel of each tap."""
    source = np.arange(size)[:, None] + np.arange(-radius, radius + 1)[None]
    return np.eye(size, dtype=np.float32)[_reflect(source, size)]


def _blur_matrix(size: int, sigma: tf.Tensor, radius: int) -> tf.Tensor:
    """The Gaussian blur of a line of ``size`` pixels as a matrix, edges reflected."""
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / tf.maximum(sigma, 1e-3)))
    kernel = kernel / tf.reduce_sum(kernel)
    return tf.tensordot(tf.constant(_blur_taps(size, radius)), kernel, [[1], [0]])


def _linear(x: tf.Tensor, row_matrix: tf.Tensor, col_matrix: tf.Tensor) -> tf.Tensor:
    """Every image of float ``x`` [k, h, w, c] filtered by ``row_matrix`` [h, h] down its
    columns and ``col_matrix`` [w, w] along its rows, as matrix products without a transpose
    (TensorFlow's transposes cost more here than the products): the rows as one broadcast
    batch product, the columns with ``col_matrix`` spread over the channels."""
    k, height, width, channels = tf.shape(x)[0], x.shape[1], x.shape[2], x.shape[3]
    y = tf.matmul(row_matrix[None], tf.reshape(x, [k, height, width * channels]))
    spread = tf.reshape(tf.einsum("ij,cd->jcid", col_matrix, tf.eye(channels)),
                        [width * channels, width * channels])
    y = tf.matmul(tf.reshape(y, [-1, width * channels]), spread)
    return tf.reshape(y, [k, height, width, channels])


def _tile_height(height: int) -> int:
    return -(-height // JPEG_MCU) * JPEG_MCU


def _jpeg(images: tf.Tensor, quality: tf.Tensor) -> tf.Tensor:
    """uint8 images [k, h, w, 3] re-compressed at one quality: stacked in one tall picture
    (libjpeg's per-call cost paid once). Each image starts on an MCU row, padded to whole MCUs
    with its own bottom row, and chroma is enlarged without "fancy" smoothing (which reads the
    next MCU row): an image of whole MCUs comes out as it would alone; otherwise only its last
    MCU row differs a little (libjpeg pads a lone image's chroma after halving it)."""
    k, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    tile = _tile_height(height)
    if tile != height:
        images = tf.gather(images, tf.minimum(tf.range(tile), height - 1), axis=1)
    mosaic = tf.reshape(images, [-1, width, 3])
    coded = tf.raw_ops.EncodeJpegVariableQuality(images=mosaic, quality=quality)
    decoded = tf.io.decode_jpeg(coded, channels=3, fancy_upscaling=False)
    return tf.reshape(decoded, [k, tile, width, 3])[:, :height]


def augment_batch(images: tf.Tensor, u: tf.Tensor, cfg: dict) -> tf.Tensor:
    """A uint8 block through the kinds ``cfg`` (``training.augment``) turns on, each image
    with chance ``cfg["p"]`` per kind (a flip: one half); ``u``: the block's rows of draws."""
    images = tf.convert_to_tensor(images)
    u = tf.convert_to_tensor(u)
    height, width = images.shape[1], images.shape[2]
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()))
    x = _geometry_colour(key)(images, u)

    def chosen(kind):
        return tf.where(u[:, COLUMNS[kind]] < cfg["p"])[:, 0]

    def block_value(name, lo, hi):
        return lo + (hi - lo) * u[0, COLUMNS[name]]

    def apply(kind, fn, x):
        picked = chosen(kind)
        return tf.cond(tf.size(picked) > 0, lambda: tf.tensor_scatter_nd_update(
            x, picked[:, None], fn(tf.gather(x, picked))), lambda: x)

    if cfg["rescale"]:
        lo, hi = cfg["rescale_factor"]
        factor = block_value("rescale_factor", lo, hi)
        x = apply("rescale", lambda sub: _linear(sub, _rescale_matrix(height, factor, lo, hi),
                                                 _rescale_matrix(width, factor, lo, hi)), x)
    if cfg["blur"]:
        lo, hi = cfg["blur_sigma"]
        sigma = block_value("blur_sigma", lo, hi)
        # three sigmas each side, less than the side (reflection needs it)
        radius = max(1, min(math.ceil(3 * hi), min(height, width) - 1))
        x = apply("blur", lambda sub: _linear(sub, _blur_matrix(height, sigma, radius),
                                              _blur_matrix(width, sigma, radius)), x)
    x = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
    if cfg["jpeg"]:
        lo, hi = cfg["jpeg_quality"]
        quality = tf.minimum(hi, tf.cast(tf.floor(block_value("jpeg_quality", lo, hi + 1)),
                                         tf.int32))
        x = apply("jpeg", lambda sub: _jpeg(sub, quality), x)
    return x
