"""The one image loader used by the pipeline, the CLI and the service.

decode → EXIF orientation → RGB → centre crop to square → resize.

Files are read only when they are regular files no larger than ``preprocess.max_file_mb``
(``check_file``): a FIFO or device is never opened, a huge file never read.

Plain JPEGs (YCbCr or grey, no EXIF block before the image data) take a fast path:
libjpeg-turbo through ``simplejpeg`` scales by 1/2, 1/4 or 1/8 inside the DCT and skips
Pillow's per-file Python marker parsing, about 2x faster per image. Everything else (and any
JPEG the fast path refuses) goes through Pillow, whose JPEG draft mode does the same DCT
scaling.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageRejected

try:
    import simplejpeg
except ImportError:  # optional speed-up; Pillow does the same work more slowly
    simplejpeg = None

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jfif"}

# Reasons a file is left out; the contract of data/processed/rejected.csv.
REASONS = ("zero_bytes", "truncated", "not_image", "too_many_pixels", "duplicate",
           "label_conflict", "unreadable", "no_class", "too_large", "not_regular_file")

MAX_FILE_MB = 100  # preprocess.max_file_mb's default: larger files are refused unread
MB = 2**20




def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_utf8(name: str) -> bool:
    """False for a file name whose bytes are not UTF-8 (Python keeps them as surrogates):
    manifests, DVC and MLflow store names as text and cannot hold it."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def readable_name(name: str) -> str:
    """A file name with bytes that are not UTF-8 shown escaped (``caf\\xe9.jpg``)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit int) grey: keep the top 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.uint32)
        peak = 65535 if img.mode.startswith("I;16") or arr.max() > 255 else 255
        grey = (arr * 255 // max(peak, 1)).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        grey = ((arr - lo) / (hi - lo or 1) * 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if (img.mode == "P" and "transparency" in img.info) or img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # alpha over white
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def centre_box(width: int, height: int, crop: float = 1.0) -> tuple[int, int, int, int]:
    """The centred square of side ``crop`` × the shorter side."""
    side = max(1, round(min(width, height) * crop))
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def _exif_before_image(data: bytes, max_segments: int = 4096) -> bool | None:
    """Whether a JPEG carries an EXIF block (APP1 ``Exif``) anywhere before its image data.

    Walks the marker segments from SOI to SOS (each segment states its length), so a large
    ICC profile or Photoshop block in front of the EXIF cannot hide it the way a search of
    the first 64 KiB could. None for a marker structure that is not plain (let Pillow judge).
    """
    i, n = 2, len(data)
    for _ in range(max_segments):
        if i + 4 > n or data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no metadata after here
            return False
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # stand-alone markers carry no length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2:
            return None
        if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\x00\x00":
            return True
        i += 2 + length
    return None


def _fast_jpeg(data: bytes, size: int, max_pixels: int, crop: float) -> np.ndarray | None:
    """Decode a plain JPEG with DCT scaling, or None to let Pillow handle it (an EXIF block,
    which may turn the picture, or anything unusual)."""
    if simplejpeg is None or data[:2] != b"\xff\xd8" or _exif_before_image(data) is not False:
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
        if colourspace not in ("YCbCr", "Gray") or width * height > max_pixels:
            return None
        need = int(np.ceil(size / crop))  # the crop must still hold ``size`` pixels
        arr = simplejpeg.decode_jpeg(data, "RGB", min_height=need, min_width=need)
    except ValueError:
        return None  # truncated or odd: Pillow decides, and names the reason
    if arr.shape[:2] == (size, size) and crop == 1.0:
        return arr
    img = Image.fromarray(arr)
    return square_resize(img, size, centre_box(*img.size, crop))


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR,
          "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_regular(mode: int) -> str:
    """What a file that is not a regular file is, from its ``st_mode``: "a FIFO, not a
    regular file"."""
    kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
    return f"{kind}, not a regular file"


