"""Streaming batches: uint8 kept, seeded shuffles, shards, caps, augmentation."""

import numpy as np

from deepfake_detector.augmentation import KINDS
from deepfake_detector.params_check import defaults
from deepfake_detector.training_input import batches, index_batches

AUGMENT_OFF = defaults()["training"]["augment"]


def arrays(n=50):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), np.arange(n) % 2


def test_batches_keep_uint8_and_cover_every_row_once_per_epoch():
    x, y = arrays()
    ds = batches(x, y, 8, shuffle=True, seed=3)
    seen = []
    for xb, yb in ds:
        assert xb.dtype.name == "uint8" and yb.dtype.name == "float32"
        seen += [int(np.flatnonzero((x == xb.numpy()[i]).all(axis=(1, 2, 3)))[0])
                 for i in range(len(xb))]
    assert sorted(seen) == list(range(50))
    assert int(ds.cardinality()) == 7


def test_shuffle_is_seeded_and_changes_each_epoch():
    first = index_batches(50, 8, True, seed=1, epoch=0)
    assert all(np.array_equal(a, b) for a, b in
               zip(first, index_batches(50, 8, True, seed=1, epoch=0)))
    assert not all(np.array_equal(a, b) for a, b in
                   zip(first, index_batches(50, 8, True, seed=1, epoch=1)))


def test_shards_are_disjoint_and_equal():
    a = index_batches(50, 4, True, 0, 0, shard=(0, 2), drop_remainder=True)
    b = index_batches(50, 4, True, 0, 0, shard=(1, 2), drop_remainder=True)
    assert len(a) == len(b) == 6
    assert not set(np.concatenate(a)) & set(np.concatenate(b))


def test_an_epoch_with_no_full_batch_is_empty_not_an_error():
    """A worker's shard can hold no full batch (drop_remainder): zero batches, with or
    without augmentation."""
    x = np.zeros((5, 8, 8, 3), np.uint8)
    y = np.zeros(5, np.uint8)
    aug = {**defaults()["training"]["augment"], "flip": True}
    for augment in (None, aug):
        assert list(batches(x, y, 8, True, 0, augment=augment, drop_remainder=True)) == []


def test_max_steps_caps_an_epoch():
    x, y = arrays()
    assert sum(1 for _ in batches(x, y, 8, True, 0, max_steps=2)) == 2


def test_augmentation_changes_images_reproducibly():
    """Augmented batches (tensor ops, see test_augmentation.py) are the same from one pipeline
    to the next, differ from the rows, and augmentation off leaves the rows as they are."""
    x, y = arrays(8)
    cfg = AUGMENT_OFF | {"flip": True, "jpeg": True, "blur": True, "p": 1.0}

    def first_batch(augment):
        return next(iter(batches(x, y, 8, False, 5, augment=augment)))[0].numpy()

    a, b = first_batch(cfg), first_batch(cfg)
    assert a.dtype == np.uint8 and np.array_equal(a, b) and not np.array_equal(a, x)
    assert np.array_equal(first_batch(AUGMENT_OFF), x)


def test_parallel_and_one_call_give_the_same_epochs():
    """Parallel calls with tf.data's autotuning (a GPU host's default) and one call in turn
    with it off (a CPU's) change the timing only: the same batches, augmented alike, in the
    same order, epoch after epoch."""
    x, y = arrays(200)
    cfg = AUGMENT_OFF | {kind: True for kind in KINDS} | {"p": 0.5}

    def epochs(parallel):
        ds = batches(x, y, 16, True, 9, augment=cfg, parallel=parallel)
        return [np.concatenate([xb.numpy() for xb, _ in ds]) for _ in range(2)]

    one, many = epochs(False), epochs(True)
    # on a CPU tf.data's autotuner took cores the model needed: off there, on with a GPU
    assert batches(x, y, 16, True, 9, parallel=False).options().autotune.enabled is False
    assert batches(x, y, 16, True, 9, parallel=True).options().autotune.enabled is not False
    assert all(np.array_equal(a, b) for a, b in zip(one, many))
    assert not np.array_equal(one[0], one[1])  # a new shuffle and new draws each epoch
