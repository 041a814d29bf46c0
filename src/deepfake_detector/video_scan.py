"""Scanning a clip: frames sampled by time (``video.VideoReader``), framed and scored exactly
like images (the model's own face crop or centre crop, its calibrated P(fake), its domain
flag), the largest face followed from frame to frame, and one P(fake) for the whole clip.

The clip's rule: the mean of the highest ``top_fraction`` of its frame scores (at least one
frame). A manipulation over part of a clip still lifts its top frames, while one odd frame in
a long real clip moves the mean of many little. Its threshold is chosen on validation clips
like the image threshold (the evaluate stage); without validation clips it is the image
threshold.
"""

from __future__ import annotations

import base64
import heapq
import io
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import verdicts
from .faces import detect_faces, face_square
from .images import centre_box, square_resize
from .scoring import label
from .video import VideoLimits, VideoReader

IOU_MATCH = 0.3   # a face overlapping the track's last box this much is the same face
CHUNK = 32        # crops scored per model call
TOP_FRAMES = 3    # the most suspicious frames kept with their crops
THUMB_SIDE = 240  # their frames, shrunk to at most this wide for the timeline and the page
HAAR_WINDOW = 24  # px: the cascade's smallest face
NO_FACES = "no_faces"  # the reason of an inconclusive clip in which no frame could be scored


