"""Frames sampled from a video by time, for the image detector to score one by one.

``VideoReader`` opens a path, bytes or a binary file object with PyAV (FFmpeg), checks it
before decoding anything (size, a video stream, a decoder, pixels, declared duration) and
yields ``Frame``s at ``VideoLimits.fps`` per second of video, found by timestamp so variable
frame rates need no frame counting. Only the sampled frames are converted to RGB and turned to
their display orientation; memory stays flat in the clip's length.

A truncated or damaged stream yields what decoded before the damage and says so in
``warning``; a clip with nothing decodable is rejected (``no_frames``). A truncated MP4 whose
index (``moov``) sits at the end cannot be opened at all: ``not_video``. Nothing is written.
"""

from __future__ import annotations

import io
import math
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .errors import VideoRejected
from .images import MB, not_regular

REASONS = ("zero_bytes", "too_large", "not_video", "no_video_stream", "undecodable",
           "too_many_pixels", "too_long", "no_frames")
VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"}

_EPS = 1e-3  # a Matroska tick: timestamps this close to a target count as reaching it


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoLimits:
    """How densely to sample and what to refuse; ``params.yaml``'s ``video`` section."""

    fps: float = 2.0
    max_frames: int = 600
    max_pixels: int = 3840 * 2160
    max_seconds: float = 1800
    max_bytes: int | None = 2048 * MB
    deadline_s: float = 300  # decoding one clip stops after this long: too_long

    @classmethod
    def from_params(cls, params: dict) -> VideoLimits:
        video = (params or {}).get("video") or {}
        kwargs = {key: kind(video[key]) for key, kind in (("fps", float), ("max_frames", int),
                  ("max_pixels", int), ("max_seconds", float), ("deadline_s", float))
                  if key in video}
        if "max_file_mb" in video:
            mb = video["max_file_mb"]
            kwargs["max_bytes"] = None if mb is None else int(mb * MB)
        return cls(**kwargs)


@dataclass
class Frame:
    t: float  # seconds from the stream's start
    image: np.ndarray  # H×W×3 uint8 RGB, display orientation


def _message(exc: BaseException) -> str:
    """FFmpeg's words without PyAV's ``[Errno N]`` prefix, first line only."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]


class VideoReader:
    """Samples of one video; a context manager. Raises ``VideoRejected`` on opening when the
    input is unusable. ``frames()`` may be iterated once."""

    def __init__(self, source, limits: VideoLimits = VideoLimits(), *, _force_method=None):
        self.limits, self._force_method = limits, _force_method
        self.warning, self.decode_seconds, self.frames_decoded = "", 0.0, 0
        self._own_file = self._container = self._pending = None
        started = time.perf_counter()
        try:
            self._open(source)
        except BaseException:
            self.close()
            raise
        self.decode_seconds += time.perf_counter() - started

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for thing in (self._container, self._own_file):
            if thing is not None:
                thing.close()
        self._container = self._own_file = None

    def _file(self, source):
        """A binary file object for FFmpeg, after the size checks. A path is opened without
        blocking and checked on the open descriptor, so a FIFO swapped in cannot hang it."""
        limit = self.limits.max_bytes
        if isinstance(source, (bytes, bytearray)):
            size, file = len(source), io.BytesIO(source)
        elif isinstance(source, (str, os.PathLike)):
            try:
                fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            except (OSError, ValueError) as exc:
                raise VideoRejected("not_video", f"cannot open: {exc}") from None
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                os.close(fd)
                raise VideoRejected("not_video", not_regular(info.st_mode))
            self._own_file = file = os.fdopen(fd, "rb")
            size = info.st_size
        else:  # a file object: measure what is left of it when it can seek
            file, size = source, None
            if getattr(source, "seekable", lambda: False)():
                here = source.tell()
                size = source.seek(0, io.SEEK_END) - here
                source.seek(here)
        if size == 0:
            raise VideoRejected("zero_bytes")
        if limit is not None and size is not None and size > limit:
            raise VideoRejected("too_large", f"{size:,} bytes, more than the {limit / MB:g} MB "
                                "cap (video.max_file_mb)")
        return file

    def _open(self, source) -> None:
        file = self._file(source)
        try:
            self._container = container = av.open(file, "r", metadata_errors="replace")
        except (av.error.FFmpegError, ValueError) as exc:
            raise VideoRejected("not_video", _message(exc)) from None
        name = container.format.name
        if name == "image2" or name.endswith("_pipe"):  # a PNG or JPEG: for the image loader
            raise VideoRejected("not_video", f"a still image ({name})")
        streams = [s for s in container.streams.video
                   if not s.disposition & av.stream.Disposition.attached_pic]  # cover art
        if not streams:
            raise VideoRejected("no_video_stream", f"{name} without video")
        self._stream = stream = streams[0]
        context = stream.codec_context
        if context is None:
            raise VideoRejected("undecodable", "FFmpeg has no decoder for this video codec")
        pixels, limits = context.width * context.height, self.limits
        if pixels > limits.max_pixels:
            raise VideoRejected("too_many_pixels", f"{context.width}×{context.height}, more than "
                                f"{limits.max_pixels:,} pixels (video.max_pixels)")
        duration = (float(stream.duration * stream.time_base) if stream.duration else
                    container.duration / av.time_base if container.duration else None)
        if duration is not None and duration > limits.max_seconds:
            raise VideoRejected("too_long", f"{duration:,.0f} s declared, more than "
                                f"{limits.max_seconds:g} s (video.max_seconds)")
        self._interval = max(1 / limits.fps, (duration or 0) / limits.max_frames)
        context.thread_type = "AUTO"
        context.options = {"max_pixels": str(limits.max_pixels)}  # a size change mid-stream
        self._start = stream.start_time
        self._key_times: list[float] = []
        self._key_spacing = 0.0 if self._force_method == "seek" else math.inf
        self.method = self._force_method or "sequential"
        self._packets = self._decoded()
        try:  # the first frame now: it says how the picture is turned, and that any decodes
            self._pending = first = self._next()
        except av.error.DecoderNotFoundError as exc:
            raise VideoRejected("undecodable", _message(exc)) from None
        except av.error.FFmpegError as exc:
            raise VideoRejected("no_frames", _message(exc)) from None
        if first is None:
            raise VideoRejected("no_frames", "no frame with a timestamp decoded")
        rotation, size = first[0].rotation, (first[0].width, first[0].height)
        width, height = size[::-1] if round(rotation / 90) % 2 else size
        self.info = {"width": width, "height": height, "rotation": rotation,
                     "duration": duration, "fps": float(stream.average_rate)
                     if stream.average_rate else None, "codec": context.name,
                     "format": name}

    def _decoded(self) -> Iterator[av.VideoFrame]:
        for packet in self._container.demux(self._stream):
            yield from packet.decode()

    def _next(self) -> tuple[av.VideoFrame, float] | None:
        """The next decoded frame with its time in seconds, or None at the end; frames
        without a timestamp cannot be placed in time and are passed over."""
        for frame in self._packets:
            if frame.pts is None:
                continue
            if self._start is None:
                self._start = frame.pts
            t = float((frame.pts - self._start) * self._stream.time_base)
            if t > self.limits.max_seconds:
                raise VideoRejected("too_long", f"a frame at {t:,.0f} s, past "
                                    f"{self.limits.max_seconds:g} s (video.max_seconds)")
            if frame.width * frame.height > self.limits.max_pixels:
                raise VideoRejected("too_many_pixels", f"a {frame.width}×{frame.height} frame "
                                    f"at {t:.1f} s (video.max_pixels)")
            if frame.key_frame:
                self._note_key_frame(t)
            return frame, t
        return None

    def _note_key_frame(self, t: float) -> None:
        """Switch to seeking once key frames are seen closer than half the sample interval:
        whole groups of pictures then fall between samples and need not be decoded."""
        self._key_times = (self._key_times + [t])[-2:]
        if len(self._key_times) == 2 and self._force_method is None and self.method != "seek":
            self._key_spacing = self._key_times[1] - self._key_times[0]  # neighbours, unsought
            if self._key_spacing < self._interval / 2:
                self.method = "seek"

    def _seek(self, target: float) -> bool:
        stream = self._stream
        offset = int(target / stream.time_base) + (self._start or 0)
        try:
            self._container.seek(offset, stream=stream, backward=True)
        except av.error.FFmpegError:  # not seekable (a pipe, an index-less file): read on
            self.method = self._force_method = "sequential"
            return False
        self._packets = self._decoded()
        return True

    def frames(self) -> Iterator[Frame]:
        """The samples in time order: per target t = 0, dt, 2dt, … the first frame at or after
        it; targets a frame jumped over are skipped."""
        target_index, taken, last_t, end_t, sought, sought_from = 0, 0, -math.inf, None, None, None
        resumed, ended, unconverted = time.perf_counter(), False, []
        while taken < self.limits.max_frames:
            if self.decode_seconds + time.perf_counter() - resumed > self.limits.deadline_s:
                # many frames that are never sampled (a stalled or tiny time base) cost time
                raise VideoRejected("too_long", f"decoding took more than "
                                    f"{self.limits.deadline_s:g} s (video.deadline_s)")
            target = target_index * self._interval
            if self._pending is not None:
                decoded, self._pending = self._pending, None
            else:
                if self.method == "seek" and target != sought and end_t is not None and (
                        target - end_t > self._key_spacing):  # once a target: no loop at the end
                    sought, sought_from = target, end_t if self._seek(target) else None
                try:
                    decoded = self._next()
                except av.error.FFmpegError as exc:
                    self.warning = f"truncated: decoding stopped at {max(end_t or 0, 0):.1f} s "\
                                   f"({_message(exc)})"
                    break
            if decoded is None:
                ended = True
                break
            frame, t = decoded
            self.frames_decoded += 1
            if sought_from is not None and t < sought_from:  # it went back: seeking cannot help
                self.method = self._force_method = "sequential"
            end_t, sought_from = t, None
            if t < target - _EPS or t <= last_t:
                continue
            try:
                image = frame.to_ndarray(format="rgb24")
            except av.error.FFmpegError as exc:  # decoded, but damaged colour settings that
                unconverted.append((t, _message(exc)))  # swscale refuses: the next frame tries
                continue
            turns = round(frame.rotation / 90) % 4
            if turns:
                image = np.ascontiguousarray(np.rot90(image, turns))
            taken, last_t = taken + 1, t
            target_index = max(target_index + 1, math.floor(t / self._interval + 1e-9) + 1)
            self.decode_seconds += time.perf_counter() - resumed
            yield Frame(t, image)
            resumed = time.perf_counter()
        duration, fps = self.info["duration"], self.info["fps"] or 1.0
        if ended and duration and end_t is not None and duration - end_t > max(1.0, 3 / fps):
            self.warning = f"truncated: decoding stopped at {end_t:.1f} s of {duration:.1f} s"
        elif not ended and not duration and taken == self.limits.max_frames:
            # no declared duration: the samples could not be spread over the whole clip
            self.warning = (f"stopped at {last_t:.1f} s after video.max_frames "
                            f"({self.limits.max_frames}) samples: the clip declares no duration")
        self.decode_seconds += time.perf_counter() - resumed
        if unconverted:
            (first, why), n = unconverted[0], len(unconverted)
            if not taken:
                raise VideoRejected("undecodable", f"its frames decode but cannot be turned into "
                                    f"RGB pictures ({why}, from {first:.1f} s)")
            damaged = f"damaged: {n} frame{'s' if n > 1 else ''} from {first:.1f} s could not " \
                      f"be turned into RGB pictures and were passed over ({why})"
            self.warning = f"{self.warning}; {damaged}" if self.warning else damaged
