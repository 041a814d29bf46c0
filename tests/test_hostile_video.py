"""Hostile input to video scanning, fed from outside as a user or a client would: the
``deepfake scan`` command as a subprocess, ``POST /scan`` over a real HTTP server on
127.0.0.1, and the registered model's ``video`` column. Each bad input must get one clear
line (CLI), a 4xx JSON answer in words (service) or an ``error`` in its row (pyfunc): never a
traceback or a 5xx, in bounded time and memory, with nothing written outside the folder the
command owns.

The CLI runs use ``tests/test_hostile_cli.py``'s wrapper (exit code, seconds, the child's own
peak RSS). Only one of them loads TensorFlow (the folder of odd clips); every refusal comes
before the model is loaded, which ``keras_lookalike`` proves: a command that reached Keras
with it would fail."""

import base64
import io
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from PIL import Image
from test_hostile_cli import FAST, HANG, SMALL_MB, deepfake, keras_lookalike, state
from test_video import eight_k_clip, grey, write_clip
from test_video_scan import clip, detector, red_model

from deepfake_detector.video import REASONS, VideoRejected
from deepfake_detector.video_scan import scan

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
ODD = ["new\nline.mp4", "carriage\rreturn.mp4", os.fsdecode(b"not-utf8-\xff.mp4")]


@pytest.fixture
def project(tmp_path):
    """The project's params.yaml in a folder of its own: the command's working folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())
    return folder


def stderr_lines(run) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.strip()]


def wide_clip(path: Path) -> Path:
    """4096×2 frames: the timeline's thumbnail once shrank them to 240×0 (a ValueError)."""
    return Path(write_clip(str(path), [np.full((2, 4096, 3), 40, np.uint8)] * 4, 2))


def colourless_avi(path: Path, from_frame: int) -> bytes:
    """An MPEG-4 clip whose frames decode but whose colour settings, from frame
    ``from_frame`` on, swscale refuses (found by fuzzing): ``to_ndarray`` raised
    ``av.error.OSError`` (ENOTSUP), which is an OSError: the CLI stopped every clip with
    "error: Operation not supported", the service answered 500."""
    data = bytearray(open(write_clip(str(path), [grey(i) for i in range(20)], 10, "mpeg4"),
                          "rb").read())
    headers = [i for i in range(len(data)) if data[i:i + 4] == b"\x00\x00\x01\xb5"]
    assert len(headers) == 20  # the encoder repeats the visual object header each frame
    for at in headers[from_frame:]:
        data[at + 4:at + 9] = bytes.fromhex("8119407a56")
    return bytes(data)


# --- deepfake scan: usage errors, refusals before the model loads -------------------------

@pytest.mark.parametrize("args", [["--fps", "0"], ["--fps", "-1"], ["--fps", "nan"],
                                  ["--max-frames", "0"], ["--max-frames", "-3"]])
def test_scan_sampling_options_out_of_range_are_usage_errors(tmp_path, project, args):
    """Before: --fps 0 and --max-frames 0 were ignored (falsy), --fps -1 sampled every frame,
    --max-frames -3 scanned nothing and printed '-', --fps nan was a ValueError after
    TensorFlow loaded."""
    video = clip(tmp_path / "c.mp4", seconds=1, fps=4)
    model = keras_lookalike(tmp_path / "model.keras")
    run = deepfake("scan", video, "--model", model, "--no-face-crop", *args, cwd=project,
                   tmp_path=tmp_path)
    errors = [line for line in stderr_lines(run) if "error:" in line]
    assert run.returncode == 2 and len(errors) == 1, run.stderr[-2000:]
    assert f"argument {args[0]}: {args[1]!r}" in errors[0] and "Traceback" not in run.stderr
    assert run.seconds < FAST and run.stdout == ""


def test_scan_refuses_a_fifo_and_a_device_named_on_the_command_line(tmp_path, project):
    fifo = tmp_path / "x.mp4"
    os.mkfifo(fifo)  # no writer: opening it for reading would block for ever
    model = keras_lookalike(tmp_path / "model.keras")
    before = state(tmp_path)
    for path, kind in ((fifo, "a FIFO"), ("/dev/zero", "a character device")):
        run = deepfake("scan", path, "--model", model, cwd=project, tmp_path=tmp_path)
        assert run.one_error_line() == (f"error: {path}: {kind}, not a regular file; only "
                                        "regular files are read")
        assert run.returncode == 2 and run.seconds < FAST and run.peak_mb < SMALL_MB
    assert state(tmp_path) == before


