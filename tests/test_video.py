"""video.py: frames sampled by timestamp, rotation, seek versus sequential decoding, and a
``VideoRejected`` with the right reason, quickly, for every bad input. Clips are written here
with PyAV: tiny, grey frames whose level encodes their index (``level = 8 × index``)."""

from __future__ import annotations

import io
import os
import struct
import time
import types
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from deepfake_detector.images import MB
from deepfake_detector.video import (
    REASONS,
    VideoLimits,
    VideoReader,
    VideoRejected,
    is_video_path,
)

MS = Fraction(1, 1000)


def grey(index: int, width: int = 32, height: int = 32) -> np.ndarray:
    return np.full((height, width, 3), index * 8 % 256, np.uint8)


def index_of(image: np.ndarray) -> int:
    return int(round(float(image.mean()) / 8))


def write_clip(path, frames, fps, codec="libx264", options=None, *, rotation=None, pts_ms=None,
               format=None, container_options=None, pix_fmt="yuv420p"):
    """Encode RGB ``frames`` (even sizes) with one thread; ``pts_ms`` gives each frame's
    timestamp in milliseconds (variable frame rate), else frames are 1/fps apart."""
    with av.open(path, "w", format=format, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        stream.codec_context.thread_count = 1
        if pts_ms is not None:
            stream.codec_context.time_base = MS
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], MS
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def sampled(source, limits=VideoLimits(), **kwargs):
    """[(t, frame index)] and the reader (closed)."""
    with VideoReader(source, limits, **kwargs) as reader:
        got = [(round(f.t, 3), index_of(f.image)) for f in reader.frames()]
    return got, reader


def rejected(source, limits=VideoLimits()) -> str:
    """The reason ``source`` is refused, checking it is refused quickly."""
    started = time.perf_counter()
    with pytest.raises(VideoRejected) as caught:
        with VideoReader(source, limits) as reader:
            list(reader.frames())
    assert time.perf_counter() - started < 5
    assert caught.value.reason in REASONS
    return caught.value.reason


@pytest.fixture
def clip(tmp_path):
    """A 3-s clip at 10 fps, frame i at i/10 s."""
    return str(write_clip(str(tmp_path / "clip.mp4"), [grey(i) for i in range(30)], 10))


def test_samples_by_time_at_two_per_second(clip):
    got, reader = sampled(clip)
    assert got == [(t / 2, t * 5) for t in range(6)]
    assert reader.info == {"width": 32, "height": 32, "rotation": 0, "duration": 3.0,
                           "fps": 10.0, "codec": "h264", "format": "mov,mp4,m4a,3gp,3g2,mj2"}
    assert reader.warning == "" and reader.decode_seconds > 0


def test_frames_is_a_generator(clip):
    with VideoReader(clip) as reader:
        frames = reader.frames()
        assert isinstance(frames, types.GeneratorType)
        first = next(frames)
    assert first.image.dtype == np.uint8 and first.image.shape == (32, 32, 3)


def test_max_frames_spreads_samples_over_a_long_clip(tmp_path):
    path = write_clip(str(tmp_path / "long.mp4"), [grey(i) for i in range(30)], 3)  # 10 s
    got, _ = sampled(path, VideoLimits(fps=2, max_frames=5))
    assert got == [(0.0, 0), (2.0, 6), (4.0, 12), (6.0, 18), (8.0, 24)]


def test_variable_frame_rate_sampled_by_timestamp(tmp_path):
    pts = [0, 100, 150, 400, 1000, 1050, 1600, 2100]
    path = write_clip(str(tmp_path / "vfr.mkv"), [grey(i) for i in range(8)], 10, pts_ms=pts)
    got, _ = sampled(path)  # targets 0, 0.5 → 1.0 (jumps 1.0's own target), 1.5 → 1.6, 2.0 → 2.1
    assert got == [(0.0, 0), (1.0, 4), (1.6, 6), (2.1, 7)]


@pytest.mark.parametrize("name, codec", [("clip.mp4", "libx264"), ("clip.mov", "libx264"),
                                         ("clip.m4v", "libx264"), ("clip.mkv", "libx264"),
                                         ("clip.webm", "libvpx-vp9"), ("clip.avi", "mpeg4")])
