"""The built-in dataset: procedural faces ("real") and manipulated copies ("fake").

Every image is drawn from its own random stream ``default_rng([seed, index])``, so the
set is deterministic from ``base.seed`` and any image can be rebuilt alone.

Fakes imitate the cues that published detectors look for, one family per fake:

- ``face_swap``: the inner face of another identity blended in with a soft mask and a
  slight colour and scale mismatch (the blending boundary of face-swap deepfakes);
- ``gan_artifacts``: a region re-synthesised through a 2x upsampling that leaves a faint
  checkerboard (the transposed-convolution fingerprint of GAN generators);
- ``eye_mismatch``: irises of two colours or specular highlights that disagree (the
  physiological inconsistency found in GAN faces).

Each fake keeps its manipulation mask (1 = manipulated pixel).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .figures import pyplot
from .params_check import defaults
from .reproducible import savez

FAMILIES = ("face_swap", "gan_artifacts", "eye_mismatch")

SKIN_TONES = [
    (255, 224, 196), (241, 194, 160), (224, 172, 128), (198, 134, 92),
    (161, 102, 64), (120, 76, 46), (90, 56, 36), (232, 190, 172),
]
HAIR_COLOURS = [(20, 16, 14), (60, 40, 25), (110, 72, 40), (180, 140, 80), (220, 200, 150),
                (130, 40, 20), (150, 150, 150), (40, 30, 30)]
IRIS_COLOURS = [(70, 45, 25), (40, 90, 150), (60, 110, 60), (110, 110, 120), (120, 80, 40),
                (30, 30, 30)]


_STUDY = defaults()  # the parameters' defaults are the dataclass's: one source


@dataclass(frozen=True)
class SyntheticConfig:
    n_images: int = _STUDY["data"]["synthetic"]["n_images"]
    image_size: int = _STUDY["data"]["synthetic"]["image_size"]
    seed: int = _STUDY["base"]["seed"]
    families: tuple[str, ...] = FAMILIES
    strength: float = _STUDY["data"]["synthetic"]["strength"]  # every manipulation's visibility
    jpeg_quality: tuple[int, int] = (70, 95)

    @classmethod
    def from_params(cls, params: dict) -> "SyntheticConfig":
        """``data.synthetic`` and ``base.seed``; with every family off, all of them."""
        syn = params["data"]["synthetic"]
        families = tuple(f for f, on in syn["families"].items() if on) or FAMILIES
        return cls(n_images=syn["n_images"], image_size=syn["image_size"],
                   seed=params["base"]["seed"], families=families, strength=syn["strength"])


def _sample_face(rng: np.random.Generator) -> dict:
    iris = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))]
    return {
        "cx": rng.uniform(-0.05, 0.05), "cy": rng.uniform(-0.04, 0.06),
        "tilt": rng.uniform(-0.06, 0.06),
        "face_w": rng.uniform(0.26, 0.34), "face_h": rng.uniform(0.34, 0.42),
        "skin": np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))]) + rng.normal(0, 8, 3),
        "hair": np.array(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]) + rng.normal(0, 6, 3),
        "hair_style": int(rng.integers(3)),
        "bg": [rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)],
        "bg_angle": rng.uniform(0, np.pi),
        "light_angle": rng.uniform(0, 2 * np.pi), "light": rng.uniform(0.05, 0.3),
        "eye_dx": rng.uniform(0.10, 0.14), "eye_y": rng.uniform(-0.10, -0.04),
        "eye_w": rng.uniform(0.045, 0.06), "eye_h": rng.uniform(0.022, 0.032),
        "iris": [iris, iris],
        "highlight": [(-0.3, -0.3), (-0.3, -0.3)],
        "brow_t": rng.uniform(0.012, 0.028), "brow_lift": rng.uniform(0.035, 0.06),
        "nose_len": rng.uniform(0.08, 0.13),
        "mouth_w": rng.uniform(0.07, 0.12), "mouth_y": rng.uniform(0.15, 0.21),
        "lip": np.array([rng.uniform(140, 200), rng.uniform(60, 100), rng.uniform(60, 100)]),
        "noise": rng.uniform(1.0, 4.0),
    }


def _inner_face_box(p: dict, size: int) -> tuple[float, float, float, float]:
    """The eyes-nose-mouth region that a face swap replaces, as (cx, cy, rx, ry) pixels."""
    cx, cy = (0.5 + p["cx"]) * size, (0.5 + p["cy"]) * size
    return cx, cy + 0.05 * size, p["face_w"] * 0.8 * size, p["face_h"] * 0.62 * size


def _eye_centres(p: dict, size: int) -> list[tuple[float, float]]:
    cx, cy = (0.5 + p["cx"]) * size, (0.5 + p["cy"] + p["eye_y"]) * size
    return [(cx - p["eye_dx"] * size, cy - p["tilt"] * p["eye_dx"] * size),
            (cx + p["eye_dx"] * size, cy + p["tilt"] * p["eye_dx"] * size)]


def render_face(p: dict, size: int) -> np.ndarray:
    """Draw a face at 2x and downsample (anti-aliasing); returns float32 size×size×3."""
    big = 2 * size
    yy, xx = np.mgrid[0:big, 0:big] / big - 0.5
    t = np.cos(p["bg_angle"]) * xx + np.sin(p["bg_angle"]) * yy + 0.5
    bg = p["bg"][0] * (1 - t[..., None]) + p["bg"][1] * t[..., None]
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)

    def ell(cx, cy, rx, ry, colour):
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(c) for c in colour))

    cx, cy = (0.5 + p["cx"]) * big, (0.5 + p["cy"]) * big
    fw, fh = p["face_w"] * big, p["face_h"] * big
    hair = np.clip(p["hair"], 0, 255)
    if p["hair_style"] == 1:  # long hair behind the face
        d.rectangle([cx - fw * 1.15, cy - fh * 0.6, cx + fw * 1.15, cy + fh * 1.1],
                    fill=tuple(int(c) for c in hair))
    ell(cx, cy - fh * 0.15, fw * 1.12, fh * 1.0, hair)
    ell(cx, cy + fh * 0.05, fw, fh, np.clip(p["skin"], 0, 255))
    # forehead line of the hair
    if p["hair_style"] != 2:
        d.chord([cx - fw * 1.05, cy - fh * 1.1, cx + fw * 1.05, cy - fh * 0.1], 180, 360,
                fill=tuple(int(c) for c in hair))

    skin = np.clip(p["skin"], 0, 255)
    for i, (ex, ey) in enumerate(_eye_centres(p, big)):
        ew, eh = p["eye_w"] * big, p["eye_h"] * big
        brow_y = ey - p["brow_lift"] * big
        d.line([ex - ew * 1.2, brow_y + 1, ex + ew * 1.2, brow_y - 1],
               fill=tuple(int(c) for c in hair * 0.8), width=max(1, int(p["brow_t"] * big)))
        ell(ex, ey, ew, eh, (235, 235, 230))
        ell(ex, ey, eh * 0.95, eh * 0.95, p["iris"][i])
        ell(ex, ey, eh * 0.4, eh * 0.4, (10, 10, 10))
        hx, hy = p["highlight"][i]
        if hx is not None:
            ell(ex + hx * eh, ey + hy * eh, eh * 0.28, eh * 0.28, (255, 255, 255))
    nose_top, nose_len = cy - 0.02 * big, p["nose_len"] * big
    d.line([cx, nose_top, cx - 0.015 * big, nose_top + nose_len],
           fill=tuple(int(c) for c in skin * 0.78), width=max(1, big // 60))
    ell(cx, nose_top + nose_len, 0.03 * big, 0.012 * big, skin * 0.85)
    my = cy + p["mouth_y"] * big
    ell(cx, my, p["mouth_w"] * big, 0.018 * big, p["lip"])
    d.line([cx - p["mouth_w"] * big, my, cx + p["mouth_w"] * big, my],
           fill=tuple(int(c) for c in p["lip"] * 0.5), width=1)

    arr = np.asarray(img.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    shade = 1 + p["light"] * (np.cos(p["light_angle"]) * xx + np.sin(p["light_angle"]) * yy) * 2
    return arr * shade[..., None]


def _soft_ellipse(size: int, cx, cy, rx, ry, blur: float) -> np.ndarray:
    m = Image.new("L", (size, size), 0)
    ImageDraw.Draw(m).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    return np.asarray(m.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32) / 255.0


def _face_swap(img, p, rng, size, strength):
    donor_p = _sample_face(rng)
    for key in ("cx", "cy", "tilt", "face_w", "face_h"):  # the swap aligns the faces
        donor_p[key] = p[key]
    donor_p["bg"], donor_p["light_angle"], donor_p["light"] = p["bg"], p["light_angle"], p["light"]
    donor_p["skin"] = p["skin"] + rng.normal(0, 10 * strength, 3)  # colour mismatch
    donor = render_face(donor_p, size)
    scale = 1 + rng.choice([-1, 1]) * rng.uniform(0.04, 0.1) * strength  # scale mismatch
    cx, cy, rx, ry = _inner_face_box(p, size)
    zoom = Image.fromarray(np.clip(donor, 0, 255).astype(np.uint8)).resize(
        (round(size * scale),) * 2, Image.Resampling.BILINEAR)
    donor = np.zeros_like(img)
    zoom_arr = np.asarray(zoom, dtype=np.float32)
    off = (zoom_arr.shape[0] - size) // 2
    if off >= 0:
        donor[:] = zoom_arr[off:off + size, off:off + size]
    else:
        donor[:] = img
        donor[-off:-off + zoom_arr.shape[0], -off:-off + zoom_arr.shape[1]] = zoom_arr
    donor *= 1 + rng.normal(0, 0.04 * strength, 3)  # per-channel colour mismatch
    alpha = _soft_ellipse(size, cx, cy, rx, ry, blur=size / 40)
    out = img * (1 - alpha[..., None]) + donor * alpha[..., None]
    return out, alpha > 0.5


def _gan_artifacts(img, p, rng, size, strength):
    """Re-synthesise a region by 2x down/up-sampling plus a faint checkerboard."""
    cx, cy, rx, ry = _inner_face_box(p, size)
    if rng.random() < 0.5:  # somewhere else than the face: hair or background
        cx, cy = rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.8) * size
        rx = ry = rng.uniform(0.15, 0.3) * size
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).resize(
        (size // 2, size // 2), Image.Resampling.BILINEAR)
    up = np.asarray(small.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    checker = np.where((xx + yy) % 2 == 0, 1.0, -1.0)[..., None]
    amplitude = rng.uniform(3, 7) * strength * rng.choice([-1, 1], 3)
    synth = up + checker * amplitude
    alpha = _soft_ellipse(size, cx, cy, rx, ry, blur=size / 32)
    out = img * (1 - alpha[..., None]) + synth * alpha[..., None]
    return out, alpha > 0.5


def _eye_mismatch(p, rng, size):
    """Change one eye only: a different iris colour, or a highlight that disagrees."""
    p = dict(p)
    eye = int(rng.integers(2))
    if rng.random() < 0.5:
        others = [c for c in IRIS_COLOURS if c != tuple(p["iris"][1 - eye])]
        iris = list(p["iris"])
        iris[eye] = others[rng.integers(len(others))]
        p["iris"] = iris
    else:
        hl = list(p["highlight"])
        moved = (rng.uniform(0.1, 0.4), rng.uniform(0, 0.4))
        hl[eye] = (None, None) if rng.random() < 0.3 else moved
        p["highlight"] = hl
    img = render_face(p, size)
    ex, ey = _eye_centres(p, size)[eye]
    mask = _soft_ellipse(size, ex, ey, p["eye_w"] * size * 1.3, p["eye_h"] * size * 1.6, 0.5)
    return img, mask > 0.3


def _face_and_family(index: int, fake: bool, cfg: SyntheticConfig):
    """The random stream of image ``index``, its face parameters and its family ("" for a
    real face): the first draws of every image, so ``family_of`` needs no rendering."""
    rng = np.random.default_rng([cfg.seed, index])
    p = _sample_face(rng)
    family = cfg.families[rng.integers(len(cfg.families))] if fake and cfg.families else ""
    return rng, p, family


def family_of(index: int, fake: bool, cfg: SyntheticConfig) -> str:
    """The manipulation family of image ``index`` ("" for a real face)."""
    return _face_and_family(index, fake, cfg)[2]


def make_image(index: int, fake: bool, cfg: SyntheticConfig):
    """One image as (JPEG bytes, mask uint8 H×W with 1 = manipulated)."""
    rng, p, family = _face_and_family(index, fake, cfg)
    size = cfg.image_size
    mask = np.zeros((size, size), dtype=bool)
    if family:
        if family == "eye_mismatch":
            img, mask = _eye_mismatch(p, rng, size)
        else:
            img = render_face(p, size)
            manipulate = _face_swap if family == "face_swap" else _gan_artifacts
            img, mask = manipulate(img, p, rng, size, cfg.strength)
    else:
        img = render_face(p, size)
    img = img + rng.normal(0, p["noise"], img.shape)  # sensor noise
    buf = io.BytesIO()
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue(), mask.astype(np.uint8)


def generate(out_dir: Path, cfg: SyntheticConfig, progress=None) -> dict[str, int]:
    """Write ``real/`` and ``fake/`` JPEGs and ``masks.npz`` (keyed by relative path: the
    masks and each fake's family, "" for a real face)."""
    out_dir = Path(out_dir)
    for cls in ("real", "fake"):
        (out_dir / cls).mkdir(parents=True, exist_ok=True)
    names, masks, families = [], [], []
    n_fake = cfg.n_images // 2
    indices = range(cfg.n_images)
    for i in progress(indices) if progress else indices:
        fake = i >= cfg.n_images - n_fake
        data, mask = make_image(i, fake, cfg)
        rel = f"{'fake' if fake else 'real'}/{i:06d}.jpg"
        (out_dir / rel).write_bytes(data)
        names.append(rel)
        masks.append(mask)
        families.append(family_of(i, fake, cfg))
    savez(out_dir / "masks.npz", compressed=True, names=np.array(names), masks=np.stack(masks),
          families=np.array(families))
    return {"real": cfg.n_images - n_fake, "fake": n_fake}


def sample_grid(cfg: SyntheticConfig, path: Path, n_per_family: int = 4) -> None:
    """A PNG of real faces and one row per manipulation family, masks outlined in red."""
    rows, labels = [], []
    real = [make_image(i, False, cfg)[0] for i in range(n_per_family * 2)]
    rows.append(real), labels.append("real")
    for family in cfg.families:
        one = SyntheticConfig(**{**cfg.__dict__, "families": (family,)})
        imgs = []
        for i in range(n_per_family * 2):
            data, mask = make_image(10_000 + i, True, one)
            arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()
            if i % 2:  # every other sample shows where the manipulation is
                edge = mask.astype(bool) & ~np.asarray(
                    Image.fromarray(mask * 255).filter(ImageFilter.MinFilter(3)), dtype=bool)
                arr[edge] = (255, 0, 0)
            imgs.append(arr)
        rows.append(imgs), labels.append(family)
    plt = pyplot()

    ncol = len(rows[0])
    fig, axes = plt.subplots(len(rows), ncol, figsize=(ncol * 1.2, len(rows) * 1.3))
    for r, (row, label) in enumerate(zip(rows, labels)):
        for c, item in enumerate(row):
            ax = axes[r, c]
            ax.imshow(item if isinstance(item, np.ndarray) else Image.open(io.BytesIO(item)))
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle("Built-in dataset: real faces, then one row per fake family (odd columns: mask)",
                 fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":  # python -m deepfake_detector.synthetic OUT.png
    import sys

    from .config import load_params

    sample_grid(SyntheticConfig.from_params(load_params()), Path(sys.argv[1]))