def test_scan_lists_files_it_will_not_open_without_loading_the_model(tmp_path, project):
    """A 3 GiB sparse file past video.max_file_mb (2048), a FIFO and a symbolic link loop in a
    folder: listed with the video reasons and a detail, never opened, and (nothing being left
    to scan) the model never loaded. Before: ``too_large`` without saying which cap,
    ``not_regular_file`` / ``unreadable`` (not video reasons), and TensorFlow loaded for
    nothing (8 s, 770 MB)."""
    huge = tmp_path / "huge.mp4"
    with open(huge, "wb") as fh:
        fh.truncate(3 << 30)
    folder = tmp_path / "clips"
    folder.mkdir()
    os.mkfifo(folder / "x.mp4")
    os.symlink("loop2.mp4", folder / "loop1.mp4")
    os.symlink("loop1.mp4", folder / "loop2.mp4")
    model = keras_lookalike(tmp_path / "model.keras")
    before = state(tmp_path)
    run = deepfake("scan", huge, folder, "--model", model, "--json", cwd=project,
                   tmp_path=tmp_path)
    assert run.returncode == 1 and run.stderr == "", run.stderr[-2000:]
    assert run.seconds < FAST and run.peak_mb < SMALL_MB
    clips = {Path(c["file"]).name: (c["error"], c["detail"])
             for c in json.loads(run.stdout)["clips"]}
    assert clips == {
        "huge.mp4": ("too_large", "3,221,225,472 bytes, more than the 2048 MB cap "
                                  "(video.max_file_mb)"),
        "loop1.mp4": ("not_video", "cannot open: Too many levels of symbolic links"),
        "loop2.mp4": ("not_video", "cannot open: Too many levels of symbolic links"),
        "x.mp4": ("not_video", "a FIFO, not a regular file")}
    assert state(tmp_path) == before


def test_scan_out_folders_that_cannot_be_written_are_refused_before_any_work(tmp_path,
                                                                               project):
    """Before: ``--out /proc/…`` passed the ``os.access`` check (root may write anywhere, by
    that check) and failed after TensorFlow loaded; now the folder is made and removed
    again, or a file made and removed in it, before anything else."""
    video = clip(tmp_path / "c.mp4", seconds=1, fps=4)
    model = keras_lookalike(tmp_path / "model.keras")
    (tmp_path / "a-file").write_text("mine\n")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    cases = {str(tmp_path / "a-file"): "exists and is not a folder",
             str(tmp_path / "a-file" / "sub"): "is not a folder",
             # root: the probe's words; anyone else: os.access's ("cannot write in folder")
             "/proc/hostile-video-scan/out": "cannot ",
             "/proc": "cannot write in "}
    if os.geteuid() != 0:  # root writes in a 0o555 folder
        cases[str(locked / "out")] = "cannot write in folder"
    before = state(tmp_path)
    for out, said in cases.items():
        run = deepfake("scan", video, "--model", model, "--out", out, cwd=project,
                       tmp_path=tmp_path)
        line = run.one_error_line()
        assert line.startswith(f"error: --out {out!r}: ") and said in line, line
        assert run.returncode == 2 and run.seconds < FAST and run.peak_mb < SMALL_MB
    assert state(tmp_path) == before and sorted(os.listdir(project)) == ["params.yaml"]


def test_scan_of_a_folder_without_videos_is_one_line(tmp_path, project):
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "notes.txt").write_text("no clips here\n")
    (folder / "sub.mp4").mkdir()  # a folder named like a clip is not one
    run = deepfake("scan", folder, "--model", keras_lookalike(tmp_path / "model.keras"),
                   cwd=project, tmp_path=tmp_path)
    assert run.one_error_line() == ("error: no video files (.mp4 .mov .m4v .webm .mkv .avi) "
                                    "under the given folders")
    assert run.returncode == 2 and run.seconds < FAST


# --- deepfake scan: a folder of odd clips, scanned once by the real command ---------------

