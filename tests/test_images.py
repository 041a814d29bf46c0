"""The one image loader: every format converts to RGB, every bad file has its reason."""

import io

import numpy as np
import pytest
from helpers import jpeg_bytes, rgb_array
from PIL import Image

from deepfake_detector.images import ImageRejected, load_image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_jpeg_decodes_to_requested_size():
    out = load_image(jpeg_bytes(1, size=256), 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    full = np.asarray(Image.open(io.BytesIO(jpeg_bytes(1, size=256))).resize((64, 64)))
    assert np.abs(out.astype(int) - full.astype(int)).mean() < 12  # same picture


def test_fast_and_pillow_paths_agree():
    """An EXIF block sends a JPEG through Pillow; the picture must not change."""
    data = jpeg_bytes(3, size=128)
    img = Image.open(io.BytesIO(data))
    exif = Image.Exif()
    exif[0x0112] = 1  # orientation: normal
    with_exif = encode(img, "JPEG", quality=95, exif=exif.tobytes())
    plain = encode(img, "JPEG", quality=95)
    diff = np.abs(load_image(with_exif, 32).astype(int) - load_image(plain, 32).astype(int))
    assert diff.mean() < 3


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_modes_convert_to_rgb(mode):
    base = Image.fromarray(rgb_array(2, 40))
    if mode == "I;16":
        grey = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)
        img = Image.fromarray(grey.astype(np.uint16))
        fmt = "PNG"
    else:
        img = base.convert(mode)
        fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = load_image(encode(img, fmt), 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    if mode == "I;16":  # 16-bit keeps its range instead of clipping to white
        assert 40 < out.mean() < 215


def test_rgba_transparency_becomes_white():
    img = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    assert load_image(encode(img, "PNG"), 8).min() == 255


def test_exif_orientation_is_applied():
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, :40] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display: white half ends on top
    data = encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())
    out = load_image(data, 40).astype(int)
    assert out[:10].mean() > 200 and out[-10:].mean() < 60


def test_non_square_is_centre_cropped():
    arr = np.zeros((50, 150, 3), np.uint8)
    arr[:, 50:100] = 255  # only the centre square is white
    out = load_image(encode(Image.fromarray(arr), "PNG"), 25)
    assert out[:, 1:-1].min() > 240 and out.mean() > 245  # bilinear edges see one neighbour


@pytest.mark.parametrize("data,reason", [
    (b"", "zero_bytes"),
    (b"this is a text file, not a picture\n" * 10, "not_image"),
    (jpeg_bytes(5, size=128)[:-600], "truncated"),
    (encode(Image.fromarray(rgb_array(1, 64)), "PNG")[:300], "truncated"),
])
def test_bad_bytes_are_rejected_with_reason(data, reason):
    with pytest.raises(ImageRejected) as info:
        load_image(data, 32)
    assert info.value.reason == reason


def test_too_many_pixels_is_rejected_before_decoding():
    data = encode(Image.new("RGB", (3000, 2000)), "PNG")
    with pytest.raises(ImageRejected) as info:
        load_image(data, 32, max_pixels=1_000_000)
    assert info.value.reason == "too_many_pixels"
    assert load_image(data, 32, max_pixels=10_000_000).shape == (32, 32, 3)


def test_files_and_bytes_give_the_same_result(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(9))
    assert np.array_equal(load_image(path, 48), load_image(path.read_bytes(), 48))
    with pytest.raises(ImageRejected) as info:
        load_image(tmp_path / "missing.jpg", 48)
    assert info.value.reason == "unreadable"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_centre_crop_keeps_the_middle_at_native_resolution(fmt):
    arr = np.zeros((200, 300, 3), np.uint8)
    arr[50:150, 100:200] = 255  # the centre half of the shorter side
    out = load_image(encode(Image.fromarray(arr), fmt, quality=95) if fmt == "JPEG"
                     else encode(Image.fromarray(arr), fmt), 50, crop=0.5)
    assert out.shape == (50, 50, 3) and out[2:-2, 2:-2].min() > 230
    with pytest.raises(ValueError):
        load_image(encode(Image.fromarray(arr), "PNG"), 50, crop=0)


def test_read_bytes_reads_a_file_that_grew_after_its_check_up_to_the_cap(tmp_path, monkeypatch):
    """The read asks for the size the file had when opened (plus one byte): a file that grew
    since is still read whole, and one that grew past the cap is refused."""
    import os

    from deepfake_detector.errors import ImageRejected
    from deepfake_detector.images import read_bytes

    path = tmp_path / "growing.jpg"
    path.write_bytes(bytes(range(100)))
    real_fstat = os.fstat

    real_stat = os.stat

    def ten_bytes(info):
        return os.stat_result((info.st_mode, *info[1:6], 10, *info[7:]))

    # the file had 10 bytes when it was checked and opened, and has 100 when it is read
    monkeypatch.setattr(os, "fstat", lambda fd: ten_bytes(real_fstat(fd)))
    monkeypatch.setattr(os, "stat", lambda path, *a, **kw: ten_bytes(real_stat(path, *a, **kw)))
    assert read_bytes(path, max_bytes=1000) == bytes(range(100))
    assert read_bytes(path, max_bytes=None) == bytes(range(100))
    with pytest.raises(ImageRejected) as refused:
        read_bytes(path, max_bytes=50)
    # refused by the read, not by the checks before it (which saw 10 bytes)
    said = str(refused.value)
    assert refused.value.reason == "too_large" and said.startswith("too_large: more than the")
