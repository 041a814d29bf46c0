"""Perceptual near-duplicates: the same picture re-encoded, resized or slightly cropped.

Exact duplicates share a sha256; these do not. Each image gets 64-bit perceptual hashes
(pHash, as ``imagehash.phash`` computes it: the signs of the 8×8 lowest DCT frequencies of a
32×32 grey thumbnail against their median) of its whole frame and of centre crops (``ZOOMS``):
a copy cropped by a few percent matches one of the crops, where its whole-frame hash can be
10 bits away. Two images are candidates when a hash of one is within ``bound`` bits of the
other's whole-frame hash; comparing every pair of 150,000 images would be 10^10 pairs, so the
64 bits are cut into ``bound + 1`` bands and only hashes with an identical band are compared
(two hashes within ``bound`` bits differ in at most ``bound`` bands: nothing is missed).

A hash of 64 low frequencies cannot tell apart faces that share a layout: distinct faces of
the built-in generator collide at 0–6 bits. So a candidate pair is kept only when the two
16×16 colour thumbnails also agree (``PIXEL_TOLERANCE``).
"""

from __future__ import annotations

import numpy as np

HASH_BITS = 64
# Centre crops hashed besides the whole frame: a copy cropped by 0–6% a side lands within
# 6 bits of one of them (measured on the FFHQ/StyleGAN dev faces; 8% already did not)
ZOOMS = (1.0, 0.97, 0.94, 0.91, 0.88)
FRAME = 64  # the images are fingerprinted at this size
# Mean absolute difference (0–255) of matching thumbnails: copies measured ≤ 4.2, distinct
# built-in faces whose hashes matched ≥ 17, distinct dev faces ≥ 3.9 (one pair), 25 at p5
PIXEL_TOLERANCE = 5.0
# The thumbnail's grey: ITU-R 601 luma, as Pillow's convert("L")
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _crops(image: np.ndarray, side: int):
    """``image`` (``FRAME``² RGB uint8) cut to each of ``ZOOMS`` and resized to ``side``."""
    import cv2

    for zoom in ZOOMS:
        keep = round(FRAME * zoom)
        start = (FRAME - keep) // 2
        yield cv2.resize(image[start:start + keep, start:start + keep], (side, side),
                         interpolation=cv2.INTER_AREA)


def phash(thumbnail: np.ndarray) -> int:
    """The 64-bit pHash of a 32×32 RGB (or grey) uint8 thumbnail."""
    import cv2

    grey = thumbnail.astype(np.float32)
    if grey.ndim == 3:
        grey = grey @ LUMA
    low = cv2.dct(grey)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def fingerprint(image: np.ndarray) -> list[int]:
    """The pHash of each of ``ZOOMS`` of a ``FRAME``-pixel image."""
    return [phash(crop) for crop in _crops(image, 32)]


def thumbnails(image: np.ndarray) -> np.ndarray:
    """[len(ZOOMS), 16, 16, 3] int16 colour thumbnails of a ``FRAME``-pixel image."""
    return np.stack(list(_crops(image, 16))).astype(np.int16)


def _bands(bound: int) -> list[tuple[int, int]]:
    """(shift, width) of ``bound + 1`` bands covering the 64 bits."""
    count = bound + 1
    widths = [HASH_BITS // count + (i < HASH_BITS % count) for i in range(count)]
    shifts = np.cumsum([0] + widths[:-1])
    return [(int(s), w) for s, w in zip(shifts, widths)]


def near_pairs(hashes: np.ndarray, bound: int, chunk: int = 2048) -> np.ndarray:
    """[k, 2] index pairs (i < j) whose hashes differ in at most ``bound`` bits."""
    hashes = np.asarray(hashes, np.uint64)
    if not 0 <= bound < HASH_BITS:
        raise ValueError(f"the Hamming bound must be in 0..{HASH_BITS - 1}, not {bound}")
    found = []
    for shift, width in _bands(bound):
        band = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(band, kind="stable")
        starts = np.flatnonzero(np.r_[True, band[order][1:] != band[order][:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(order)]):
            if stop - start < 2:
                continue
            members = np.sort(order[start:stop])
            # row chunks bound the memory of one large bucket to chunk × its size
            for lo in range(0, len(members), chunk):
                rows = members[lo:lo + chunk]
                distance = np.bitwise_count(hashes[rows, None] ^ hashes[None, members])
                i, j = np.nonzero(distance <= bound)
                keep = rows[i] < members[j]
                found.append(np.stack([rows[i][keep], members[j][keep]], axis=1))
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0)


def candidates(hashes: np.ndarray, bound: int) -> np.ndarray:
    """[k, 4] (image i, image j, zoom of i, zoom of j), i < j, for hashes within ``bound``
    of which one is a whole frame; ``hashes``: [images, len(ZOOMS)] fingerprints."""
    n, zooms = hashes.shape
    pairs = near_pairs(hashes.reshape(-1), bound)  # flat index = image * zooms + zoom
    image, zoom = pairs // zooms, pairs % zooms
    keep = (image[:, 0] != image[:, 1]) & ((zoom[:, 0] == 0) | (zoom[:, 1] == 0))
    image, zoom = image[keep], zoom[keep]
    swap = image[:, 0] > image[:, 1]
    image[swap], zoom[swap] = image[swap][:, ::-1], zoom[swap][:, ::-1]
    return np.unique(np.concatenate([image, zoom], axis=1), axis=0)


def confirmed(found: np.ndarray, thumbs: dict[int, np.ndarray],
              chunk: int = 50_000) -> np.ndarray:
    """The image pairs of ``candidates`` whose thumbnails at the matched zooms agree within
    ``PIXEL_TOLERANCE``; ``thumbs``: ``thumbnails`` by image (missing: not confirmed)."""
    found = found[np.isin(found[:, 0], list(thumbs)) & np.isin(found[:, 1], list(thumbs))]
    if not len(found):
        return np.zeros((0, 2), np.int64)
    images = np.array(sorted(thumbs))
    stack = np.stack([thumbs[i] for i in images])
    row = {int(image): k for k, image in enumerate(images)}
    where = np.vectorize(row.__getitem__)(found[:, :2])
    keep = np.zeros(len(found), bool)
    for lo in range(0, len(found), chunk):
        part = slice(lo, lo + chunk)
        a = stack[where[part, 0], found[part, 2]]
        b = stack[where[part, 1], found[part, 3]]
        keep[part] = np.abs(a - b).mean(axis=(1, 2, 3)) <= PIXEL_TOLERANCE
    return np.unique(found[keep, :2], axis=0)


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """The connected component of each of ``n`` items joined by ``pairs``: the smallest
    index in it (union-find with path halving)."""
    parent = np.arange(n)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([root(i) for i in range(n)])