def test_a_folder_of_odd_clips_gives_one_output_each_and_overwrites_nothing(tmp_path,
                                                                            project):
    """Before: a name that is not UTF-8 was a traceback in the timeline's title (matplotlib
    cannot draw a lone surrogate) after its JSON was written; a 4096×2 clip a ValueError in
    its thumbnail; a clip whose frames cannot be turned into RGB stopped the whole command
    ("error: Operation not supported"); a clip named scan.mp4 had its JSON overwritten by
    scan.json; a carriage return in a name printed a matplotlib glyph warning. Same stems in
    two folders were already numbered."""
    model = tmp_path / "red.keras"
    red_model().save(model)
    clips = tmp_path / "clips"
    clip(clips / "a" / "clip.mp4", seconds=2, fps=4, bright=(0, 2))
    clip(clips / "b" / "clip.mp4", seconds=2, fps=4)
    clip(clips / "scan.mp4", seconds=1, fps=4)
    for name in ODD:  # written under a plain name: the encoder needs a UTF-8 one
        os.rename(clip(tmp_path / "plain.mp4", seconds=1, fps=4), clips / name)
    wide_clip(clips / "wide.mkv")
    (clips / "colourless.avi").write_bytes(colourless_avi(tmp_path / "plain.avi", 0))
    (clips / "damaged.avi").write_bytes(colourless_avi(tmp_path / "plain.avi", 7))
    os.mkfifo(clips / "pipe.mp4")
    os.symlink("loop.mp4", clips / "loop.mp4")
    with open(clips / "huge.mov", "wb") as fh:
        fh.truncate(3 << 30)
    (tmp_path / "plain.avi").unlink()
    before = state(tmp_path)
    out = tmp_path / "out"
    run = deepfake("scan", clips, "--model", model, "--no-face-crop", "--out", out,
                   cwd=project, tmp_path=tmp_path)
    assert run.returncode == 1, run.stderr[-3000:]  # some clips rejected
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr, run.stderr[-3000:]
    assert run.seconds < HANG
    report = json.loads((out / "scan.json").read_text())
    by_name = {Path(c["file"]).name: c for c in report["clips"]}
    assert set(by_name) == {"clip.mp4", "scan.mp4", "wide.mkv", "colourless.avi",
                            "damaged.avi", "pipe.mp4", "loop.mp4", "huge.mov",
                            "new\nline.mp4", "carriage\rreturn.mp4", "not-utf8-\\xff.mp4"}
    assert len(report["clips"]) == 12  # clip.mp4 twice
    rejected = {name: c["error"] for name, c in by_name.items() if c.get("error")}
    assert rejected == {"colourless.avi": "undecodable", "pipe.mp4": "not_video",
                        "loop.mp4": "not_video", "huge.mov": "too_large"}
    assert set(rejected.values()) <= set(REASONS)
    assert "could not be turned into RGB" in by_name["damaged.avi"]["warning"]
    scanned = [c for c in report["clips"] if not c.get("error")]
    outputs = [name for c in scanned for name in c["outputs"]]
    assert len(outputs) == len(set(outputs)) == 2 * len(scanned) == 16
    assert sorted(os.listdir(out)) == sorted(outputs + ["scan.json"])
    for c in scanned:  # each clip's own JSON, none overwritten by another
        assert json.loads((out / c["outputs"][0]).read_text())["file"] == c["file"]
        assert (out / c["outputs"][1]).read_bytes().startswith(b"\x89PNG")
    pair = sorted((c["file"], c["verdict"]) for c in scanned if c["file"].endswith("clip.mp4"))
    assert pair == [(str(clips / "a" / "clip.mp4"), "fake"), (str(clips / "b" / "clip.mp4"),
                                                               "real")]
    lines = run.stdout.splitlines()
    assert any(line.startswith(f"{clips}/new\\nline.mp4  ") for line in lines)
    assert any(line.startswith(f"{clips}/carriage\\rreturn.mp4  ") for line in lines)
    assert all("\r" not in line for line in lines)
    after = state(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out")} == before


# --- POST /scan -------------------------------------------------------------------------

def eight_k(tmp_path) -> bytes:
    return open(eight_k_clip(str(tmp_path / "8k.avi")), "rb").read()


def gif(n_frames: int) -> bytes:
    frames = [Image.new("RGB", (64, 64), (40 * i, 90, 90)) for i in range(n_frames)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=n_frames > 1, append_images=frames[1:], duration=250)
    return buf.getvalue()


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 90, 90)).save(buf, "PNG")
    return buf.getvalue()


def over_the_cap():
    """A 2.5 MB file part sent chunked: no Content-Length to refuse it by."""
    yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
    for _ in range(40):
        yield b"\0" * 65536
    yield b"\r\n--B--\r\n"


