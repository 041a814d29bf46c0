"""Reading the processed splits, the robustness perturbations and the validation scores.

The input pipeline that feeds training is ``training_input``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def load_split(path: Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a processed split; ``keys``: only these (the images are the large part)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in (keys or z.files)}


def jpeg_recompress(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    return Image.open(buf).convert("RGB")


def rescale(img: Image.Image, factor: float) -> Image.Image:
    """Down-scale by ``factor`` and back: the detail a shrunken re-share loses."""
    small = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
    return img.resize(small, Image.BILINEAR).resize(img.size, Image.BILINEAR)


PERTURBATIONS = {
    "jpeg": lambda img, v: jpeg_recompress(img, v),
    "blur": lambda img, v: img.filter(ImageFilter.GaussianBlur(v)),
    "rescale": rescale,
}


def perturb(x: np.ndarray, kind: str, value: float) -> np.ndarray:
    """Every image of ``x`` through one perturbation (``jpeg`` quality, ``blur`` sigma,
    ``rescale`` factor): the robustness table's inputs."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; known: {sorted(PERTURBATIONS)}")
    fn = PERTURBATIONS[kind]
    return np.stack([np.asarray(fn(Image.fromarray(img), value)) for img in x]) if len(x) else x


def write_val_scores(path: Path, p: np.ndarray, paths: np.ndarray) -> None:
    """``models/<m>.val_scores.npz``: P(fake) of each validation image, with the image's path so
    that a reader can check the scores belong to its split. The one place that writes it."""
    from .atomic import atomic_path
    from .reproducible import savez

    with atomic_path(path) as tmp:
        savez(tmp, p=np.asarray(p, dtype=np.float32), paths=np.asarray(paths))


def read_val_scores(path: Path, val_paths: np.ndarray) -> np.ndarray:
    """The P(fake) of ``path``, refused when it scores other images than ``val_paths``."""
    with np.load(path, allow_pickle=False) as z:
        p, paths = z["p"], z["paths"]
    if not np.array_equal(paths, val_paths):
        raise ValueError(f"{Path(path).name} scores other images than the validation split: "
                         "run `dvc repro` to recompute it")
    return p.astype(np.float64)