def test_containers_decode(tmp_path, name, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV wheel has no {codec} encoder")
    options = {"qscale": "2"} if codec == "mpeg4" else None
    path = write_clip(str(tmp_path / name), [grey(i) for i in range(20)], 10, codec, options)
    got, reader = sampled(path)
    assert got == [(0.0, 0), (0.5, 5), (1.0, 10), (1.5, 15)]
    assert is_video_path(path.upper()) and reader.info["duration"] == pytest.approx(2.0)


def half_white(width=64, height=32) -> np.ndarray:
    """White left half, black right half."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2] = 255
    return rgb


def test_rotation_display_matrix_turns_the_frame(tmp_path):
    """PyAV's ``set_display_rotation(90)`` writes a counter-clockwise display rotation and
    ``frame.rotation`` reads it back as +90: the left half ends up at the bottom."""
    path = write_clip(str(tmp_path / "rot.mp4"), [half_white()] * 3, 10, rotation=90)
    with VideoReader(path) as reader:
        image = next(reader.frames()).image
    assert reader.info["rotation"] == 90
    assert (reader.info["width"], reader.info["height"]) == (32, 64)
    assert image.shape == (64, 32, 3)
    assert image[:24].max() < 40 and image[40:].min() > 215


def test_rotation_of_a_phone_portrait_clip_is_clockwise(tmp_path):
    """The track matrix a phone writes for portrait video (a=0, b=1, c=-1, d=0: turn 90°
    clockwise), patched into the MP4 by hand so the check does not rely on PyAV's writer."""
    data = bytearray(open(write_clip(str(tmp_path / "p.mp4"), [half_white()] * 3, 10), "rb")
                     .read())
    matrix = data.find(b"tkhd") + 4 + 4 + 20 + 8 + 8  # version 0 tkhd: the matrix's offset
    assert struct.unpack(">9i", data[matrix:matrix + 36])[:5] == (65536, 0, 0, 0, 65536)
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    with VideoReader(bytes(data)) as reader:
        image = next(reader.frames()).image
    assert reader.info["rotation"] == -90 and image.shape == (64, 32, 3)
    assert image[:24].min() > 215 and image[40:].max() < 40  # the left half is now on top


def test_seek_and_sequential_agree_on_all_key_frame_clip(tmp_path):
    path = write_clip(str(tmp_path / "intra.mp4"), [grey(i) for i in range(30)], 10,
                      options={"g": "1"})
    limits = VideoLimits(fps=1)
    auto, auto_reader = sampled(path, limits)
    forced, forced_reader = sampled(path, limits, _force_method="sequential")
    assert auto_reader.method == "seek" and forced_reader.method == "sequential"
    assert auto == forced == [(0.0, 0), (1.0, 10), (2.0, 20)]
    assert sampled(path, limits, _force_method="seek")[0] == auto
    # what seeking is for: whole groups of pictures between samples are never decoded
    assert (forced_reader.frames_decoded, auto_reader.frames_decoded) == (30, 5)


def test_a_clip_without_duration_says_where_max_frames_stopped_it(tmp_path):
    pipe = _Pipe()  # written as a stream: Matroska then declares no duration
    write_clip(pipe, [grey(i % 30) for i in range(40)], 10, format="matroska")
    with VideoReader(bytes(pipe.data), VideoLimits(fps=2, max_frames=3)) as reader:
        assert reader.info["duration"] is None
        assert [f.t for f in reader.frames()] == [0.0, 0.5, 1.0]
    assert reader.warning == ("stopped at 1.0 s after video.max_frames (3) samples: the clip "
                              "declares no duration")


def test_decoding_past_the_deadline_is_too_long(clip):
    with VideoReader(clip, VideoLimits(deadline_s=0.0)) as reader:
        with pytest.raises(VideoRejected, match="too_long: decoding took more than 0 s"):
            list(reader.frames())


def test_long_groups_of_pictures_stay_sequential(tmp_path):
    path = write_clip(str(tmp_path / "gop.mp4"), [grey(i % 30) for i in range(50)], 10,
                      options={"g": "20", "keyint_min": "20", "sc_threshold": "0"})
    got, reader = sampled(path)
    assert reader.method == "sequential"
    assert [t for t, _ in got] == [i / 2 for i in range(10)]


def test_bytes_and_file_objects(clip):
    data = open(clip, "rb").read()
    expected, _ = sampled(clip)
    assert sampled(data)[0] == expected
    assert sampled(io.BytesIO(data))[0] == expected
    with open(clip, "rb") as fh:
        assert sampled(fh)[0] == expected


def test_not_a_video(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("hello, world\n" * 50)
    png = tmp_path / "still.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(png)
    assert rejected(str(text)) == "not_video"
    assert rejected(str(png)) == "not_video"
    assert rejected(png.read_bytes()) == "not_video"
    assert rejected(str(tmp_path / "missing.mp4")) == "not_video"
    assert rejected(str(tmp_path)) == "not_video"


def test_fifo_is_refused_unopened(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    assert rejected(str(fifo)) == "not_video"


def test_zero_bytes(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert rejected(str(empty)) == "zero_bytes"
    assert rejected(b"") == "zero_bytes"
    assert rejected(io.BytesIO()) == "zero_bytes"


def test_too_large(clip):
    size = os.path.getsize(clip)
    assert rejected(clip, VideoLimits(max_bytes=size - 1)) == "too_large"
    assert rejected(open(clip, "rb").read(), VideoLimits(max_bytes=size - 1)) == "too_large"
    assert sampled(clip, VideoLimits(max_bytes=size))[0]


def test_truncated_containers(tmp_path):
    """Documented behaviour: an MP4 cut before its index (written last) cannot be opened
    (not_video); a clip whose index survives yields the frames before the cut plus a
    ``truncated`` warning; a cut that leaves nothing decodable is no_frames."""
    frames = [grey(i) for i in range(30)]
    tail_index = open(write_clip(str(tmp_path / "a.mp4"), frames, 10), "rb").read()
    assert rejected(tail_index[: len(tail_index) // 2]) == "not_video"
    head_index = open(write_clip(str(tmp_path / "b.mp4"), frames, 10,
                                 container_options={"movflags": "faststart"}), "rb").read()
    got, reader = sampled(head_index[: len(head_index) * 8 // 10])
    assert got and got[0] == (0.0, 0) and reader.warning.startswith("truncated: ")
    assert rejected(head_index[: len(head_index) // 2]) in ("no_frames", "not_video")
    for name in ("c.mkv", "d.webm"):
        codec = "libvpx-vp9" if name.endswith("webm") else "libx264"
        if codec not in av.codecs_available:
            continue
        data = open(write_clip(str(tmp_path / name), frames, 10, codec), "rb").read()
        try:
            got, reader = sampled(data[: len(data) // 2])
        except VideoRejected as exc:
            assert exc.reason in ("no_frames", "not_video")
        else:
            assert reader.warning.startswith("truncated: ")


def test_audio_only(tmp_path):
    path = str(tmp_path / "voice.mka")
    with av.open(path, "w") as container:
        stream = container.add_stream("aac", rate=8000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert rejected(path) == "no_video_stream"


def eight_k_clip(path: str) -> str:
    """One black 7680×4320 frame (MJPEG: quick to encode; ~0.5 MB)."""
    frame = av.VideoFrame(7680, 4320, "yuvj420p")
    for plane in frame.planes:  # a new frame's memory is not cleared: whatever was there
        plane.update(bytes(plane.buffer_size))  # made the file pass 1 MB once (2026-11-29)
    with av.open(path, "w") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = 7680, 4320, "yuvj420p"
        for packet in stream.encode(frame) + stream.encode():
            container.mux(packet)
    return path


def test_8k_frames_refused_before_decoding(tmp_path):
    path = eight_k_clip(str(tmp_path / "8k.avi"))
    assert rejected(path) == "too_many_pixels"
    with VideoReader(path, VideoLimits(max_pixels=7680 * 4320)) as reader:
        assert [f.image.shape for f in reader.frames()] == [(4320, 7680, 3)]


def test_ten_hours_declared(tmp_path):
    path = write_clip(str(tmp_path / "ten_hours.mkv"), [grey(0, 16, 16)] * 2, 10,
                      pts_ms=[0, 36_000_000])
    assert rejected(path) == "too_long"


class _Pipe(io.RawIOBase):
    """A write-only stream that cannot seek: the Matroska muxer then leaves out the
    duration it would have gone back to fill in."""

    def __init__(self):
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, chunk):
        self.data += chunk
        return len(chunk)


def test_frame_past_max_seconds_without_declared_duration(tmp_path):
    pipe = _Pipe()
    write_clip(pipe, [grey(0), grey(1)], 10, pts_ms=[0, 100_000], format="matroska")
    with VideoReader(bytes(pipe.data), VideoLimits(max_seconds=50)) as reader:
        assert reader.info["duration"] is None
        frames = reader.frames()
        assert next(frames).t == 0
        with pytest.raises(VideoRejected) as caught:
            next(frames)
    assert caught.value.reason == "too_long"


def test_codec_ffmpeg_cannot_decode(clip):
    data = bytearray(open(clip, "rb").read())
    fourcc = data.find(b"avc1", data.find(b"stsd"))
    data[fourcc:fourcc + 4] = b"zzzz"
    assert rejected(bytes(data)) == "undecodable"


def test_limits_from_params_and_error_text():
    limits = VideoLimits.from_params({"video": {"fps": 1, "max_frames": 10, "max_file_mb": 5}})
    assert limits == VideoLimits(fps=1.0, max_frames=10, max_bytes=5 * MB)
    assert VideoLimits.from_params({}) == VideoLimits()
    error = VideoRejected("too_long", "36,000 s declared")
    assert str(error) == "too_long: 36,000 s declared" and error.detail == "36,000 s declared"
    assert not is_video_path("face.jpg") and is_video_path("clip.MKV")


def test_the_cli_lists_the_extensions_the_reader_takes():
    from deepfake_detector.cli_scan import EXTENSIONS
    from deepfake_detector.video import VIDEO_EXTENSIONS

    assert set(EXTENSIONS.split()) == VIDEO_EXTENSIONS
