"""The built-in video clips: the procedural faces of ``synthetic.py``, moving slightly.

Half of each split's clips are real; of the fakes, every other one is manipulated over the
whole clip and the rest over one segment only (``segment_share`` of the clip), so a video
detector is checked on clips whose fake span is short. The clips sit in ``videos/{val,test}``,
apart from the image splits, and each is drawn from ``default_rng([seed, 1_000_000 + k])``,
a stream no image uses: no clip face is a training image.

A manipulation is the same in every frame (same donor identity, same re-synthesised region,
same mismatched eye): its random stream is reseeded with one seed per clip at each frame.
Encoding is H.264 on one thread with the colour conversion done here, so the bytes repeat.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import synthetic
from .params_check import defaults

SPLITS = ("val", "test")
CLIP_STREAM = 1_000_000  # clip k's stream is [seed, CLIP_STREAM + k]: images use [seed, i]
COLUMNS = ("file", "split", "label", "family", "kind", "start", "end")

_VIDEOS = defaults()["data"]["synthetic"]["videos"]
_IMAGES = synthetic.SyntheticConfig()


@dataclass(frozen=True)
class ClipsConfig:
    clips: int = _VIDEOS["clips"]  # per split, half real
    seconds: float = _VIDEOS["seconds"]
    fps: int = _VIDEOS["fps"]
    segment_share: float = _VIDEOS["segment_share"]
    image_size: int = _IMAGES.image_size  # the images' framing: one model reads both
    seed: int = _IMAGES.seed
    families: tuple[str, ...] = _IMAGES.families
    strength: float = _IMAGES.strength

    @classmethod
    def from_params(cls, params: dict) -> "ClipsConfig":
        """``data.synthetic.videos`` plus the images' size, seed, families and strength."""
        videos = params["data"]["synthetic"]["videos"]
        images = synthetic.SyntheticConfig.from_params(params)
        return cls(clips=videos["clips"], seconds=videos["seconds"], fps=videos["fps"],
                   segment_share=videos["segment_share"], image_size=images.image_size,
                   seed=images.seed, families=images.families, strength=images.strength)

    @property
    def n_frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    @property
    def frame_size(self) -> int:
        """``image_size``, less one when odd: 4:2:0 chroma needs even sides."""
        return self.image_size - self.image_size % 2


@dataclass(frozen=True)
class Clip:
    """One clip's plan: which face, which manipulation, which frames carry it."""

    index: int  # over both splits: the file name and the random stream
    split: str
    family: str  # "" for a real clip
    first: int  # manipulated frames: first <= frame < last (0, 0 for a real clip)
    last: int

    @property
    def label(self) -> int:
        return int(bool(self.family))

    def kind(self, n_frames: int) -> str:
        """"whole" (manipulated from the first frame to the last), "segment" or "" (real)."""
        if not self.family:
            return ""
        return "whole" if (self.first, self.last) == (0, n_frames) else "segment"


