"""Augmentation as TensorFlow ops: each kind does what its parameters say, and augmented
batches are byte-identical from one run to the next."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from deepfake_detector import augmentation
from deepfake_detector.images import load_image
from deepfake_detector.params_check import defaults
from deepfake_detector.synthetic import SyntheticConfig, make_image

ROOT = Path(__file__).resolve().parents[1]
ALL_ON = {**defaults()["training"]["augment"], **{k: True for k in augmentation.KINDS}}


def faces(n: int = 8, size: int = 64) -> np.ndarray:
    cfg = SyntheticConfig(image_size=size)
    return np.stack([load_image(make_image(i, bool(i % 2), cfg)[0], size) for i in range(n)])


def only(kind: str, **values) -> dict:
    """``training.augment`` with one kind on, applied to every image (p = 1)."""
    return {**ALL_ON, **{k: k == kind for k in augmentation.KINDS}, "p": 1.0, **values}


def run(x: np.ndarray, cfg: dict, seed: int = 0) -> np.ndarray:
    u = augmentation.draws(seed, 0, len(x))
    return augmentation.augment_batch(x, u, cfg).numpy()


def high_frequency(x: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels."""
    x = x.astype(np.float64)
    return float(np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean())


def test_nothing_on_leaves_images_unchanged():
    x = faces()
    off = {**ALL_ON, **{k: False for k in augmentation.KINDS}}
    assert not augmentation.active(off)
    assert np.array_equal(run(x, off), x)


def test_a_flip_mirrors_about_half_the_images():
    x = faces(32)
    out = run(x, only("flip"))
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)]
    same = [np.array_equal(o, i) for o, i in zip(out, x)]
    assert all(m or s for m, s in zip(mirrored, same))
    assert 8 <= sum(mirrored) <= 24


def test_a_shift_moves_the_image_by_at_most_its_margin():
    x = faces(4)
    out = run(x, only("shift", shift_fraction=0.0625))  # 4 px at 64
    for o, i in zip(out, x):
        matches = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                   if np.array_equal(o[8:-8, 8:-8], i[8 + dy:56 + dy, 8 + dx:56 + dx])]
        assert matches, "each output is the input moved by (dy, dx) within the margin"
    assert not np.array_equal(out, x)


def test_a_shift_fraction_of_zero_shifts_nothing():
    x = faces(4)
    assert np.array_equal(run(x, only("shift", shift_fraction=0.0)), x)


def test_colour_changes_brightness_within_its_strength():
    x = faces(16)
    out = run(x, only("colour", colour_strength=0.2))
    shift = np.abs(out.astype(float).mean(axis=(1, 2, 3)) - x.astype(float).mean(axis=(1, 2, 3)))
    assert shift.max() > 2 and shift.max() < 0.2 * 255 + 1


def test_blur_and_rescale_lower_high_frequency_energy_more_as_they_grow():
    x = faces()
    weak, strong = (run(x, only("blur", blur_sigma=[s, s])) for s in (0.5, 1.5))
    assert high_frequency(strong) < high_frequency(weak) < high_frequency(x)
    mild, hard = (run(x, only("rescale", rescale_factor=[f, f])) for f in (0.8, 0.4))
    assert high_frequency(hard) < high_frequency(mild) < high_frequency(x)


def test_jpeg_at_q30_loses_more_than_at_q95():
    x = faces()
    q30, q95 = (run(x, only("jpeg", jpeg_quality=[q, q])) for q in (30, 95))
    err = [np.abs(q.astype(float) - x).mean() for q in (q30, q95)]
    assert not np.array_equal(q30, q95)
    assert err[0] > 2 * err[1] > 0


def test_jpeg_of_a_block_equals_each_image_coded_alone():
    """The block's images are coded as one stacked picture: each comes out as libjpeg codes
    it alone (same DCT grid, its own edges) when its height is whole 16-pixel MCUs; at other
    heights only the last MCU row's padding differs."""
    import tensorflow as tf

    for size in (64, 40):
        x = faces(5, size)
        block = augmentation._jpeg(tf.constant(x), tf.constant(50)).numpy()
        for image, out in zip(x, block):
            coded = tf.raw_ops.EncodeJpegVariableQuality(images=image, quality=50)
            alone = tf.io.decode_jpeg(coded, channels=3, fancy_upscaling=False).numpy()
            whole = size // 16 * 16
            assert np.array_equal(out[:whole], alone[:whole]), size
            assert np.abs(out.astype(int) - alone).mean() < 0.5, size
        assert not np.array_equal(block, x)


def test_p_chooses_the_share_of_images_each_kind_changes():
    x = faces(64)
    out = run(x, {**only("blur"), "p": 0.25})
    changed = sum(not np.array_equal(o, i) for o, i in zip(out, x))
    assert 6 <= changed <= 28


DRIVER = """
import sys, hashlib, numpy as np
from deepfake_detector.training_input import batches
from deepfake_detector.params_check import defaults
from deepfake_detector.training import configure
configure(1, {**defaults()["training"], "deterministic": True})
aug = {**defaults()["training"]["augment"], **{k: True for k in
       ("flip", "shift", "colour", "rescale", "blur", "jpeg")}}
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
y = (rng.random(100) < .5).astype(np.uint8)
h = hashlib.sha256()
ds = batches(x, y, 16, True, 7, augment=aug)
for epoch in range(2):
    for xb, yb in ds:
        h.update(xb.numpy().tobytes()); h.update(yb.numpy().tobytes())
print(h.hexdigest())
"""


def test_augmented_batches_are_byte_identical_across_runs():
    """Two processes under ``training.deterministic: true``, two epochs each: the same
    bytes."""
    outs = [subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True,
                           cwd=ROOT, check=True).stdout.split()[-1] for _ in range(2)]
    assert outs[0] == outs[1]


def test_each_epoch_draws_new_augmentations_for_the_same_row():
    u0, u1 = augmentation.draws(3, 0, 10), augmentation.draws(3, 1, 10)
    assert not np.array_equal(u0, u1)
    assert np.array_equal(u0, augmentation.draws(3, 0, 10))
