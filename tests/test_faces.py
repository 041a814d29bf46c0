"""The face crop (``faces.frame_image``) on a picture with a face at a known place and on one
with no face: the square kept holds the face, and a picture without one gets the centre crop
and says so."""

import io

import numpy as np
import pytest
from PIL import Image

from deepfake_detector.faces import frame_image

FACE = {"enabled": True, "margin": 0.25, "min_fraction": 0.1}


def jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_the_crop_holds_a_face_placed_at_a_known_box(shared_data):
    """An FFHQ photograph shrunk to 200 px and pasted at (40, 260) on a 640×640 grey canvas:
    the square kept lies around that box (its centre inside it, its side within 0.5-2× the
    photograph's), and the pixels scored are those of the photograph's region."""
    photo = Image.open(sorted((shared_data / "real").glob("*.jpg"))[0]).convert("RGB")
    photo = photo.resize((200, 200), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (640, 640), (128, 128, 128))
    left, top = 40, 260
    canvas.paste(photo, (left, top))
    image, found, (x0, y0, x1, y1) = frame_image(jpeg(canvas), 64, face_crop=FACE)
    assert found is True and image.shape == (64, 64, 3)
    cx, cy = (x0 + x1) / 2 * 640, (y0 + y1) / 2 * 640
    assert left < cx < left + 200 and top < cy < top + 200, (cx, cy)
    side = (x1 - x0) * 640
    assert 100 <= side <= 400, side
    # the crop is the photograph, not the grey canvas around it
    assert np.abs(image.astype(float) - 128).mean() > 20


def test_a_picture_without_a_face_gets_the_centre_crop_and_says_so():
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (300, 400, 3), np.uint8))
    image, found, box = frame_image(jpeg(noise), 64, face_crop=FACE)
    assert found is False and image.shape == (64, 64, 3)
    assert box == pytest.approx((50 / 400, 0.0, 350 / 400, 1.0))  # the centred square
    assert frame_image(jpeg(noise), 64, face_crop={"enabled": False})[1] is None  # not asked
