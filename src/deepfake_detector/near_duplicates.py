"""Perceptual near-duplicates: the same picture re-encoded, resized or slightly cropped.

Exact duplicates share a sha256; these do not. Each image gets 64-bit perceptual hashes
(pHash, computed as ``imagehash.phash`` does though not bit for bit: the signs of the 8×8
lowest DCT frequencies of a 32×32 grey thumbnail against their median) of its whole frame
and of centre crops (``ZOOMS``): a copy cropped by a few percent matches one of the crops,
where its whole-frame hash can be 10 bits away. Two images are candidates when a hash of one
is within ``bound`` bits of the other's whole-frame hash; comparing every pair of 150,000
images would be 10^10 pairs, so the 64 bits are cut into ``bound + 1`` bands and only hashes
with an identical band are compared (two hashes within ``bound`` bits differ in at most
``bound`` bands: nothing is missed).

A hash of 64 low frequencies cannot tell apart faces that share a layout: distinct faces of
the built-in generator collide at 0–6 bits. So a candidate pair is kept only when the two
16×16 colour thumbnails also agree (``PIXEL_TOLERANCE``).

Cost: every whole-frame hash is compared with the hashes sharing one of its bands; with
distinct photographs buckets are small (the 1,600 dev faces: 4 s, no set), but the bound
sets the band width (64 / (bound + 1) bits), so a large bound approaches all pairs.
"""

from __future__ import annotations

import numpy as np

HASH_BITS = 64
# Centre crops hashed besides the whole frame: a copy cropped by 0–6% a side lands within
# 6 bits of one of them (measured on the FFHQ/StyleGAN dev faces; 8% already did not)
ZOOMS = (1.0, 0.97, 0.94, 0.91, 0.88)
FRAME = 64  # the images are fingerprinted at this size
# Mean absolute difference (0–255, over pixels and RGB channels) of matching thumbnails:
# copies measured ≤ 4.2; distinct built-in faces whose hashes matched ≥ 17; among distinct
# dev faces within 8 bits (a wider net than the default 6), one pair at 3.9, 95% above 25
PIXEL_TOLERANCE = 5.0
# pHash's grey: ITU-R 601 luma, as Pillow's convert("L")
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


def candidates(hashes: np.ndarray, bound: int) -> np.ndarray:
    """[k, 4] (image i, image j, zoom of i, zoom of j), i < j: every pair of hashes of two
    images within ``bound`` bits of which one is a whole frame; ``hashes``: [images,
    len(ZOOMS)] fingerprints. Banded: only hashes sharing a band are compared."""
    hashes = np.asarray(hashes, np.uint64)
    if not 0 <= bound < HASH_BITS:
        raise ValueError(f"the Hamming bound must be in 0..{HASH_BITS - 1}, not {bound}")
    n, zooms = hashes.shape
    flat = hashes.reshape(-1)
    image, zoom = np.repeat(np.arange(n), zooms), np.tile(np.arange(zooms), n)
    found = [np.zeros((0, 4), np.int64)]
    for shift, width in _bands(bound):
        band = (flat >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(band, kind="stable")
        starts = np.flatnonzero(np.r_[True, band[order][1:] != band[order][:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(order)]):
            members = order[start:stop]
            frames = members[zoom[members] == 0]
            if stop - start < 2 or not len(frames):
                continue
            rows = max(1, (1 << 22) // len(members))  # ≤ 4M distances (32 MB) at a time
            for lo in range(0, len(frames), rows):
                query = frames[lo:lo + rows]
                near = np.bitwise_count(flat[query, None] ^ flat[None, members]) <= bound
                q, m = np.nonzero(near & (image[query, None] != image[None, members]))
                a, b = query[q], members[m]
                found.append(np.stack([image[a], image[b], zoom[a], zoom[b]], axis=1))
    pairs = np.concatenate(found)
    swap = pairs[:, 0] > pairs[:, 1]
    pairs[swap] = pairs[swap][:, [1, 0, 3, 2]]
    return np.unique(pairs, axis=0)


def confirmed(found: np.ndarray, thumbs: dict[int, np.ndarray],
              chunk: int = 50_000) -> np.ndarray:
    """The image pairs of ``candidates`` whose thumbnails at the matched zooms agree within
    ``PIXEL_TOLERANCE``; ``thumbs``: ``thumbnails`` by image (missing: not confirmed)."""
    found = found[np.isin(found[:, 0], list(thumbs)) & np.isin(found[:, 1], list(thumbs))]
    if not len(found):
        return np.zeros((0, 2), np.int64)
    images = np.array(sorted(thumbs))
    stack = np.stack([thumbs[i] for i in images])
    where = np.searchsorted(images, found[:, :2])
    keep = np.zeros(len(found), bool)
    for lo in range(0, len(found), chunk):
        part = slice(lo, lo + chunk)
        a = stack[where[part, 0], found[part, 2]]
        b = stack[where[part, 1], found[part, 3]]
        keep[part] = np.abs(a - b).mean(axis=(1, 2, 3)) <= PIXEL_TOLERANCE
    return np.unique(found[keep, :2], axis=0).astype(np.int64)


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
    return np.array([root(i) for i in range(n)], np.int64)


def group_near_duplicates(df, fingerprints, bound: int, thumbnails_of):
    """``df`` (split rows: ``path``, ``label``, ``sha256``, ``group``) with the ``group`` of
    every near-duplicate set shared by its members, merged with any ``group_regex`` group
    they touch, so that a set never straddles splits; and its counts for
    ``metrics/data.json``. ``fingerprints``: per row, ``fingerprint`` or None (not decoded);
    ``thumbnails_of(row)``: that row's ``thumbnails``, or None when it cannot be read again.
    A set spanning both classes is a label conflict, counted and kept together: a fake made
    from a real photo is near-identical to it, and dropping both would drop the pair a
    detector learns from."""
    import pandas as pd

    df = df.reset_index(drop=True)
    known = np.flatnonzero(pd.Series(list(fingerprints)).notna().to_numpy())
    hashes = np.array([fingerprints.iloc[i] for i in known], np.uint64).reshape(-1, len(ZOOMS))
    found = candidates(hashes, bound)
    found[:, :2] = known[found[:, :2]]
    thumbs = {int(i): t for i in np.unique(found[:, :2])
              if (t := thumbnails_of(int(i))) is not None}
    near = confirmed(found, thumbs)
    named = df.index[df["group"] != ""].to_numpy()
    first = df.loc[named].groupby("group").head(1)
    chains = np.stack([df.loc[named, "group"].map(pd.Series(first.index, first["group"]))
                       .to_numpy(np.int64), named], axis=1)
    near_sets = pd.Series(components(len(df), near))
    in_near = near_sets.duplicated(keep=False)
    joined = pd.Series(components(len(df), np.concatenate([near, chains])))
    touched = joined.isin(joined[in_near])
    members = df[touched].assign(unit=joined[touched])
    names = {unit: min((n for n in g["group"] if n), default="near:" + g["sha256"].iloc[0][:16])
             for unit, g in members.groupby("unit")}
    df.loc[touched, "group"] = members["unit"].map(names)
    classes = df.loc[in_near, "label"].groupby(near_sets[in_near]).nunique()
    return df, {"hamming_bound": int(bound), "groups": int(len(classes)),
                "images": int(in_near.sum()), "label_conflict_groups": int((classes > 1).sum())}
