"""Property tests of the one image loader on arbitrary bytes: it returns a valid image or a
listed rejection, never another exception, and never hangs (bounded examples and time)."""

import io
import signal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from deepfake_detector.images import REASONS, ImageRejected, load_image


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), (10, 200, 10)).save(buf, "JPEG")
    return buf.getvalue()


SEEDS = [_png(), _jpeg(), b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM", b"II*\x00"]


class Timeout(Exception):
    pass


def load_within(data: bytes, seconds: int = 5):
    def alarm(signum, frame):
        raise Timeout(f"load_image took more than {seconds} s on {data[:40]!r}")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return load_image(data, 16, max_pixels=4_000_000)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check(data: bytes) -> None:
    try:
        out = load_within(data)
    except ImageRejected as exc:
        assert exc.reason in REASONS
        return
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_loader(data):
    check(data)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.integers(0, 200), st.binary(min_size=1, max_size=64),
       st.integers(0, 300))
def test_corrupted_real_images_never_crash_the_loader(seed, at, patch, cut):
    """Valid files with bytes overwritten and the tail cut off: headers that lie."""
    data = bytearray(seed)
    data[at:at + len(patch)] = patch
    check(bytes(data[:max(1, len(data) - cut)]))
