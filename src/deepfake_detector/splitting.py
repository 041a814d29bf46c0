"""The split stage's library: find labelled images in any common layout, deduplicate, split.

Layouts understood (folder names matched without regard to case, ``_``/``-``/space
separated words count, e.g. ``training_real``): flat ``real/`` + ``fake/``; split folders
``train|training``, ``val|valid|validation``, ``test|testing`` each holding the class
folders (either nesting order); any wrapping folders above them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ImageRejected
from .figures import pyplot
from .file_audit import inspect_files, shortcut_audit
from .images import check_file, is_image_path, is_utf8, load_image, readable_name
from .near_duplicates import FRAME, group_near_duplicates, thumbnails

SPLITS = ("train", "val", "test")
SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
MANIFEST_COLUMNS = ["path", "label", "sha256", "group"]
REJECTED_COLUMNS = ["file", "stage", "reason"]


# The project's CSV files list file names, and a name may hold a comma, a quote, a newline or
# a carriage return. Python's csv writer quotes only fields holding the delimiter, the quote
# or a character of its line terminator ("\n" for pandas), so a bare "\r" went out unquoted
# and read back as a line break. Every text field is quoted; readers honour the quotes and
# keep every column that holds names or hashes as text ("NA", "001" stay as written).
def write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")


def read_manifest(path: Path) -> pd.DataFrame:
    """``data/split/<split>.csv``: path, label (int), sha256, group."""
    return pd.read_csv(path, keep_default_na=False, dtype={
        "path": str, "label": int, "sha256": str, "group": str})


def read_rejected(path: Path) -> list[dict]:
    """The rows of a ``rejected.csv`` (file, stage, reason), every field as text."""
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    return [{c: str(row[c]) for c in REJECTED_COLUMNS} for row in frame.to_dict("records")]


def fetch_rejections(raw_dir: Path) -> list[dict]:
    """What the fetch stage left out (``"rejected"`` in ``data/raw/source.json``: file and
    reason), as rows of rejected.csv with stage ``fetch``; none when it lists nothing."""
    path = raw_dir / "source.json"
    if not path.is_file():
        return []
    listed = json.loads(path.read_text(encoding="utf-8")).get("rejected") or []
    return [{"file": str(r["file"]), "stage": "fetch", "reason": str(r["reason"])}
            for r in listed]


def _words(name: str) -> set[str]:
    return set(re.split(r"[\s_\-.]+", name.lower())) | {name.lower()}


def classify(rel_parts: tuple[str, ...], class_names: dict[str, list[str]]):
    """(label, split) of a file from its folders; the deepest unambiguous folder wins."""
    names = {1: {n.lower() for n in class_names["fake"]},
             0: {n.lower() for n in class_names["real"]}}
    label = split = None
    for folder in rel_parts[:-1]:
        words = _words(folder)
        hits = [lab for lab, ns in names.items() if words & ns]
        if len(hits) == 1:  # "real-vs-fake" names both: a wrapper, not a class
            label = hits[0]
        found = {SPLIT_WORDS[w] for w in words if w in SPLIT_WORDS}
        if len(found) == 1:
            split = found.pop()
    return label, split


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    # without blocking (checked to be a regular file; nothing swapped in can hang this),
    # in blocks: memory stays flat for any file size
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def scan(raw_dir: Path, root: Path, class_names: dict, group_regex: str | None,
         max_bytes: int | None = None):
    """Manifest rows of every image under ``raw_dir`` plus the rows rejected on the way.
    Only regular files are read: anything else named like an image is listed
    (``not_regular_file``, or ``unreadable`` for a broken link). With ``max_bytes`` (the
    CLI's ``evaluate``), larger files are rejected (``too_large``) before they are read."""
    rows, rejected = [], []
    pattern = re.compile(group_regex) if group_regex else None
    # FIFOs, devices and broken links named like images are listed (check_file), not skipped
    for path in sorted(p for p in raw_dir.rglob("*") if is_image_path(p) and not p.is_dir()):
        rel = path.relative_to(root).as_posix()
        if not rel.isprintable() or not is_utf8(rel):
            rejected.append({"file": readable_name(rel), "stage": "split",
                             "reason": "bad_name"})
            continue
        label, given = classify(path.relative_to(raw_dir).parts, class_names)
        if label is None:
            rejected.append({"file": rel, "stage": "split", "reason": "no_class"})
            continue
        try:
            size = check_file(path, max_bytes)
        except ImageRejected as exc:
            rejected.append({"file": rel, "stage": "split", "reason": exc.reason})
            continue
        if size == 0:
            rejected.append({"file": rel, "stage": "split", "reason": "zero_bytes"})
            continue
        try:
            digest = _sha256(path)
        except OSError:  # no permission, or gone since the check
            rejected.append({"file": rel, "stage": "split", "reason": "unreadable"})
            continue
        group = ""
        if pattern and (m := pattern.search(path.relative_to(raw_dir).as_posix())):
            group = m.group(1) if m.groups() else m.group(0)
        rows.append({"path": rel, "label": label, "sha256": digest, "group": group,
                     "given_split": given})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS + ["given_split"]), rejected


