"""Face crop for real photographs: the largest frontal face found by OpenCV's Haar cascade.

The cascade's XML ships inside ``opencv-python-headless`` (< 5: 5.0 dropped the bundled
cascades), so nothing is downloaded at run time.
"""

from __future__ import annotations

import threading

import numpy as np

from .images import MAX_FILE_MB, MB

DETECT_SIDE = 640  # detection runs on a copy at most this wide: faster, same faces


_local = threading.local()  # one cascade per thread: detectMultiScale keeps scratch state


def _cascade():
    import cv2

    if getattr(_local, "cascade", None) is None:
        cascade = cv2.CascadeClassifier(
            cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if cascade.empty():
            raise RuntimeError("OpenCV's bundled face cascade did not load: reinstall "
                               "opencv-python-headless<5")
        _local.cascade = cascade
    return _local.cascade


def detect_faces(rgb: np.ndarray, min_fraction: float = 0.1,
                 side: int = DETECT_SIDE) -> list[tuple[int, int, int, int]]:
    """(left, top, width, height) of every face at least ``min_fraction`` of the image's
    shorter side, in ``rgb``'s pixels; detected on a copy at most ``side`` wide."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = cv2.resize(grey, (round(width * scale), round(height * scale)),
                          interpolation=cv2.INTER_AREA)
    smallest = max(20, int(min(grey.shape) * min_fraction))
    faces = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                        minSize=(smallest, smallest))
    return [tuple(int(round(v / scale)) for v in face) for face in faces]


def largest_face(rgb: np.ndarray, min_fraction: float = 0.1) -> tuple[int, int, int, int] | None:
    """The largest of ``detect_faces``; None when there is none."""
    faces = detect_faces(rgb, min_fraction)
    return max(faces, key=lambda f: f[2] * f[3]) if faces else None


def face_square(face: tuple[int, int, int, int], margin: float, width: int,
                height: int) -> tuple[int, int, int, int]:
    """A square box around the face, ``margin`` × its size added on each side, moved (and if
    need be shrunk) to stay inside the image: like the tight face crops of the training data."""
    x, y, w, h = face
    side = min(int(round(max(w, h) * (1 + 2 * margin))), width, height)
    cx, cy = x + w / 2, y + h / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + side, top + side


def frame_image(source, size: int, *, max_pixels: int = 50_000_000, crop: float = 1.0,
                face_crop: dict | None = None, max_bytes: int | None = MAX_FILE_MB * MB):
    """The one framing of an image for every model, in training, evaluation and serving:
    decode → the largest face's square (``face_crop`` enabled) or the centre crop → resize.
    Returns (uint8 ``size×size×3``, whether a face was found (None with face crop off), the
    box kept as fractions (left, top, right, bottom) of the decoded image, for its mask).
    Raises ``errors.ImageRejected``; a path that is not a regular file, or is larger than
    ``max_bytes``, is refused unread."""
    from .images import centre_box, decode, load_image, read_bytes, square_resize

    if not (face_crop or {}).get("enabled"):
        return load_image(source, size, max_pixels, crop, max_bytes), None, None
    img = decode(read_bytes(source, max_bytes), max_pixels,
                 draft=(max(size, DETECT_SIDE), 1.0))
    face = largest_face(np.asarray(img), face_crop.get("min_fraction", 0.1))
    found = face is not None
    box = (face_square(face, float(face_crop.get("margin", 0.25)), *img.size) if found
           else centre_box(*img.size, crop))
    width, height = img.size
    fractions = (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
    return square_resize(img, size, box), found, fractions
