"""Output files with the same bytes for the same content: no wall-clock time inside them.

DVC hashes every output; a file that records when it was written gets a new hash on each
run, and ``dvc.lock`` then changes although nothing did. A ``.keras`` archive records its
save date (``metadata.json``), the time its weights entry was zipped, and in ``config.json``
the memory address (``id()``) of each object that layers share (``shared_object_id``, e.g.
one dtype policy), which differs in every process. NumPy's ``.npz`` writers leave entry times
to NumPy and Python's ``zipfile``. Both are written here with one fixed entry time, and shared
objects numbered in the order they appear. (The HDF5 weights inside a ``.keras`` file hold no
times: Keras writes them without HDF5's object timestamps; tests/test_reproducible.py checks.)
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
KERAS_METADATA, KERAS_CONFIG = "metadata.json", "config.json"


def _fixed_entry(name: str, like: zipfile.ZipInfo | None = None,
                 compress_type: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = like.compress_type if like else compress_type
    info.external_attr = like.external_attr if like else 0o600 << 16
    return info


def _number_shared_objects(config, numbers: dict) -> None:
    """Replace each ``shared_object_id`` (a memory address) by 1, 2, … in order of first
    appearance: Keras only matches equal ids on loading."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "shared_object_id":
                config[key] = numbers.setdefault(value, len(numbers) + 1)
            else:
                _number_shared_objects(value, numbers)
    elif isinstance(config, list):
        for value in config:
            _number_shared_objects(value, numbers)


def _canonical_json(entry: str, data: bytes) -> bytes:
    document = json.loads(data)
    if entry == KERAS_METADATA:
        document.pop("date_saved", None)
    else:
        _number_shared_objects(document, {})
    return json.dumps(document).encode()  # Keras' own json.dumps style


def save_model(model, target: str | os.PathLike) -> Path:
    """``model.save(target)``, then the archive rewritten with fixed entry times, no
    ``date_saved`` and shared objects numbered: same entries, order and compression."""
    target = Path(target)
    model.save(target)
    rewritten = target.with_name(f"{target.name}.rewrite")
    try:
        with zipfile.ZipFile(target) as src, zipfile.ZipFile(rewritten, "w") as dst:
            for entry in src.infolist():
                fixed = _fixed_entry(entry.filename, entry)
                if entry.filename in (KERAS_METADATA, KERAS_CONFIG):
                    dst.writestr(fixed, _canonical_json(entry.filename, src.read(entry)))
                    continue
                with src.open(entry) as r, dst.open(
                        fixed, "w", force_zip64=entry.file_size >= zipfile.ZIP64_LIMIT) as w:
                    shutil.copyfileobj(r, w, 1 << 20)
        os.replace(rewritten, target)
    finally:
        rewritten.unlink(missing_ok=True)
    return target


def savez(target: str | os.PathLike, *, compressed: bool = False, **arrays) -> Path:
    """``np.savez`` / ``np.savez_compressed`` with fixed entry times (``np.load`` reads it)."""
    compression = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(target, "w", compression=compression) as archive:
        for key, value in arrays.items():
            entry = _fixed_entry(f"{key}.npy", compress_type=compression)
            with archive.open(entry, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
    return Path(target)