def drop_duplicates(df: pd.DataFrame):
    """Same bytes under both classes: all copies out (label_conflict). Same bytes in one
    class: keep one, the copy in the earliest given split (train, val, test), then by path."""
    rejected = []
    conflicts = df.groupby("sha256")["label"].nunique()
    conflict = df["sha256"].isin(conflicts[conflicts > 1].index)
    rejected += [{"file": f, "stage": "split", "reason": "label_conflict"}
                 for f in df.loc[conflict, "path"]]
    df = df[~conflict].copy()
    order = df["given_split"].map({s: i for i, s in enumerate(SPLITS)}).fillna(len(SPLITS))
    df = df.assign(_order=order).sort_values(["_order", "path"])
    dup = df.duplicated("sha256", keep="first")
    rejected += [{"file": f, "stage": "split", "reason": "duplicate"}
                 for f in df.loc[dup, "path"]]
    return df[~dup].drop(columns="_order"), rejected


def assign_splits(df: pd.DataFrame, fractions: dict[str, float], seed: int,
                  keep_existing: bool) -> tuple[pd.Series, dict]:
    """The split of every row, and notes on how it was decided."""
    units = df["group"].where(df["group"] != "", "sha:" + df["sha256"])
    given = df["given_split"]
    if keep_existing and given.notna().all():
        # A group never straddles splits: a straddling group goes to its earliest split.
        rank = given.map({s: i for i, s in enumerate(SPLITS)})
        earliest = rank.groupby(units).transform("min").map(dict(enumerate(SPLITS)))
        moved = int((earliest != given).sum())
        return earliest, {"mode": "given", "moved_for_groups": moved}
    if keep_existing and given.notna().any():
        note = {"mode": "seeded", "ignored_partial_given_splits": int(given.notna().sum())}
    else:
        note = {"mode": "seeded"}
    total = sum(fractions.values())
    shares = np.array([fractions[s] / total for s in SPLITS])
    rng = np.random.default_rng(seed)
    out = pd.Series(index=df.index, dtype=object)
    # Stratify on each unit's majority label; fill splits in order up to their share.
    unit_label = df.groupby(units)["label"].agg(lambda s: int(s.mean() >= 0.5))
    unit_size = units.value_counts()
    for label in (0, 1):
        members = np.array(sorted(unit_label.index[unit_label == label]))
        rng.shuffle(members)
        sizes = unit_size.loc[members].to_numpy()
        bounds = np.cumsum(shares) * sizes.sum()
        position = np.cumsum(sizes) - sizes / 2  # unit midpoints on the cumulative axis
        which = np.searchsorted(bounds, position, side="right").clip(0, len(SPLITS) - 1)
        mapping = dict(zip(members, (SPLITS[i] for i in which)))
        mask = units.isin(mapping.keys())
        out[mask] = units[mask].map(mapping)
    return out, note


