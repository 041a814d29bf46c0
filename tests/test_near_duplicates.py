"""Near-duplicates and the shortcut audit of the split stage: planted copies are grouped into
one split, distinct faces are not merged, the banded search misses nothing, and file facts
that give the class away are caught."""

import io
import json

import numpy as np
import pandas as pd
from conftest import ROOT
from helpers import mini_project, run_stage, write_faces
from PIL import Image

from deepfake_detector.file_audit import jpeg_quality, shortcut_warning
from deepfake_detector.near_duplicates import ZOOMS, candidates, components
from deepfake_detector.splitting import split_dataset

CLASSES = {"real": ["real"], "fake": ["fake"]}
FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
BOUND = 6  # params.yaml's split.near_duplicate_bits


def run(raw, root, **kw):
    opts = dict(class_names=CLASSES, fractions=FRACTIONS, seed=1, keep_existing=False,
                group_regex=None, near_duplicate_bits=BOUND, audit=True) | kw
    return split_dataset(raw, root, **opts)


def altered(path, how: str) -> bytes:
    """A copy of the picture at ``path`` as it is shared again: re-encoded, resized or
    slightly cropped."""
    img = Image.open(path).convert("RGB")
    width, height = img.size
    if how == "resized":
        img = img.resize((width * 3 // 4, height * 3 // 4), Image.Resampling.LANCZOS)
    elif how == "cropped":  # 3% off each side
        cut = round(0.03 * width)
        img = img.crop((cut, cut, width - cut, height - cut))
    buf = io.BytesIO()
    img.save(buf, "PNG" if how == "png" else "JPEG", quality=60)
    return buf.getvalue()


def test_the_banded_search_finds_exactly_the_pairs_within_the_bound():
    """Against brute force: every pair of hashes of two images within the bound, one of them
    a whole frame, and nothing else."""
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, (120, len(ZOOMS)), dtype=np.uint64) * np.uint64(2)
    for i in range(0, 60, 2):  # plant images whose hash i % 5 is 0..8 bits from a frame
        bits = rng.choice(64, size=i % 9, replace=False)
        hashes[i + 1, i % 5] = hashes[i, 0] ^ np.uint64(sum(1 << int(b) for b in bits))
    flat = hashes.reshape(-1)
    image, zoom = np.divmod(np.arange(len(flat)), len(ZOOMS))
    for bound in (0, 3, 6, 8):
        got = {tuple(map(int, row)) for row in candidates(hashes, bound)}
        close = np.bitwise_count(flat[:, None] ^ flat[None]) <= bound
        want = {(image[a], image[b], zoom[a], zoom[b]) for a, b in zip(*np.nonzero(close))
                if image[a] < image[b] and 0 in (zoom[a], zoom[b])}
        assert got == want and len(want) >= 3 * (bound // 2)
    assert components(5, np.array([[0, 3], [3, 4]])).tolist() == [0, 1, 2, 0, 0]


def test_planted_copies_share_one_split_and_distinct_faces_stay_apart(tmp_path):
    raw = tmp_path / "raw"
    real = write_faces(raw / "real", 60, False)
    write_faces(raw / "fake", 60, True, start=500)
    kinds = ("reencoded", "resized", "cropped", "png")
    for i, how in enumerate(kinds):
        (raw / "real" / f"copy_{how}.{'png' if how == 'png' else 'jpg'}").write_bytes(
            altered(real[i], how))
    (raw / "fake" / "copy_conflict.jpg").write_bytes(altered(real[10], "reencoded"))

    frames, rejected, summary = run(raw, tmp_path)
    rows = pd.concat([f.assign(split=s) for s, f in frames.items()]).set_index("path")
    assert rejected == [] and len(rows) == 125  # nothing dropped: only grouped
    for i, how in enumerate(kinds):
        original = rows.loc[real[i].relative_to(tmp_path).as_posix()]
        copy = rows.loc[f"raw/real/copy_{how}.{'png' if how == 'png' else 'jpg'}"]
        assert original["group"] != "" and copy["group"] == original["group"], how
        assert copy["split"] == original["split"], how
    conflict = rows.loc[["raw/fake/copy_conflict.jpg",
                         real[10].relative_to(tmp_path).as_posix()]]
    assert conflict["group"].nunique() == 1 and conflict["split"].nunique() == 1
    near = summary["near_duplicates"]
    # negative control: the 120 distinct built-in faces are not merged with one another
    assert near == {"hamming_bound": BOUND, "groups": 5, "images": 10,
                    "label_conflict_groups": 1}


def test_the_dev_faces_are_not_merged(shared_data):
    """Fewer than 1% of the 1,600 distinct FFHQ/StyleGAN faces fall into a near-duplicate
    set (they are distinct photographs and renders); the audit finds no container shortcut."""
    _, rejected, summary = run(shared_data, shared_data.parent)
    assert rejected == [] and summary["total"]["total"] == 1600
    assert summary["near_duplicates"]["images"] < 16, summary["near_duplicates"]
    assert summary["shortcut_audit"]["auc"] < 0.7


def test_jpeg_quality_is_read_from_the_quantisation_tables(tmp_path):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))
    for quality in (30, 75, 95):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        assert jpeg_quality(Image.open(buf).quantization[0]) == quality


