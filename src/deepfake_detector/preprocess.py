"""The preprocess stage's library: decode the manifests' images into uint8 ``.npz`` arrays.

Decoding runs in threads: libjpeg-turbo (through simplejpeg or Pillow) releases the GIL, so
threads use every core with no process start-up, no pickling, and each decoded image is
written straight into the preallocated output array (memory: the output plus one image per
thread).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .atomic import atomic_path
from .errors import ImageRejected
from .faces import frame_image
from .images import MAX_FILE_MB, MB, resize_mask
from .reproducible import savez

CHUNK = 64


def decode_files(paths: list[str], size: int, max_pixels: int, workers: int | None = None,
                 desc: str = "decode", crop: float = 1.0, max_bytes: int | None = MAX_FILE_MB * MB,
                 face_crop: dict | None = None):
    """(uint8 N×size×size×3 of the files that decoded, keep mask, reasons by index, the box
    each kept (``faces.frame_image``: fractions, None unless a face was looked for), and
    whether a face was found). Files past ``max_bytes``, and anything that is not a regular
    file, are rejected unread. The face detector releases the GIL: threads use every core."""
    n = len(paths)
    x = np.zeros((n, size, size, 3), dtype=np.uint8)
    keep = np.zeros(n, dtype=bool)
    found = np.zeros(n, dtype=bool)
    boxes: list = [None] * n
    reasons: dict[int, str] = {}

    def decode_chunk(start: int) -> int:
        stop = min(start + CHUNK, n)
        for i in range(start, stop):
            try:
                x[i], face, boxes[i] = frame_image(paths[i], size, max_pixels=max_pixels,
                                                   crop=crop, face_crop=face_crop,
                                                   max_bytes=max_bytes)
                keep[i], found[i] = True, bool(face)
            except ImageRejected as exc:
                reasons[i] = exc.reason
        return stop - start

    with tqdm(total=n, desc=desc, unit="img", disable=None) as bar, \
            ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for done in pool.map(decode_chunk, range(0, n, CHUNK)):
            bar.update(done)
    return x, keep, reasons, boxes, found


def load_masks(raw_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """Manipulation masks and families of the built-in data (``synthetic.generate``), keyed by
    path relative to ``raw_dir``; None for other data."""
    path = raw_dir / "masks.npz"
    if not path.exists():
        return None
    with np.load(path) as z:
        names = z["names"].tolist()
        families = z["families"].tolist() if "families" in z.files else [""] * len(names)
        return dict(zip(names, z["masks"])), dict(zip(names, families))


def preprocess_split(manifest: pd.DataFrame, out_path: Path, *, root: Path, raw_dir: Path,
                     size: int, max_pixels: int, masks: tuple | None, workers=None,
                     crop: float = 1.0, max_bytes: int | None = MAX_FILE_MB * MB,
                     face_crop: dict | None = None):
    """Write one split's ``.npz``; returns the rejected rows. With ``face_crop`` enabled the
    ``.npz`` also holds ``face_found`` (per image: whether it is framed on a face); with
    ``masks`` (``load_masks``), ``masks`` and ``family`` ("" for a real face)."""
    files = [str(root / p) for p in manifest["path"]]
    x, keep, reasons, boxes, found = decode_files(
        files, size, max_pixels, workers, desc=out_path.stem, crop=crop, max_bytes=max_bytes,
        face_crop=face_crop)
    # Compact in place, a block at a time: kept rows move to the front (kept[j] >= j, so no
    # row is overwritten before it moves) without a second copy of the whole array.
    kept = np.flatnonzero(keep)
    if len(kept) < len(x):
        for start in range(0, len(kept), 4096):
            block = kept[start:start + 4096]
            x[start:start + len(block)] = x[block]
    arrays = {"x": x[:len(kept)], "y": manifest["label"].to_numpy(np.uint8)[kept],
              "paths": manifest["path"].to_numpy(str)[kept]}
    if (face_crop or {}).get("enabled"):
        arrays["face_found"] = found[kept]
    if masks is not None:
        raw_rel = raw_dir.relative_to(root).as_posix() + "/"
        by_name, family_by_name = masks
        m = np.zeros((len(kept), size, size), dtype=np.uint8)
        families = []
        for row, idx in enumerate(kept):
            name = manifest["path"].iloc[idx].removeprefix(raw_rel)
            if name in by_name:
                m[row] = resize_mask(by_name[name], size, crop, boxes[idx])
            families.append(family_by_name.get(name, ""))
        arrays["masks"] = m
        arrays["family"] = np.array(families, dtype=str)
    with atomic_path(out_path) as tmp:
        savez(tmp, **arrays)
    return [{"file": manifest["path"].iloc[i], "stage": "preprocess", "reason": r}
            for i, r in sorted(reasons.items())]