def summarise(split_frames: dict[str, pd.DataFrame], rejected: list[dict], note: dict) -> dict:
    counts = {s: {"real": int((f["label"] == 0).sum()), "fake": int((f["label"] == 1).sum()),
                  "total": int(len(f))} for s, f in split_frames.items()}
    reasons = Counter(r["reason"] for r in rejected)
    return {"counts": counts,
            "total": {"real": sum(c["real"] for c in counts.values()),
                      "fake": sum(c["fake"] for c in counts.values()),
                      "total": sum(c["total"] for c in counts.values())},
            "duplicates_dropped": reasons.get("duplicate", 0),
            "label_conflicts": reasons.get("label_conflict", 0),
            "skipped": dict(sorted(reasons.items())), "split": note}


def split_dataset(raw_dir: Path, root: Path, *, class_names: dict, fractions: dict, seed: int,
                  keep_existing: bool, group_regex: str | None, max_bytes: int | None = None,
                  near_duplicate_bits: int | None = None, audit: bool = False):
    """Returns ({split: manifest DataFrame}, rejected rows, summary for metrics/data.json).
    Files past ``max_bytes`` are listed ``too_large`` without being read (not even hashed).
    ``near_duplicate_bits``: group perceptual near-duplicates within that Hamming bound;
    ``audit``: add the shortcut audit (``file_audit``) to the summary."""
    df, rejected = scan(raw_dir, root, class_names, group_regex, max_bytes)
    if df.empty:
        raise ValueError(f"No labelled images under {raw_dir}: expected class folders named "
                         f"{class_names} (any case), e.g. real/ and fake/.")
    df, dup_rejected = drop_duplicates(df)
    rejected += dup_rejected
    classes = df["label"].value_counts()
    if len(classes) < 2:
        have, lack = ("real", "fake") if 0 in classes else ("fake", "real")
        raise ValueError(f"Only one class found: {int(classes.iloc[0])} {have} images and no "
                         f"{lack} ones under {raw_dir} (folder words for {lack}: "
                         f"{class_names[lack]}). A detector needs both.")
    facts = None
    if near_duplicate_bits is not None or audit:
        df = df.reset_index(drop=True)
        facts = inspect_files([str(root / p) for p in df["path"]], max_bytes)
    near = None
    if near_duplicate_bits is not None:
        def thumbnails_of(row: int):
            try:
                return thumbnails(load_image(root / df.at[row, "path"], FRAME,
                                             max_bytes=max_bytes))
            except ImageRejected:  # gone or changed since it was hashed: not confirmed
                return None

        df, near = group_near_duplicates(df, facts["phash"], near_duplicate_bits,
                                         thumbnails_of)
    df["split"], note = assign_splits(df, fractions, seed, keep_existing)
    frames = {s: df[df["split"] == s].sort_values("path")[MANIFEST_COLUMNS].reset_index(drop=True)
              for s in SPLITS}
    summary = summarise(frames, rejected, note)
    if near is not None:
        summary["near_duplicates"] = near
    if audit:
        summary["shortcut_audit"] = shortcut_audit(facts, df["label"], seed)
    return frames, rejected, summary


def class_count_figure(summary: dict, path: Path) -> None:
    plt = pyplot()

    counts = summary["counts"]
    fig, axes = plt.subplots(1, len(counts), figsize=(3 * len(counts), 2.8), sharey=True)
    for ax, (split, c) in zip(np.atleast_1d(axes), counts.items()):
        bars = ax.bar(["real", "fake"], [c["real"], c["fake"]], color=["#4c72b0", "#c44e52"])
        ax.bar_label(bars)
        ax.set_title(f"{split} ({c['total']})")
    np.atleast_1d(axes)[0].set_ylabel("images")
    fig.suptitle("Images per class and split")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)