def test_the_audit_flags_classes_saved_differently(tmp_path):
    """Real faces as PNG, fake ones as JPEG: the facts alone give the class away, and the
    stage's check says so; saved alike, they do not."""
    raw = tmp_path / "raw"
    write_faces(raw / "real", 40, False, ext=".png")
    write_faces(raw / "fake", 40, True, start=500)
    audit = run(raw, tmp_path)[2]["shortcut_audit"]
    assert audit["auc"] > 0.9 and audit["files"] == 80
    assert audit["per_class"]["real"]["formats"] == {"PNG": 40}
    assert audit["per_class"]["fake"]["formats"] == {"JPEG": 40}
    assert "ROC AUC" in shortcut_warning(audit, 0.7)

    alike = tmp_path / "alike"
    write_faces(alike / "real", 40, False)
    write_faces(alike / "fake", 40, False, start=500)  # both real faces: nothing to tell
    audit = run(alike, tmp_path)[2]["shortcut_audit"]
    assert audit["auc"] < 0.7 and shortcut_warning(audit, 0.7) is None


def test_grouping_off_leaves_groups_alone(tmp_path):
    raw = tmp_path / "raw"
    real = write_faces(raw / "real", 10, False)
    write_faces(raw / "fake", 10, True, start=500)
    (raw / "real" / "copy.jpg").write_bytes(altered(real[0], "reencoded"))
    frames, _, summary = run(raw, tmp_path, near_duplicate_bits=None)
    assert "near_duplicates" not in summary
    assert all((f["group"] == "").all() for f in frames.values())


def test_a_set_joins_the_regex_group_it_touches_and_given_splits_move_together(tmp_path):
    """A copy of a frame of video 7 joins video 7's group (named by the regex); a copy
    placed in test/ of an image given in train/ moves to train with it."""
    raw = tmp_path / "raw"
    frames = write_faces(raw / "train" / "real", 12, False)
    (raw / "train" / "real" / "vid7_a.jpg").write_bytes(frames[0].read_bytes())
    frames[0].unlink()
    (raw / "train" / "real" / "vid7_b.jpg").write_bytes(frames[1].read_bytes())
    frames[1].unlink()
    write_faces(raw / "train" / "fake", 12, True, start=500)
    for split in ("val", "test"):
        write_faces(raw / split / "real", 3, False, start=100 if split == "val" else 200)
        write_faces(raw / split / "fake", 3, True, start=600 if split == "val" else 700)
    (raw / "test" / "real" / "copy_of_a.jpg").write_bytes(
        altered(raw / "train" / "real" / "vid7_a.jpg", "resized"))
    (raw / "test" / "real" / "copy_of_2.jpg").write_bytes(altered(frames[2], "cropped"))
    found, _, summary = run(raw, tmp_path, keep_existing=True, group_regex=r"(vid\d+)_")
    rows = pd.concat([f.assign(split=s) for s, f in found.items()]).set_index("path")
    video = rows.loc[["raw/train/real/vid7_a.jpg", "raw/train/real/vid7_b.jpg",
                      "raw/test/real/copy_of_a.jpg"]]
    assert set(video["group"]) == {"vid7"} and set(video["split"]) == {"train"}
    pair = rows.loc[[frames[2].relative_to(tmp_path).as_posix(), "raw/test/real/copy_of_2.jpg"]]
    assert pair["group"].nunique() == 1 and set(pair["split"]) == {"train"}
    assert summary["split"] == {"mode": "given", "moved_for_groups": 2}
    assert summary["near_duplicates"]["groups"] == 2


def test_the_stage_fails_on_a_shortcut_when_told_to(tmp_path):
    project = mini_project(tmp_path / "project", ROOT, {"split.shortcut_audit": "fail"})
    write_faces(project / "data/raw/real", 30, False, ext=".png")
    write_faces(project / "data/raw/fake", 30, True, start=500)
    done = run_stage(project, "split")
    assert done.returncode == 1 and "split.shortcut_audit: fail" in done.stderr
    assert "Traceback" not in done.stderr
    audit = json.loads((project / "metrics/data.json").read_text())["shortcut_audit"]
    assert audit["auc"] > 0.9  # written first, so the figures are there to read
