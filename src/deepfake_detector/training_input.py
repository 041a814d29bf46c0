"""The input that feeds training: the uint8 images read once into TensorFlow's memory
(``images_in_graph``), and a tf.data pipeline (``batches``) that gathers each batch by index
and augments it with TensorFlow ops (``augmentation``) in tf.data's threads. Training never
builds a float32 copy of a split; the model scales inside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def images_in_graph(source: Path | np.ndarray, chunk_rows: int = 1024):
    """A split's uint8 images held by TensorFlow, once: a variable filled a chunk of rows at
    a time, from the ``.npz`` file itself (``x.npy`` read as a stream, never a whole numpy
    copy) or from an array. tf.data then gathers batches from it without Python; handing
    TensorFlow a numpy array would copy it whole (``convert_to_tensor`` never shares it)."""
    import zipfile

    import tensorflow as tf

    def fill(shape, chunks):
        images = tf.Variable(lambda: tf.zeros(shape, tf.uint8), trainable=False,
                             dtype=tf.uint8)
        for start, rows in chunks:  # scatter_update writes in place (slice assign copies)
            images.scatter_update(tf.IndexedSlices(
                tf.constant(rows), tf.range(start, start + len(rows), dtype=tf.int64)))
        return images

    if isinstance(source, np.ndarray):
        return fill(source.shape, ((s, source[s:s + chunk_rows])
                                   for s in range(0, len(source), chunk_rows)))
    with zipfile.ZipFile(source) as archive, archive.open("x.npy") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(fh)
        if fortran_order or dtype != np.uint8 or len(shape) != 4:
            raise ValueError(f"{source}: x is not a C-ordered uint8 image array; run "
                             "`dvc repro -f preprocess` to rewrite it")
        row_bytes = int(np.prod(shape[1:]))

        def chunks():
            for start in range(0, shape[0], chunk_rows):
                count = min(chunk_rows, shape[0] - start)
                data = fh.read(count * row_bytes)
                if len(data) != count * row_bytes:
                    raise ValueError(f"{source}: x.npy is truncated; run `dvc repro -f "
                                     "preprocess` to rewrite it")
                yield start, np.frombuffer(data, np.uint8).reshape(count, *shape[1:])

        return fill(shape, chunks())


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


def batches(x, y: np.ndarray, batch_size: int, shuffle: bool, seed: int,
            augment: dict | None = None, max_steps: int | None = None,
            shard: tuple[int, int] = (0, 1), drop_remainder: bool = False,
            parallel: bool | None = None):
    """A ``tf.data`` pipeline over ``(x, y)``: a new shuffle every epoch, rows gathered and
    augmented (``training.augment``, see ``augmentation``) in tf.data's threads. ``x``: the
    uint8 images, as ``images_in_graph`` holds them or as an array (then copied once).

    ``parallel``: gather and augment blocks in parallel calls; by default only when a GPU
    trains. On a CPU the model's own ops fill every core, and parallel calls left them idle
    (mostly 1.2–1.5 of 2 cores busy, training at 41–57 images/s) where one call in turn
    kept 1.86–1.88 busy (59–71 images/s). One call still delivered 1,450–3,826 augmented
    64-px images/s here, 20× or more what the CPU trains on. Without parallel calls
    tf.data's autotuning is off too (see the end)."""
    import tensorflow as tf

    from . import augmentation

    on = augmentation.active(augment)
    images = x if isinstance(x, tf.Variable) else images_in_graph(np.asarray(x))
    labels = tf.constant(np.asarray(y, np.float32))
    n = int(images.shape[0])

    state = {"epoch": 0}
    columns = len(augmentation.COLUMNS) if on else 0

    def plan():
        # One Python call per epoch: the epoch's rows, batch after batch, and their draws.
        # (A numpy_function: tf.data's from_generator kept a thread busy through the epoch
        # and halved the training rate on two cores.)
        epoch = state["epoch"]
        state["epoch"] += 1
        idx = index_batches(n, batch_size, shuffle, seed, epoch, shard,
                            drop_remainder)[:max_steps]
        rows = np.concatenate(idx).astype(np.int64) if idx else np.zeros(0, np.int64)
        u = augmentation.draws(seed, epoch, n)[rows] if on else np.zeros((len(rows), 0))
        return rows, u.astype(np.float32)

    def planned(_):
        rows, u = tf.numpy_function(plan, [], (tf.int64, tf.float32), stateful=True)
        # shaped by the row count: an epoch with no rows gives (0, 0), not (1, 0)
        return tf.reshape(rows, [-1]), tf.reshape(u, [tf.size(rows), columns])

    def gather(rows, u):
        xb = tf.gather(images, rows)
        return (augmentation.augment_batch(xb, u, augment) if on else xb), tf.gather(labels,
                                                                                     rows)

    steps = len(index_batches(n, batch_size, False, seed, 0, shard, drop_remainder))
    steps = min(steps, max_steps) if max_steps else steps
    # Blocks of images share each op's fixed cost, then are cut into the batches: one path,
    # augmented or not (without augmentation blocks measured no faster than batches).
    block = augmentation.block_size(int(images.shape[1]), batch_size)
    if parallel is None:
        parallel = bool(tf.config.list_physical_devices("GPU"))
    calls = tf.data.AUTOTUNE if parallel else None
    dataset = (tf.data.Dataset.from_tensors(0).map(planned)
               .flat_map(lambda r, u: tf.data.Dataset.from_tensor_slices((r, u)).batch(block))
               .map(gather, num_parallel_calls=calls, deterministic=True if parallel else None))
    if block != batch_size:
        dataset = dataset.rebatch(batch_size)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    if parallel:
        return dataset.prefetch(tf.data.AUTOTUNE)
    # On a CPU tf.data's autotuner stole cycles: 8 of 15 epochs ran on 1.1-1.4 of 2 cores
    # (42-52 images/s); with it off and a fixed prefetch, 12 of 12 ran on 1.86-1.90.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)