def bad_requests(tmp_path):
    """(name, httpx.post keywords, status, words the answer must hold)."""
    good = clip(tmp_path / "c.mp4", seconds=2, fps=4).read_bytes()
    ten_hours = open(write_clip(str(tmp_path / "ten.mkv"), [grey(0, 16, 16)] * 2, 10,
                                pts_ms=[0, 36_000_000]), "rb").read()
    multipart = {"content-type": "multipart/form-data; boundary=B"}
    return [
        ("no body", {}, 400, "one video in the field 'file' (/scan)"),
        ("another field", {"files": {"video": ("c.mp4", good)}}, 400, "(/scan)"),
        ("a text field", {"files": {"file": (None, "hello")}}, 400, "(/scan)"),
        ("a form", {"data": {"file": "c.mp4"}}, 400, "(/scan)"),
        ("two files", {"files": [("file", ("a.mp4", good)), ("file", ("b.mp4", good))]}, 413,
         "more than 1 file in one request (POST /scan takes one video, in the field 'file')"),
        ("declared too large", {"files": {"file": ("big.mp4", b"\0" * (5 << 19))}}, 413,
         "big.mp4: larger than 1048576 bytes (serve.max_video_mb)"),
        ("chunked too large", {"content": over_the_cap(), "headers": multipart}, 413,
         "big.mp4: larger than 1048576 bytes (serve.max_video_mb)"),
        ("random bytes", {"files": {"file": ("r.mp4", np.random.default_rng(0).bytes(50_000))}},
         415, "r.mp4: not a video this service can scan (not_video)"),
        ("truncated mp4", {"files": {"file": ("t.mp4", good[: len(good) // 2])}}, 415,
         "t.mp4: not a video this service can scan ("),
        ("8K frames", {"files": {"file": ("8k.avi", eight_k(tmp_path))}}, 415,
         "(too_many_pixels)"),
        ("10 hours declared", {"files": {"file": ("ten.mkv", ten_hours)}}, 415, "(too_long)"),
        ("a still PNG", {"files": {"file": ("still.png", png())}}, 415, "(not_video)"),
        ("no RGB frame", {"files": {"file": ("c.avi", colourless_avi(tmp_path / "p.avi", 0))}},
         415, "(undecodable)"),
    ]


def test_post_scan_bad_requests_get_4xx_json_in_words_and_the_server_keeps_answering(
        scan_service, tmp_path):
    """Before: the missing-file 400 named only /predict and /explain; two files got 413
    "more than 1 files in one request (serve.max_files)" (a setting of 100) and a video past
    the cap "(serve.max_upload_mb)" instead of serve.max_video_mb; a clip with no frame
    convertible to RGB was a 500."""
    for name, kwargs, status, words in bad_requests(tmp_path):
        started = time.perf_counter()
        reply = httpx.post(f"{scan_service}/scan", timeout=60, **kwargs)
        assert reply.status_code == status, (name, reply.text[:500])
        detail = reply.json()["detail"]
        text = detail if isinstance(detail, str) else detail["message"]
        assert words in text, (name, text)
        if status == 415:
            assert detail["reason"] in REASONS and detail["detail"], name
        assert time.perf_counter() - started < 10, name
        assert httpx.get(f"{scan_service}/health", timeout=10).json()["status"] == "ok", name


def test_post_scan_takes_gifs_odd_shapes_and_damaged_frames(scan_service, tmp_path):
    """FFmpeg opens a GIF as video: an animated GIF is scanned as a clip (its frames' delays
    are their times), and a still GIF as a clip of one frame, whose verdict is the frame's,
    like the image's. Accepted: a GIF is how short clips are often shared, and a clip of one
    frame is still an honest answer. A still PNG, JPEG or WebP is refused (not_video)."""
    moving = httpx.post(f"{scan_service}/scan", files={"file": ("a.gif", gif(6))}, timeout=60)
    assert moving.status_code == 200, moving.text[:500]
    assert [f["t"] for f in moving.json()["frames"]] == [0.0, 0.5, 1.0]
    still = httpx.post(f"{scan_service}/scan", files={"file": ("s.gif", gif(1))}, timeout=60)
    assert still.status_code == 200 and still.json()["frames_sampled"] == 1
    wide = httpx.post(f"{scan_service}/scan", files={
        "file": ("wide.mkv", wide_clip(tmp_path / "wide.mkv").read_bytes())}, timeout=60)
    assert wide.status_code == 200, wide.text[:500]  # before: 500 (the thumbnail)
    assert wide.json()["frames_scored"] == 4 and wide.json()["top"][0]["thumbnail"]
    damaged = httpx.post(f"{scan_service}/scan", files={
        "file": ("d.avi", colourless_avi(tmp_path / "p.avi", 7))}, timeout=60)
    assert damaged.status_code == 200, damaged.text[:500]  # before: 500
    body = damaged.json()
    assert [f["t"] for f in body["frames"]] == [0.0, 0.5]
    assert body["warning"].startswith("damaged: ") and "RGB" in body["warning"]


# --- the reader and the scan, directly --------------------------------------------------

def test_frames_that_cannot_be_turned_into_rgb(tmp_path):
    """All of them: undecodable; some: the frames before, and a warning."""
    with pytest.raises(VideoRejected) as caught:
        scan(detector(), colourless_avi(tmp_path / "p.avi", 0))
    assert caught.value.reason == "undecodable" and "RGB" in caught.value.detail
    result = scan(detector(), colourless_avi(tmp_path / "p.avi", 7))
    assert [f["t"] for f in result["frames"]] == [0.0, 0.5]
    assert result["warning"].startswith("damaged: 10 frames from 1.0 s could not be turned "
                                        "into RGB pictures and were passed over (")


def test_corrupted_clips_are_scanned_or_rejected_never_a_crash(tmp_path):
    """Seeded corruption of clips in six containers (bytes flipped, overwritten or cut):
    each a result or a ``VideoRejected`` from ``REASONS``, never another exception. (A longer
    run of this found the 4096×2 thumbnail and the frames swscale refuses.)"""
    seeds = {name: open(write_clip(str(tmp_path / name), [grey(i) for i in range(12)], 10,
                                   codec), "rb").read()
             for name, codec in [("a.mp4", "libx264"), ("b.mkv", "libx264"),
                                 ("c.avi", "mpeg4"), ("d.mov", "libx264")]}
    seeds["e.gif"] = gif(6)
    rng, model, outcomes = np.random.default_rng(11), detector(), {}
    for _ in range(150):
        name = sorted(seeds)[rng.integers(len(seeds))]
        data = bytearray(seeds[name])
        mode = rng.integers(3)
        if mode == 0:
            for _ in range(rng.integers(1, 20)):
                data[rng.integers(len(data))] = rng.integers(256)
        elif mode == 1:
            data = data[: rng.integers(1, len(data))]
        else:
            at = rng.integers(len(data))
            data[at:at + 8] = rng.bytes(8)
        try:
            outcome = scan(model, bytes(data))["verdict"] or "none"
        except VideoRejected as exc:
            outcome = exc.reason
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert set(outcomes) <= set(REASONS) | {"fake", "real", "inconclusive"}, outcomes


# --- the registered model's video column --------------------------------------------------

def test_pyfunc_video_column_junk_gets_an_error_in_its_row(tmp_path):
    """Before: a null cell, ``True`` or 1234 read as the base64 text "None", "True", "1234"
    (valid base64: not_video, not not_base64); base64 wrapped in lines, as the ``base64``
    command writes it, was not_base64."""
    from deepfake_detector.pyfunc import DeepfakeDetectorModel

    model = DeepfakeDetectorModel()
    model.detector = detector()
    good = clip(tmp_path / "c.mp4", seconds=1, fps=4).read_bytes()
    encoded = base64.b64encode(good).decode()
    wrapped = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + "\n"
    rows = {"null": (None, "not_base64"), "nan": (float("nan"), "not_base64"),
            "number": (1234, "not_base64"), "bool": (True, "not_base64"),
            "list": (["x"], "not_base64"), "not base64": ("not base64!!", "not_base64"),
            "empty": ("", "zero_bytes"), "a path": ("/dev/zero", "not_base64"),
            "random": (base64.b64encode(np.random.default_rng(1).bytes(4000)).decode(),
                       "not_video"),
            "truncated": (base64.b64encode(good[: len(good) // 2]).decode(),
                          ("not_video", "no_video_stream", "no_frames")),
            "8K": (base64.b64encode(eight_k(tmp_path)).decode(), "too_many_pixels"),
            "no RGB": (base64.b64encode(colourless_avi(tmp_path / "p.avi", 0)).decode(),
                       "undecodable"),
            "wrapped": (wrapped, ""), "bytes": (good, ""),
            "wide": (wide_clip(tmp_path / "w.mkv").read_bytes(), "")}
    out = model.predict(None, pd.DataFrame({"video": [v for v, _ in rows.values()]}))
    assert len(out) == len(rows)
    for (name, (_, error)), row in zip(rows.items(), out.to_dict("records")):
        assert row["error"] in (error if isinstance(error, tuple) else (error,)), (name, row)
        assert pd.isna(row["verdict"]) == bool(error), (name, row)
