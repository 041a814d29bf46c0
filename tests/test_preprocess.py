"""preprocess: arrays line up with paths, every left-out file is listed once with its reason."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from helpers import arrange, bad_files, mini_project, run_stage, snapshot, write_faces

from deepfake_detector.images import load_image
from deepfake_detector.preprocess import decode_files, preprocess_split


def test_decode_keeps_order_and_reasons(tmp_path):
    good = write_faces(tmp_path, 5, False)
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    files = [str(p) for p in good[:2]] + [str(tmp_path / "bad.jpg")] + [str(p) for p in good[2:]]
    x, keep, reasons, *_ = decode_files(files, 32, 10**8, workers=2)
    assert keep.tolist() == [True, True, False, True, True, True]
    assert reasons == {2: "not_image"}
    for i in (0, 1, 3, 4, 5):
        assert np.array_equal(x[i], load_image(files[i], 32))


def test_preprocess_split_compacts_rows_and_masks(tmp_path):
    raw = tmp_path / "data" / "raw"
    paths = write_faces(raw / "real", 4, False) + write_faces(raw / "fake", 3, True)
    (raw / "real" / "zz_empty.jpg").write_bytes(b"")
    rel = [p.relative_to(tmp_path).as_posix() for p in paths]
    rel.insert(1, "data/raw/real/zz_empty.jpg")
    manifest = pd.DataFrame({"path": rel, "label": [0, 0, 0, 0, 0, 1, 1, 1]})
    masks = {f"fake/{p.name}": np.full((64, 64), 1, np.uint8) for p in paths[4:]}
    families = {f"fake/{p.name}": "face_swap" for p in paths[4:]}
    rejected = preprocess_split(manifest, tmp_path / "out.npz", root=tmp_path, raw_dir=raw,
                                size=32, max_pixels=10**8, masks=(masks, families))
    assert rejected == [{"file": "data/raw/real/zz_empty.jpg", "stage": "preprocess",
                         "reason": "zero_bytes"}]
    with np.load(tmp_path / "out.npz") as z:
        assert z["x"].shape == (7, 32, 32, 3) and z["x"].dtype == np.uint8
        assert z["y"].tolist() == [0, 0, 0, 0, 1, 1, 1]
        assert z["paths"].tolist() == [r for r in rel if "empty" not in r]
        assert z["masks"].shape == (7, 32, 32)
        assert z["masks"][:4].max() == 0 and z["masks"][4:].min() == 1
        assert z["family"].tolist() == [""] * 4 + ["face_swap"] * 3
        for i, p in enumerate(z["paths"]):
            assert np.array_equal(z["x"][i], load_image(tmp_path / p, 32))


def data_stages(project, source):
    for stage in ("fetch", "split", "preprocess"):
        done = run_stage(project, stage)
        if done.returncode:
            return stage, done
    return None, done


def test_stages_list_every_bad_file_once_and_touch_nothing_else(tmp_path):
    src = tmp_path / "incoming"
    faces = {"real": write_faces(tmp_path / "r", 20, False),
             "fake": write_faces(tmp_path / "f", 20, True, start=50)}
    arrange(faces, src, "splits",
            extra=bad_files(faces["real"][1].read_bytes(), faces["real"][0].read_bytes()))
    big = src / "train" / "fake" / "huge.png"
    from PIL import Image

    Image.new("RGB", (2000, 1000)).save(big)
    project = mini_project(tmp_path / "proj", ROOT, {"data.source": str(src),
                                                     "preprocess.max_pixels": 1_000_000})
    before_src = snapshot(src)
    failed, done = data_stages(project, src)
    assert failed is None, done.stderr
    rejected = pd.read_csv(project / "data" / "processed" / "rejected.csv")
    assert list(rejected.columns) == ["file", "stage", "reason"]
    by_name = {f.split("/")[-1]: (s, r) for f, s, r in rejected.itertuples(index=False)}
    assert by_name == {
        "zero.jpg": ("split", "zero_bytes"), "text.jpg": ("preprocess", "not_image"),
        "truncated.jpg": ("preprocess", "truncated"), "huge.png": ("preprocess",
                                                                   "too_many_pixels"),
        "zz_duplicate.jpg": ("split", "duplicate"), "conflict.jpg": ("split", "label_conflict"),
        "img0000.jpg": ("split", "label_conflict"),
    }
    kept = sum(len(np.load(project / "data" / "processed" / f"{s}.npz")["y"])
               for s in ("train", "val", "test"))
    assert kept + len(rejected) == 40 + 6  # nothing lost: every file kept or listed
    assert snapshot(src) == before_src
    written = {p.relative_to(project).parts[0] for p in project.rglob("*") if p.is_file()}
    assert written <= {"stages", "src", "params.yaml", "data", "metrics", "reports", ".cache"}
    data_json = json.loads((project / "metrics" / "data.json").read_text())
    assert data_json["skipped"] == {"duplicate": 1, "label_conflict": 2, "zero_bytes": 1}


def test_too_many_rejected_fails_the_stage_with_a_clear_message(tmp_path):
    src = tmp_path / "incoming"
    write_faces(src / "real", 3, False)
    write_faces(src / "fake", 3, True)
    for i in range(3):
        (src / "fake" / f"junk{i}.jpg").write_bytes(b"junk" * 10)
    project = mini_project(tmp_path / "proj", ROOT, {"data.source": str(src)})
    failed, done = data_stages(project, src)
    assert failed == "preprocess" and done.returncode == 1
    assert "more than preprocess.max_rejected_share=0.2" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_memory_stays_bounded_for_150k_images(tmp_path):
    """150,000 images at 64×64: peak RSS ≤ output arrays + 100 MiB (the README quotes 69 MiB
    measured by this test, 2026-11-29)."""
    one = write_faces(tmp_path, 1, False)[0]
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'src')!r})
        import numpy as np, pandas as pd
        from deepfake_detector.memory import peak_rss_bytes
        from pathlib import Path
        from deepfake_detector.preprocess import preprocess_split
        base = peak_rss_bytes()
        n = 150_000
        m = pd.DataFrame({{"path": [{one.name!r}] * n, "label": np.arange(n) % 2}})
        preprocess_split(m, Path({str(tmp_path / 'out.npz')!r}), root=Path({str(tmp_path)!r}),
                         raw_dir=Path({str(tmp_path)!r}), size=64, max_pixels=10**8, masks=None)
        peak = peak_rss_bytes()
        print(base, peak)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    base, peak = map(int, done.stdout.split())
    output = 150_000 * 64 * 64 * 3
    print(f"peak RSS {peak / 2**20:.0f} MiB; output arrays {output / 2**20:.0f} MiB; "
          f"at start {base / 2**20:.0f} MiB")
    assert peak - base < output + 100 * 2**20


def test_a_mask_is_framed_by_the_box_its_image_was_framed_by():
    """With a face crop the preprocess stage frames each mask by its image's box (fractions
    of the image), so a mask at another resolution still lines up."""
    from deepfake_detector.images import resize_mask

    mask = np.zeros((64, 64), np.uint8)
    mask[:, 48:] = 1  # the right quarter
    framed = resize_mask(mask, 16, box=(0.5, 0.25, 1.0, 0.75))  # the right half, centred
    assert framed[:, 8:].all() and not framed[:, :8].any()
    assert np.array_equal(resize_mask(mask, 16), resize_mask(mask, 16, box=(0, 0, 1, 1)))
