"""split: layouts, given splits, duplicates, label conflicts, groups, skips."""

import pandas as pd
import pytest
from helpers import LAYOUTS, arrange, bad_files, write_faces

from deepfake_detector.splitting import classify, split_dataset

CLASSES = {"real": ["real"], "fake": ["fake"]}
FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    src = tmp_path_factory.mktemp("faces")
    return {"real": write_faces(src / "r", 30, False), "fake": write_faces(src / "f", 30, True,
                                                                          start=100)}


def run(raw, root, **kw):
    opts = dict(class_names=CLASSES, fractions=FRACTIONS, seed=1, keep_existing=True,
                group_regex=None) | kw
    return split_dataset(raw, root, **opts)


def test_classify_words_and_wrappers():
    assert classify(("real-vs-fake", "train", "fake", "a.jpg"), CLASSES) == (1, "train")
    assert classify(("training_real", "a.jpg"), CLASSES) == (0, "train")
    assert classify(("Validation", "REAL", "a.jpg"), CLASSES) == (0, "val")
    assert classify(("misc", "a.jpg"), CLASSES) == (None, None)
    assert classify(("photos", "genuine", "a.jpg"), {"real": ["genuine"], "fake": ["fake"]}) \
        == (0, None)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_finds_every_image(tmp_path, faces, layout):
    raw = arrange(faces, tmp_path / "data" / "raw", layout)
    frames, rejected, summary = run(raw, tmp_path)
    assert summary["total"] == {"real": 30, "fake": 30, "total": 60}
    assert rejected == []
    if layout == "flat":
        assert summary["split"]["mode"] == "seeded"
    else:  # the given train/val/test folders are kept
        assert summary["split"]["mode"] == "given"
        assert summary["counts"]["train"]["total"] == 42
    for frame in frames.values():
        assert list(frame.columns) == ["path", "label", "sha256", "group"]
        assert frame["path"].str.startswith("data/raw/").all()


def test_seeded_split_is_stratified_and_reproducible(tmp_path, faces):
    raw = arrange(faces, tmp_path / "data" / "raw", "flat")
    a, _, summary = run(raw, tmp_path)
    b, _, _ = run(raw, tmp_path)
    c, _, _ = run(raw, tmp_path, seed=2)
    assert all(a[s].equals(b[s]) for s in a)
    assert not a["test"].equals(c["test"])
    counts = summary["counts"]
    assert counts["train"] == {"real": 21, "fake": 21, "total": 42}
    assert counts["val"]["real"] == counts["val"]["fake"]


def test_given_splits_ignored_when_asked(tmp_path, faces):
    raw = arrange(faces, tmp_path / "data" / "raw", "splits")
    _, _, summary = run(raw, tmp_path, keep_existing=False)
    assert summary["split"]["mode"] == "seeded"


def test_duplicates_conflicts_and_bad_files(tmp_path, faces):
    raw = arrange(faces, tmp_path / "data" / "raw", "splits",
                  extra=bad_files(faces["real"][1].read_bytes(), faces["real"][0].read_bytes()))
    # the same bytes again in test: the copy in train is kept
    dup = raw / "test" / "real" / "again.jpg"
    dup.write_bytes(faces["real"][1].read_bytes())
    frames, rejected, summary = run(raw, tmp_path)
    reasons = {r["file"].split("/")[-1]: r["reason"] for r in rejected}
    assert reasons["zero.jpg"] == "zero_bytes"
    assert reasons["again.jpg"] == "duplicate"
    assert reasons["zz_duplicate.jpg"] == "duplicate"
    # the same bytes as real img0000 under fake: both copies are label conflicts
    assert reasons["conflict.jpg"] == reasons["img0000.jpg"] == "label_conflict"
    kept = pd.concat(frames.values())
    assert not kept["sha256"].duplicated().any()
    assert "data/raw/train/real/img0001.jpg" in set(frames["train"]["path"])
    # not-image and truncated files pass split; preprocess rejects them
    assert {"text.jpg", "truncated.jpg"} <= {p.split("/")[-1] for p in kept["path"]}
    assert summary["duplicates_dropped"] == 2 and summary["label_conflicts"] == 2
    assert summary["total"]["total"] + len(rejected) == 60 + 6


def test_images_outside_class_folders_are_listed(tmp_path, faces):
    raw = arrange(faces, tmp_path / "data" / "raw", "flat")
    (raw / "misc").mkdir()
    (raw / "misc" / "stray.jpg").write_bytes(faces["real"][0].read_bytes())
    (raw / "readme.txt").write_text("ignored: not an image file name")
    _, rejected, _ = run(raw, tmp_path)
    assert rejected == [{"file": "data/raw/misc/stray.jpg", "stage": "split",
                         "reason": "no_class"}]


def test_groups_never_straddle_splits(tmp_path):
    raw = tmp_path / "data" / "raw"
    for cls, fake in (("real", False), ("fake", True)):
        for vid in range(12):
            folder = raw / cls
            for frame in range(4):
                write_faces(folder, 1, fake, start=vid * 10 + frame + (500 if fake else 0))
                (folder / f"img{vid * 10 + frame + (500 if fake else 0):04d}.jpg").rename(
                    folder / f"vid{vid:02d}{cls}_{frame}.jpg")
    frames, _, _ = run(raw, tmp_path, group_regex=r"(vid\d+\w+?)_")
    seen = {}
    for split, frame in frames.items():
        assert (frame["group"] != "").all()
        for g in frame["group"]:
            assert seen.setdefault(g, split) == split
    assert len(seen) == 24 and all(len(frames[s]) for s in frames)


def test_group_straddling_given_splits_moves_to_earliest(tmp_path, faces):
    raw = arrange(faces, tmp_path / "data" / "raw", "splits")
    frames, _, summary = run(raw, tmp_path, group_regex=r"img00(\d)")  # groups by tens
    splits_of = {}
    for split, frame in frames.items():
        for g in frame["group"]:
            if g:  # fakes (img01xx) match no group
                splits_of.setdefault(g, set()).add(split)
    assert len(splits_of) == 3 and all(len(s) == 1 for s in splits_of.values())
    assert summary["split"]["moved_for_groups"] > 0


def test_no_images_is_a_clear_error(tmp_path):
    (tmp_path / "data" / "raw").mkdir(parents=True)
    with pytest.raises(ValueError, match="No labelled images"):
        run(tmp_path / "data" / "raw", tmp_path)
