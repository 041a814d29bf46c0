"""Scanning clips: the face track, the clip rule, the timing of a manipulated segment, the
outputs of `deepfake scan` and POST /scan over a real HTTP server on 127.0.0.1.

The model here is a two-layer Keras model whose P(fake) rises with the frame's red channel,
so which frames are "fake" is known exactly: the scan's bookkeeping is under test, not a
trained model's skill (the pipeline's own clips measure that: test_pipeline)."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import start_server

from deepfake_detector.synthetic_video import encode_clip
from deepfake_detector.video import VideoLimits
from deepfake_detector.video_scan import FaceTrack, clip_score, iou, scan

DARK, BRIGHT = 40, 220  # red level of ordinary frames and of "manipulated" ones


def red_model():
    """P(fake) = sigmoid(0.05 · mean red − 6): 0.02 on DARK frames, 0.99 on BRIGHT ones."""
    import keras

    inputs = keras.Input((64, 64, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([np.array([[0.05], [0.0], [0.0]], np.float32), np.array([-6.0], np.float32)])
    return model


def detector(face_crop=False):
    from deepfake_detector.inference import Detector

    return Detector(red_model(), {"model": "red", "image_size": 64, "threshold": 0.5,
                                  "temperature": 1.0, "face_crop": {"enabled": face_crop},
                                  "trained_on": {"source": "test", "images": 0}})


def frames(seconds: float, fps: int, bright: tuple[float, float] | None = None):
    """64×64 frames, red DARK, BRIGHT within ``bright`` (start, end) seconds."""
    for i in range(int(seconds * fps)):
        t = i / fps
        red = BRIGHT if bright and bright[0] <= t < bright[1] else DARK
        frame = np.zeros((64, 64, 3), np.uint8)
        frame[..., 0], frame[..., 1], frame[..., 2] = red, 90, 90
        yield frame


def clip(path: Path, seconds=4, fps=10, bright=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_clip(path, frames(seconds, fps, bright), fps)
    return path


def test_iou_and_the_face_track():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    track = FaceTrack()
    assert track.follow([]) is None and track.box is None
    assert track.follow([(0, 0, 10, 10), (50, 50, 30, 30)]) == (50, 50, 30, 30)  # largest
    # next frame: a larger newcomer elsewhere, and the tracked face moved a little
    assert track.follow([(100, 0, 60, 60), (52, 51, 30, 30)]) == (52, 51, 30, 30)
    assert track.follow([]) is None and track.box == (52, 51, 30, 30)  # a frame without
    assert track.follow([(0, 0, 20, 20), (200, 200, 25, 25)]) == (200, 200, 25, 25)  # lost


def test_clip_score_is_the_mean_of_the_top_share():
    assert clip_score([0.1, 0.9, 0.2, 0.8, 0.3], 0.4) == pytest.approx(0.85)
    assert clip_score([0.1, None, 0.7], 0.01) == pytest.approx(0.7)  # at least one frame
    assert clip_score([None, None], 0.2) is None


def test_a_segment_is_found_at_its_time_and_calls_the_clip_fake(tmp_path):
    path = clip(tmp_path / "seg.mp4", seconds=6, fps=10, bright=(3.0, 4.5))
    result = scan(detector(), str(path), VideoLimits(fps=2), top_fraction=0.2)
    assert [f["t"] for f in result["frames"]] == [i / 2 for i in range(12)]
    bright = [f["t"] for f in result["frames"] if f["p_fake"] > 0.5]
    assert bright == [3.0, 3.5, 4.0]
    assert result["frames_scored"] == result["frames_sampled"] == 12
    assert result["faces_found"] is None  # whole frames: no face search
    assert 3.0 <= result["top"][0]["t"] < 4.5 and len(result["top"]) == 3
    assert result["verdict"] == "fake" and result["p_fake"] > 0.9  # top 20%: 3 of 12 frames
    assert "3 of 12" in result["rule"]
    plain = scan(detector(), path.read_bytes(), VideoLimits(fps=2), top_fraction=0.2)
    assert plain["p_fake"] == result["p_fake"]  # bytes and a path scan alike


def test_the_clip_threshold_fitted_on_validation_clips_decides_label_and_verdict(tmp_path):
    path = clip(tmp_path / "seg.mp4", seconds=4, fps=10, bright=(1.0, 2.0))
    judge = detector()  # image threshold 0.5; the clip rule fitted stricter
    judge.settings["video"] = {"top_fraction": 0.5, "threshold": 0.9, "chosen_on": "8 clips"}
    result = scan(judge, str(path), VideoLimits(fps=2))
    assert 0.5 < result["p_fake"] < 0.9  # 2 bright of the top 4 of 8 frames
    assert (result["label"], result["verdict"], result["threshold"]) == ("real", "real", 0.9)
    assert "4 of 8" in result["rule"] and "from 8 clips" in result["rule"]


def test_a_model_that_frames_faces_lists_faceless_frames_unscored(tmp_path):
    path = clip(tmp_path / "plain.mp4", seconds=2, fps=10)
    result = scan(detector(face_crop=True), str(path), VideoLimits(fps=2))
    assert result["frames_sampled"] == 4 and result["frames_scored"] == 0
    assert all(f["face"] is False and f["p_fake"] is None for f in result["frames"])
    assert (result["verdict"], result["reason"], result["p_fake"]) == (
        "inconclusive", "no_faces", None)
    assert result["faces_found"] == 0 and result["top"] == []


def test_a_real_face_is_tracked_across_frames(tmp_path, shared_data):
    from PIL import Image

    photo = sorted((shared_data / "real").glob("*.jpg"))[0]
    face = np.asarray(Image.open(photo).convert("RGB").resize((160, 160)))

    def moving():
        for i in range(20):  # the face drifts right 4 px a frame over a grey 320×240 frame
            frame = np.full((240, 320, 3), 128, np.uint8)
            frame[40:200, 20 + 4 * i:180 + 4 * i] = face
            yield frame

    path = tmp_path / "face.mp4"
    encode_clip(path, moving(), 10)
    result = scan(detector(face_crop=True), str(path), VideoLimits(fps=5))
    boxes = [f["box"] for f in result["frames"]]
    assert result["faces_found"] == result["frames_scored"] == len(boxes) == 10
    lefts = [b[0] for b in boxes]
    assert lefts == sorted(lefts) and lefts[-1] - lefts[0] > 50  # it follows the drift
    assert all(iou(a, b) > 0.3 for a, b in zip(boxes, boxes[1:]))


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "deepfake_detector.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_deepfake_scan_prints_a_line_per_clip_and_writes_json_and_timelines(tmp_path):
    from conftest import ROOT

    model_file = tmp_path / "red.keras"
    red_model().save(model_file)
    clips = tmp_path / "clips"
    for i in range(3):
        clip(clips / "real" / f"r{i}.mp4", seconds=3, fps=8)
        clip(clips / "fake" / f"f{i}.mp4", seconds=3, fps=8, bright=(1.0, 2.0))
    (clips / "fake" / "notes.mp4").write_text("not a video")
    out = tmp_path / "out"
    done = run_cli("scan", str(clips), "--model", str(model_file), "--no-face-crop", "--out",
                   str(out), cwd=ROOT)
    assert done.returncode == 1, done.stderr  # one clip rejected
    lines = done.stdout.splitlines()
    assert sum("frames 6/6 scored" in line for line in lines) == 6
    assert any("notes.mp4  rejected: not_video" in line for line in lines)
    assert sum(": fake  " in line for line in lines) == 3
    assert "clips labelled by folder: 6 (3 fake): ROC AUC 1.000, accuracy 1.000" in done.stdout
    report = json.loads((out / "scan.json").read_text())
    assert report["labelled"] == {"clips": 6, "fake": 3, "roc_auc": 1.0, "accuracy": 1.0,
                                  "out_of_domain": 0}
    one = json.loads((out / "f0.json").read_text())
    assert [f["t"] for f in one["frames"]] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert 1.0 <= one["top"][0]["t"] < 2.0
    assert (out / "f0.timeline.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}{e}" for s in ("r0", "r1", "r2", "f0", "f1", "f2")
         for e in (".json", ".timeline.png")] + ["scan.json"])


def test_post_scan_answers_the_timeline_with_crops(scan_service, tmp_path):
    data = clip(tmp_path / "c.mp4", seconds=3, fps=8).read_bytes()
    reply = httpx.post(f"{scan_service}/scan", files={"file": ("c.mp4", data, "video/mp4")},
                       timeout=120)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["frames_sampled"] == body["frames_scored"] == 6
    assert all(f["crop"].startswith("data:image/png;base64,") for f in body["frames"])
    assert [t["index"] for t in body["top"]] and body["top"][0]["thumbnail"].startswith(
        "data:image/jpeg;base64,")
    assert body["verdict"] in ("fake", "real") and body["model"]["uri"]
    import hashlib

    assert body["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name,data,status,reason", [
    ("notes.mp4", b"plain text, not a video", 415, "not_video"),
    ("empty.mp4", b"", 415, "zero_bytes"),
])
def test_post_scan_refuses_what_is_not_a_video(scan_service, name, data, status, reason):
    reply = httpx.post(f"{scan_service}/scan", files={"file": (name, data)}, timeout=60)
    assert reply.status_code == status, reply.text
    assert reply.json()["detail"]["reason"] == reason


def test_post_scan_caps_size_and_concurrency(scan_service, tmp_path, monkeypatch):
    import threading

    from deepfake_detector import video_scan

    big = b"\x00" * (2 * 2**20)  # past serve.max_video_mb (1 here): refused while read
    reply = httpx.post(f"{scan_service}/scan", files={"file": ("big.mp4", big)}, timeout=60)
    assert reply.status_code == 413 and "serve.max_video_mb" in reply.text
    # one scan at a time (serve.scan_concurrency 1): the first is held inside its scan
    started, release, real = threading.Event(), threading.Event(), video_scan.scan

    def held(*args, **kwargs):
        started.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(video_scan, "scan", held)
    from test_service import make_app

    server, thread, url = start_server(make_app(face_crop=False, scan_concurrency=1))
    data = clip(tmp_path / "c.mp4", seconds=1, fps=8).read_bytes()
    first: list = []
    client = threading.Thread(target=lambda: first.append(httpx.post(
        f"{url}/scan", files={"file": ("c.mp4", data)}, timeout=120)))
    try:
        client.start()
        assert started.wait(60)
        second = httpx.post(f"{url}/scan", files={"file": ("c.mp4", data)}, timeout=60)
        assert second.status_code == 503 and second.headers["retry-after"] == "10"
        release.set()
        client.join(120)
        assert first[0].status_code == 200  # the held scan finishes
        third = httpx.post(f"{url}/scan", files={"file": ("c.mp4", data)}, timeout=60)
        assert third.status_code == 200  # and its slot was given back
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)


def test_frames_grouped_by_video_get_a_threshold_fitted_on_validation_videos():
    from deepfake_detector.video_eval import grouped_metrics

    cfg = {"threshold": "max_accuracy", "target_fake_recall": 0.95}

    def frames(videos):  # (video id, label, frame scores) → paths, labels, scores
        rows = [(f"data/raw/{'fake' if y else 'real'}/{vid}_{i}.jpg", y, p)
                for vid, y, scores in videos for i, p in enumerate(scores)]
        paths, ys, ps = zip(*rows)
        return np.array(paths), np.array(ys), np.array(ps)

    # real videos peak at 0.4, fake ones at 0.8 (top 50% of frames): any threshold between
    val = frames([("v1", 0, [0.1, 0.4]), ("v2", 0, [0.2, 0.3]), ("v3", 1, [0.2, 0.8]),
                  ("v4", 1, [0.7, 0.9])])
    # a source video and its fake share the id "s1": two videos, not one of mixed labels
    test = frames([("s1", 0, [0.1, 0.2]), ("s1", 1, [0.1, 0.9]), ("s2", 0, [0.6, 0.1])])
    rule, metrics = grouped_metrics(val, test, r"^(?:.*/)?([a-z]\d)_", 0.5, cfg, 0.99,
                                    "data/raw/")
    assert 0.35 < rule["threshold"] <= 0.8 and rule["chosen_on"].startswith("4 validation")
    assert metrics["group_videos"] == 3 and metrics["group_roc_auc"] == 1.0
    assert metrics["group_accuracy"] == pytest.approx(
        np.mean([0.2 < rule["threshold"], 0.9 >= rule["threshold"], 0.6 < rule["threshold"]]))
    # no validation videos of both classes: the image threshold, said so
    one_class = frames([("v1", 0, [0.1, 0.4])])
    rule, _ = grouped_metrics(one_class, test, r"^(?:.*/)?([a-z]\d)_", 0.5, cfg, 0.99,
                              "data/raw/")
    assert rule["threshold"] == 0.99 and "image threshold" in rule["chosen_on"]
    # the regex reads paths relative to data/raw, as the split stage does
    _, anchored = grouped_metrics(val, test, r"^(?:real|fake)/([a-z]\d)_", 0.5, cfg, 0.5,
                                  "data/raw/")
    assert anchored["group_videos"] == 3


def test_clip_metrics_time_the_segment_by_the_top_frame(tmp_path):
    """evaluate's clip part on a folder laid out as the built-in clips: the threshold from the
    validation clips, the segment hit counted with the span's end excluded."""
    from deepfake_detector.video_eval import evaluate_clips

    rows = []
    # (label, kind, bright span in the clip, span recorded); the last two segment clips are
    # bright from 1.0 s: one recorded as [1, 2) (its top frame, 1.0 s, is inside), one as
    # [0.5, 1) (its top frame lies exactly at the end: outside, as frames are start <= t < end)
    clips = [(0, "", None, None), (0, "", None, None), (1, "whole", (0, 3), (0, 3)),
             (1, "segment", (1, 1.5), (1, 2)), (1, "segment", (1, 1.5), (0.5, 1))]
    for split in ("val", "test"):
        for i, (label, kind, bright, span) in enumerate(clips):
            rel = f"{split}/{'fake' if label else 'real'}/c{i}.mp4"
            clip(tmp_path / rel, seconds=3, fps=8, bright=bright)
            rows.append(f"{rel},{split},{label},{'face_swap' if label else ''},{kind},"
                        + (f"{span[0]},{span[1]}" if span else ","))
    (tmp_path / "clips.csv").write_text("file,split,label,family,kind,start,end\n"
                                        + "\n".join(rows) + "\n")
    params = {"video": {"fps": 2, "max_frames": 600, "top_fraction": 0.2},
              "evaluate": {"threshold": "max_accuracy", "target_fake_recall": 0.95}}
    rule, metrics = evaluate_clips(detector(), tmp_path, params)
    assert rule["chosen_on"] == "5 validation clips" and (rule["fps"], rule["max_frames"]) == (
        2, 600)
    assert metrics["video_roc_auc"] == 1.0 and metrics["video_accuracy"] == 1.0
    assert (metrics["video_segment_called"], metrics["video_segment_top1"]) == (2, 0.5)


def test_the_labelled_summary_counts_clips_out_of_the_models_domain():
    from deepfake_detector.video_report import labelled_summary

    def row(folder, p, label, reason=""):
        return {"file": f"clips/{folder}/c.mp4", "p_fake": p, "label": label, "reason": reason}

    summary = labelled_summary([row("real", 0.2, "real"), row("fake", 0.9, "fake",
                                                              "out_of_domain"),
                                row("fake", None, None, "no_faces"), row("other", 0.5, "fake")],
                               {"real": ["real"], "fake": ["fake"]})
    assert summary == {"clips": 2, "fake": 1, "roc_auc": 1.0, "accuracy": 1.0,
                       "out_of_domain": 1}
