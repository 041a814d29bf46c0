"""The built-in dataset: deterministic, balanced, with masks that mark the manipulation; and
its video clips, manipulated over the whole clip or one segment."""

import csv
import hashlib
import json

import av
import numpy as np
import pytest

from deepfake_detector import synthetic_video
from deepfake_detector.sources import fetch
from deepfake_detector.splitting import split_dataset
from deepfake_detector.synthetic import FAMILIES, SyntheticConfig, family_of, generate, make_image
from deepfake_detector.synthetic_video import (
    ClipsConfig,
    clip_frames,
    encode_clip,
    generate_clips,
    plan,
)


def test_same_seed_same_bytes_other_seed_differs():
    cfg = SyntheticConfig(seed=3)
    assert make_image(5, True, cfg)[0] == make_image(5, True, cfg)[0]
    assert make_image(5, True, cfg)[0] != make_image(5, True, SyntheticConfig(seed=4))[0]


def test_generate_is_balanced_and_keeps_masks(tmp_path):
    counts = generate(tmp_path, SyntheticConfig(n_images=40, image_size=64))
    assert counts == {"real": 20, "fake": 20}
    assert len(list((tmp_path / "real").glob("*.jpg"))) == 20
    with np.load(tmp_path / "masks.npz") as z:
        names, masks, families = z["names"], z["masks"], z["families"]
    assert masks.shape == (40, 64, 64) and masks.dtype == np.uint8
    is_fake = np.array([n.startswith("fake/") for n in names])
    assert masks[~is_fake].max() == 0  # real images: no manipulation
    assert (masks[is_fake].reshape(20, -1).sum(axis=1) > 0).all()  # every fake marked
    assert set(families[~is_fake]) == {""} and set(families[is_fake]) == set(FAMILIES)


def test_the_recorded_family_is_the_one_drawn():
    # an eye_mismatch mask sits on one eye: far smaller than a swapped face or a GAN patch
    cfg = SyntheticConfig(image_size=64)
    areas = {f: [] for f in FAMILIES}
    for i in range(30):
        areas[family_of(i, True, cfg)].append(make_image(i, True, cfg)[1].mean())
    assert family_of(0, False, cfg) == ""
    assert max(areas["eye_mismatch"]) < min(areas["face_swap"] + areas["gan_artifacts"])


def test_each_family_changes_pixels_inside_its_mask():
    """Against the clean face it was made from (the same face parameters, rendered without
    noise), a fake differs at least 1.5 times more inside its mask than outside it, where
    only sensor noise and JPEG touch it (1.76 the least seen over 20 images a family)."""
    import io

    from PIL import Image

    from deepfake_detector.synthetic import _face_and_family, render_face

    for family in ("face_swap", "gan_artifacts", "eye_mismatch"):
        cfg = SyntheticConfig(families=(family,), image_size=64)
        for index in (11, 12, 13):
            data, mask = make_image(index, True, cfg)
            assert 0 < mask.mean() < 0.5, family  # a region, not the whole picture
            clean = render_face(_face_and_family(index, True, cfg)[1], 64)
            fake = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float64)
            change = np.abs(fake - clean).mean(axis=2)
            inside, outside = change[mask > 0].mean(), change[mask == 0].mean()
            assert inside > 1.5 * outside, (family, index, inside, outside)


def test_families_can_be_switched_off():
    cfg = SyntheticConfig(families=())
    data, mask = make_image(2, True, cfg)
    assert mask.max() == 0


# --- the built-in video clips ---------------------------------------------------------------

CLIPS = ClipsConfig(clips=4, seconds=2, fps=5, segment_share=0.4)  # 8 clips of 10 frames


def digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_clips_layout_rows_and_frames(tmp_path):
    rows = generate_clips(tmp_path, CLIPS)
    with open(tmp_path / "clips.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == [{k: str(v) for k, v in r.items()} for r in rows]
    assert sorted(digests(tmp_path)) == sorted([r["file"] for r in rows] + ["clips.csv"])
    for split in ("val", "test"):
        mine = [r for r in rows if r["split"] == split]
        assert [r["label"] for r in mine] == [0, 0, 1, 1]  # half real
        for r in mine:
            assert r["file"].startswith(f"{split}/{('real', 'fake')[r['label']]}/clip_")
        real, whole, segment = mine[0], mine[2], mine[3]
        assert real["family"] == real["start"] == real["end"] == ""
        assert (whole["start"], whole["end"]) == (0, 2) and whole["family"] in FAMILIES
        assert 0 <= segment["start"] and segment["end"] <= 2
        assert segment["end"] - segment["start"] == pytest.approx(0.4 * 2)
    assert len({r["file"].rsplit("/", 1)[1] for r in rows}) == 8  # one name per clip
    for r in rows:
        with av.open(str(tmp_path / r["file"])) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 10 and frames[0].shape == (64, 64, 3)


def test_clips_repeat_byte_for_byte(tmp_path):
    generate_clips(tmp_path / "a", CLIPS)
    generate_clips(tmp_path / "b", CLIPS)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")


def test_segment_fake_is_manipulated_inside_its_span_only():
    segments = [c for c in plan(CLIPS) if c.family and c.last - c.first < CLIPS.n_frames]
    assert segments
    for clip in segments:
        on, off = clip_frames(clip, CLIPS), clip_frames(clip, CLIPS, manipulate=False)
        for i, ((frame, mask), (plain, _)) in enumerate(zip(on, off)):
            if clip.first <= i < clip.last:
                assert mask.any() and (frame != plain)[mask].any(), (clip, i)
            else:  # the same face, motion and noise as the clip without manipulation
                assert not mask.any() and np.array_equal(frame, plain), (clip, i)


def test_a_clip_manipulation_is_the_same_in_every_frame(monkeypatch):
    # without motion, only the noise changes from frame to frame: the manipulation's effect
    # (manipulated minus plain) repeats, a manipulation drawn again per frame would not
    monkeypatch.setattr(synthetic_video, "_motion", lambda rng: {})
    for family in FAMILIES:
        clip = synthetic_video.Clip(3, "val", family, 0, CLIPS.n_frames)
        on, off = clip_frames(clip, CLIPS), clip_frames(clip, CLIPS, manipulate=False)
        effects = [a.astype(int) - b for (a, _), (b, _) in zip(on, off)]
        for effect in effects[1:]:
            assert np.mean(np.abs(effect - effects[0]) <= 1) > 0.99, family


def test_no_clips_no_folder(tmp_path):
    assert generate_clips(tmp_path / "videos", ClipsConfig(clips=0)) == []
    assert not (tmp_path / "videos").exists()
    rec = fetch("synthetic", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "cache",
                synthetic_cfg=SyntheticConfig(n_images=6), clips_cfg=ClipsConfig(clips=0))
    assert "videos" not in rec and not (tmp_path / "raw" / "videos").exists()


def test_fetch_writes_clips_that_the_split_ignores(tmp_path):
    raw = tmp_path / "raw"
    rec = fetch("synthetic", raw, root=tmp_path, cache_dir=tmp_path / "cache",
                synthetic_cfg=SyntheticConfig(n_images=20), clips_cfg=CLIPS)
    assert rec["n_images"] == 20 and rec["videos"] == {"clips": 8, "folder": "videos"}
    assert json.loads((raw / "source.json").read_text())["videos"] == rec["videos"]
    assert len(list((raw / "videos").rglob("*.mp4"))) == 8
    frames, rejected, summary = split_dataset(
        raw, tmp_path, class_names={"real": ["real"], "fake": ["fake"]},
        fractions={"train": 0.6, "val": 0.2, "test": 0.2}, seed=0, keep_existing=False,
        group_regex=None)
    assert rejected == [] and sum(len(f) for f in frames.values()) == 20
    assert not any("videos" in p for f in frames.values() for p in f["path"])


def test_odd_image_size_gives_even_frames(tmp_path):
    rows = generate_clips(tmp_path, ClipsConfig(clips=1, seconds=0.5, fps=4, image_size=35))
    with av.open(str(tmp_path / rows[0]["file"])) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (34, 34)
    with pytest.raises(ValueError, match="odd sides"):
        encode_clip(tmp_path / "odd.mp4", [np.zeros((35, 34, 3), np.uint8)], fps=4)