def check_file(path: str | os.PathLike, max_bytes: int | None = MAX_FILE_MB * MB) -> int:
    """The size of ``path`` if it may be read as an image: a regular file (after symbolic
    links) of at most ``max_bytes``. Only ``os.stat``: nothing is opened. Raises
    ``ImageRejected`` (``unreadable``, ``not_regular_file``, ``too_large``)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:
        raise ImageRejected("unreadable", str(exc)) from None
    return _check_stat(info, max_bytes)


def _check_stat(info: os.stat_result, max_bytes: int | None) -> int:
    if not stat.S_ISREG(info.st_mode):
        raise ImageRejected("not_regular_file", not_regular(info.st_mode))
    if max_bytes is not None and info.st_size > max_bytes:
        raise ImageRejected("too_large", f"{info.st_size:,} bytes, more than the "
                            f"{max_bytes / MB:g} MB cap (preprocess.max_file_mb)")
    return info.st_size


def read_bytes(source: str | os.PathLike | bytes,
               max_bytes: int | None = MAX_FILE_MB * MB) -> bytes:
    """The file's bytes (``source`` may already be bytes, taken as they are);
    ``ImageRejected`` when unusable. A path is checked before it is opened (``check_file``),
    opened without blocking (a FIFO swapped in after the check cannot hang it) and checked
    again on the open file, and never more than ``max_bytes`` are read."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        check_file(source, max_bytes)
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except (OSError, ValueError) as exc:
            raise ImageRejected("unreadable", str(exc)) from None
        try:
            with os.fdopen(fd, "rb") as fh:
                size = _check_stat(os.fstat(fh.fileno()), max_bytes)  # opened: a file
                # the size it has, one byte more to see it grew: ``read(max_bytes + 1)``
                # allocated the whole cap each call, serialising threads on the allocator
                # (preprocessing at half speed on 2 cores, 2026-11-29)
                data = fh.read(size + 1)
                if len(data) > size:  # it grew after the check: read on, up to the cap
                    data += fh.read(-1 if max_bytes is None else max_bytes + 1 - len(data))
        except OSError as exc:
            raise ImageRejected("unreadable", str(exc)) from None
        if max_bytes is not None and len(data) > max_bytes:  # it grew after the check
            raise ImageRejected("too_large", f"more than the {max_bytes / MB:g} MB cap "
                                "(preprocess.max_file_mb)")
    if not data:
        raise ImageRejected("zero_bytes")
    return data


def decode(data: bytes, max_pixels: int = 50_000_000,
           draft: tuple[int, float] | None = None) -> Image.Image:
    """Pillow's decode of any format to an upright RGB image. ``draft=(size, crop)`` lets a
    JPEG decode at the smallest DCT scale that still gives ``size`` pixels across the centre
    ``crop`` of its shorter side."""
    try:
        with io.BytesIO(data) as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # we check the pixel count ourselves
            try:
                img = Image.open(fp)
            except UnidentifiedImageError:
                raise ImageRejected("not_image") from None
            width, height = img.size
            if width * height > max_pixels:
                raise ImageRejected("too_many_pixels", f"{width}x{height}")
            if img.format == "JPEG" and draft:
                size, crop = draft
                # Orientations 5-8 swap the axes, but draft only needs the smaller side.
                side = min(width, height) * crop
                img.draft("RGB", (max(1, int(width * size / side)),
                                  max(1, int(height * size / side))))
            try:
                img.load()
            except (OSError, SyntaxError, ValueError) as exc:
                reason = "truncated" if "truncated" in str(exc).lower() else "unreadable"
                raise ImageRejected(reason, str(exc)) from None
            if img.getexif().get(0x0112, 1) != 1:
                img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from None
    except Exception as exc:  # any other decoder failure is an unreadable file, not a crash
        raise ImageRejected("unreadable", f"{type(exc).__name__}: {exc}") from None


def square_resize(img: Image.Image, size: int, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, box=box,
                                 reducing_gap=None), dtype=np.uint8)


def load_image(source: str | os.PathLike | bytes, size: int,
               max_pixels: int = 50_000_000, crop: float = 1.0,
               max_bytes: int | None = MAX_FILE_MB * MB) -> np.ndarray:
    """Decode ``source`` (a path or the file's bytes) to a uint8 ``size×size×3`` array.

    ``crop`` < 1 keeps only the centre ``crop`` × shorter side before resizing (closer to
    the native resolution, where generator artefacts survive). A path larger than
    ``max_bytes`` (``preprocess.max_file_mb``) is refused unread; bytes are taken as given.

    Raises ``ImageRejected`` with a reason from ``REASONS`` for unusable input.
    """
    data = read_bytes(source, max_bytes)
    if not 0 < crop <= 1:
        raise ValueError(f"crop must be in (0, 1], not {crop}")
    fast = _fast_jpeg(data, size, max_pixels, crop)
    if fast is not None:
        return fast
    img = decode(data, max_pixels, draft=(size, crop))
    if img.size == (size, size) and crop == 1.0:
        return np.asarray(img, dtype=np.uint8)
    return square_resize(img, size, centre_box(*img.size, crop))


def resize_mask(mask: np.ndarray, size: int, crop: float = 1.0,
                box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Crop and resize a manipulation mask exactly as its image was framed: the centre
    ``crop`` (``load_image``), or ``box`` as fractions of the image (``faces.frame_image``)."""
    if mask.shape == (size, size) and crop == 1.0 and box is None:
        return mask
    img = Image.fromarray(mask)
    width, height = img.size
    pixels = centre_box(width, height, crop) if box is None else (
        box[0] * width, box[1] * height, box[2] * width, box[3] * height)
    return np.asarray(img.resize((size, size), Image.Resampling.NEAREST, box=pixels),
                      dtype=np.uint8)