def data_url(image: np.ndarray, fmt: str = "PNG") -> str:
    """A uint8 image as a data: URL (the page shows it as it is)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def iou(a, b) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


class FaceTrack:
    """The track of the largest face: each frame continues it with the face that overlaps its
    last box most (IoU ≥ ``IOU_MATCH``); when none does, the track restarts on the frame's
    largest face. A frame with no face leaves the track where it was."""

    def __init__(self):
        self.box = None

    def follow(self, faces: list) -> tuple | None:
        if not faces:
            return None
        if self.box is not None:
            best = max(faces, key=lambda f: iou(f, self.box))
            if iou(best, self.box) >= IOU_MATCH:
                self.box = best
                return best
        self.box = max(faces, key=lambda f: f[2] * f[3])
        return self.box


def detect_side(width: int, height: int, face: dict) -> int:
    """The width faces are searched at in a video frame: the smallest at which the smallest
    face wanted (``min_fraction`` of the shorter side) still spans the cascade's window, so
    none is lost; for 720p, 427 px (a third of the pixels an image is searched at: the
    cascade took most of a scan's time)."""
    shorter = min(width, height) * float(face.get("min_fraction", 0.1))
    return min(max(width, height), math.ceil(max(width, height) * HAAR_WINDOW / shorter))


def clip_score(frame_scores, top_fraction: float) -> float | None:
    """The clip's P(fake): the mean of its highest ``top_fraction`` frame scores."""
    scores = sorted((s for s in frame_scores if s is not None), reverse=True)
    if not scores:
        return None
    k = max(1, math.ceil(top_fraction * len(scores)))
    return float(np.mean(scores[:k]))


def video_rule(settings: dict, default_top_fraction: float) -> dict:
    """``{top_fraction, threshold, chosen_on}`` of a model: what evaluate fitted on
    validation clips (``settings['video']``, which also records the ``fps`` and
    ``max_frames`` it sampled them at), else the image threshold."""
    fitted = settings.get("video") or {}
    return {**fitted, "top_fraction": float(fitted.get("top_fraction", default_top_fraction)),
            "threshold": float(fitted.get("threshold", settings.get("threshold", 0.5))),
            "chosen_on": fitted.get("chosen_on", "the image threshold (no validation clips)")}


def _thumbnail(rgb: np.ndarray, box) -> np.ndarray:
    """The frame at most ``THUMB_SIDE`` wide, the tracked face outlined."""
    img = Image.fromarray(rgb)
    scale = min(1.0, THUMB_SIDE / img.width)
    if scale < 1.0:
        # at least 1 px: a 4096×2 frame shrinks to 240×0 otherwise, which PIL refuses
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    arr = np.asarray(img).copy()
    if box is not None:
        x, y, w, h = (round(v * scale) for v in box)
        x2, y2 = min(x + w, arr.shape[1] - 1), min(y + h, arr.shape[0] - 1)
        for xs, ys in (((x, x2), (y, y + 1)), ((x, x2), (y2 - 1, y2)),
                       ((x, x + 1), (y, y2)), ((x2 - 1, x2), (y, y2))):
            arr[ys[0]:ys[1] + 1, xs[0]:xs[1] + 1] = (255, 40, 40)
    return arr


class _Scorer:
    """Crops scored ``CHUNK`` at a time; the ``TOP_FRAMES`` highest kept with their crop and
    thumbnail (memory stays flat in the clip's length). ``keep_crops``: every crop too, as a
    PNG data URL (compressed: the service sends them)."""

    def __init__(self, detector, keep_crops: bool):
        self.detector, self.keep_crops = detector, keep_crops
        self.pending, self.top, self.seconds = [], [], 0.0
        self.crops: dict[int, str] = {}

    def add(self, index: int, row: dict, crop: np.ndarray, thumb: np.ndarray):
        self.pending.append((index, row, crop, thumb))
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        start = time.perf_counter()
        batch = np.stack([crop for _, _, crop, _ in self.pending])
        scores, domains = self.detector.assess(batch)
        self.seconds += time.perf_counter() - start
        for (index, row, crop, thumb), p, (where, distance) in zip(self.pending, scores, domains):
            row["p_fake"] = round(float(p), 6)
            row["domain"], row["domain_score"] = where, distance
            # the frame's own verdict, as an image's (the clip's is by the clip rule)
            row["verdict"], row["reason"] = self.detector.verdict(row["p_fake"], where)
            if self.keep_crops:
                self.crops[index] = data_url(crop)
            item = (row["p_fake"], -index, crop, thumb)
            if len(self.top) < TOP_FRAMES:
                heapq.heappush(self.top, item)
            elif item[:2] > self.top[0][:2]:
                heapq.heapreplace(self.top, item)
        self.pending = []


def scan(detector, source, limits: VideoLimits = VideoLimits(), *, name: str = "",
         face_crop: bool | None = None, keep_crops: bool = False,
         top_fraction: float = 0.2) -> dict:
    """Scan one clip (a path, bytes or a binary file object). Returns the clip's result:
    ``file, p_fake, label, verdict, reason, threshold, rule, frames_sampled, frames_scored,
    faces_found, duration, seconds, method, warning, domain_out_share, trained_on, timing
    {decode, faces, model}, frames`` (each ``t, face, box, p_fake, verdict, reason, domain,
    domain_score``: the frame judged as an image) and
    ``top`` (``TOP_FRAMES`` most suspicious: ``index, t, p_fake, crop, thumbnail`` as uint8
    arrays). ``top_fraction`` is the clip rule's for a model whose settings fit none
    (``video.top_fraction``). ``keep_crops``: every scored frame's crop too, in ``crops``
    {index: PNG data URL}.
    Raises ``video.VideoRejected`` for a clip that cannot be scanned."""
    start = time.perf_counter()
    settings = detector.settings
    face = detector.face_settings(face_crop)
    size = int(settings["image_size"])
    track, scorer, faces_seconds, frames = FaceTrack(), _Scorer(detector, keep_crops), 0.0, []
    with VideoReader(source, limits) as reader:
        for frame in reader.frames():
            row = {"t": round(frame.t, 3), "face": None, "box": None, "p_fake": None,
                   "verdict": None, "reason": "", "domain": None, "domain_score": None}
            frames.append(row)
            height, width = frame.image.shape[:2]
            box = None
            if face.get("enabled"):
                tick = time.perf_counter()
                box = track.follow(detect_faces(frame.image, face.get("min_fraction", 0.1),
                                                detect_side(width, height, face)))
                faces_seconds += time.perf_counter() - tick
                row["face"] = box is not None
                if box is None:  # listed, not scored: the model judges faces
                    continue
                row["box"] = list(box)
                crop_box = face_square(box, float(face.get("margin", 0.25)), width, height)
            else:
                crop_box = centre_box(width, height, float(settings.get("centre_crop", 1.0)))
            crop = square_resize(Image.fromarray(frame.image), size, crop_box)
            scorer.add(len(frames) - 1, row, crop, _thumbnail(frame.image, box))
        scorer.flush()
        info, method, warning, decode_seconds = (reader.info, reader.method, reader.warning,
                                                 reader.decode_seconds)
    rule = video_rule(settings, top_fraction)
    scored = [r for r in frames if r["p_fake"] is not None]
    p = clip_score([r["p_fake"] for r in scored], rule["top_fraction"])
    # out of domain when most scored frames are (None: a model with no domain fit)
    flags = [r["domain"] for r in scored if r["domain"] is not None]
    out_share = round(flags.count("out") / len(flags), 4) if flags else None
    verdict, reason = verdicts.verdict(p, rule["threshold"], None,
                                       "out" if out_share and out_share > 0.5 else None)
    if p is None:
        verdict, reason = verdicts.INCONCLUSIVE, NO_FACES
    top = sorted(scorer.top, reverse=True)
    return {
        "file": name, "p_fake": None if p is None else round(p, 6),
        "label": None if p is None else label(p, rule["threshold"]), "verdict": verdict,
        "reason": reason,
        "threshold": rule["threshold"],
        "rule": (f"mean of the top {rule['top_fraction']:.0%} of frame P(fake) "
                 f"({max(1, math.ceil(rule['top_fraction'] * len(scored))) if scored else 0} "
                 f"of {len(scored)}); threshold from {rule['chosen_on']}"),
        "frames_sampled": len(frames), "frames_scored": len(scored),
        "faces_found": (sum(bool(r["face"]) for r in frames) if face.get("enabled") else None),
        "duration": info.get("duration"), "width": info.get("width"),
        "height": info.get("height"), "seconds": round(time.perf_counter() - start, 3),
        "method": method, "warning": warning, "domain_out_share": out_share,
        "trained_on": detector.trained_on,
        # the container's Content Credentials (an MP4's C2PA manifest), when asked for
        "provenance": (detector.provenance.read(source) if getattr(detector, "provenance", None)
                       and isinstance(source, (bytes, bytearray, str, Path)) else None),
        "timing": {"decode": round(decode_seconds, 3), "faces": round(faces_seconds, 3),
                   "model": round(scorer.seconds, 3)},
        "frames": frames,
        "top": [{"index": -neg, "t": frames[-neg]["t"], "p_fake": p_top, "crop": crop,
                 "thumbnail": thumb} for p_top, neg, crop, thumb in top],
        **({"crops": scorer.crops} if keep_crops else {}),
    }