def plan(cfg: ClipsConfig) -> list[Clip]:
    """Every clip of both splits: real first, then fakes alternating whole clip and segment,
    the families in turn (each family gets both kinds)."""
    n = cfg.n_frames
    span = min(n, max(1, round(cfg.segment_share * n)))
    n_fake = cfg.clips // 2
    clips = []
    for s, split in enumerate(SPLITS):
        for k in range(cfg.clips):
            index = s * cfg.clips + k
            j = k - (cfg.clips - n_fake)  # the j-th fake of the split
            if j < 0 or not cfg.families:
                clips.append(Clip(index, split, "", 0, 0))
                continue
            family = cfg.families[(j // 2) % len(cfg.families)]
            if j % 2 == 0:
                clips.append(Clip(index, split, family, 0, n))
            else:  # the segment's start: a stream of its own, apart from the frames'
                first = int(_segment_rng(cfg, index).integers(0, n - span + 1))
                clips.append(Clip(index, split, family, first, first + span))
    return clips


def _segment_rng(cfg: ClipsConfig, index: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, CLIP_STREAM + index, 1])


def _motion(rng: np.random.Generator) -> dict:
    """Slow sinusoids (one or two cycles a clip at most): drift, tilt and lighting."""
    return {key: (amp, rng.uniform(0.05, 0.25), rng.uniform(0, 2 * np.pi))
            for key, amp in (("cx", 0.02), ("cy", 0.02), ("tilt", 0.03),
                             ("light_angle", 0.4), ("light", 0.03))}


def clip_frames(clip: Clip, cfg: ClipsConfig,
                manipulate: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The frames of ``clip`` as (uint8 H×W×3, bool mask H×W with True = manipulated).
    With ``manipulate=False`` the same clip unmanipulated (the same face, motion and noise)."""
    rng = np.random.default_rng([cfg.seed, CLIP_STREAM + clip.index])
    face = synthetic._sample_face(rng)
    motion = _motion(rng)
    manip_seed = int(rng.integers(2**63))
    size = cfg.frame_size
    for i in range(cfg.n_frames):
        t = i / cfg.fps
        p = dict(face)
        for key, (amp, freq, phase) in motion.items():
            p[key] = face[key] + amp * np.sin(2 * np.pi * freq * t + phase)
        mask = np.zeros((size, size), dtype=bool)
        if manipulate and clip.family and clip.first <= i < clip.last:
            again = np.random.default_rng(manip_seed)  # the same manipulation every frame
            if clip.family == "eye_mismatch":
                img, mask = synthetic._eye_mismatch(p, again, size)
            else:
                manipulation = {"face_swap": synthetic._face_swap,
                                "gan_artifacts": synthetic._gan_artifacts}[clip.family]
                img, mask = manipulation(synthetic.render_face(p, size), p, again, size,
                                         cfg.strength)
        else:
            img = synthetic.render_face(p, size)
        img = img + rng.normal(0, face["noise"], img.shape)  # sensor noise, as make_image
        yield np.clip(img, 0, 255).astype(np.uint8), mask


def rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited range, chroma averaged over 2×2: PyAV's ``yuv420p`` layout. Done here
    rather than in swscale, whose SIMD paths may round differently on another CPU."""
    x = rgb.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    h, w = y.shape

    def half(c):
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).ravel()

    planes = np.concatenate([y.ravel(), half(u), half(v)]).reshape(-1, w)  # the planes in turn
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8)


def encode_clip(path: Path, frames: Iterable[np.ndarray], fps: int, crf: int = 12) -> None:
    """H.264 (libx264, yuv420p) on one thread, no creation time: the same frames give the
    same bytes on every run. Frames are uint8 H×W×3 RGB with even sides."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = next(frames, None)
    if first is None or first.shape[0] % 2 or first.shape[1] % 2:
        raise ValueError(f"{path.name}: no frames, or odd sides "
                         f"{None if first is None else first.shape[:2]} (yuv420p needs even)")
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={
            "threads": "1", "crf": str(crf), "preset": "medium"})
        stream.codec_context.thread_count = 1
        stream.pix_fmt = "yuv420p"
        stream.width, stream.height = first.shape[1], first.shape[0]
        time_base = Fraction(1, fps)
        for i, rgb in enumerate(itertools.chain([first], frames)):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420(rgb), format="yuv420p")
            frame.pts, frame.time_base = i, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def generate_clips(out_dir: Path, cfg: ClipsConfig, progress=None) -> list[dict]:
    """Write ``{val,test}/{real,fake}/clip_NNNN.mp4`` and ``clips.csv`` (one row per clip:
    the manipulated span in seconds, frames with ``start <= i / fps < end``); returns the
    rows. With ``clips == 0`` nothing is written, not even the folder."""
    out_dir = Path(out_dir)
    clips = plan(cfg)
    if not clips:
        return []
    rows = []
    for clip in progress(clips) if progress else clips:
        rel = f"{clip.split}/{'fake' if clip.label else 'real'}/clip_{clip.index:04d}.mp4"
        encode_clip(out_dir / rel, (rgb for rgb, _ in clip_frames(clip, cfg)), cfg.fps)
        span = ("", "") if not clip.label else (round(clip.first / cfg.fps, 6),
                                                 round(clip.last / cfg.fps, 6))
        rows.append(dict(zip(COLUMNS, (rel, clip.split, clip.label, clip.family,
                                       clip.kind(cfg.n_frames), *span))))
    with open(out_dir / "clips.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows
