"""A model's serving settings: ``models/<m>.settings.json`` (written by evaluate@<m>) and a
registered version's settings.json: the preprocessing, the temperature and the threshold."""

from __future__ import annotations

import json
from pathlib import Path

# The layout of models/<m>.settings.json and of a registered version's settings.json. A file
# without the key is version 0: written by the register stage before the settings became an
# output of evaluate@<m>; it has the same keys and is read as it is.
SETTINGS_SCHEMA_VERSION = 1


def face_crop_settings(section: dict) -> dict:
    """The face crop that ``preprocess`` (or, for a model with no framing recorded,
    ``serve``) asks for: its ``face_crop``, ``face_margin`` and ``face_min_fraction`` keys, in
    the form ``faces.frame_image`` and the model settings take."""
    return {"enabled": bool(section["face_crop"]), "margin": section["face_margin"],
            "min_fraction": section["face_min_fraction"]}


def trained_settings(params: dict) -> dict:
    """The serving settings of a model trained by this pipeline: its preprocessing, framing
    included (``framing``: ``face`` or ``whole``, so that every scorer frames images as the
    model saw them), uncalibrated (temperature 1, threshold 0.5) until evaluate fits them."""
    pre = params["preprocess"]
    return {"image_size": pre["image_size"], "centre_crop": pre["centre_crop"],
            "max_pixels": pre["max_pixels"], "temperature": 1.0, "threshold": 0.5,
            "framing": "face" if pre["face_crop"] else "whole",
            "face_crop": face_crop_settings(pre)}


def settings_for_defaults(params: dict) -> dict:
    """Settings for a model file with no settings file beside it: its framing is unknown, so
    ``serve.face_crop`` decides."""
    settings = {k: v for k, v in trained_settings(params).items() if k != "framing"}
    return {**settings, "face_crop": face_crop_settings(params["serve"])}


def check_settings(settings, source: str) -> dict:
    """``settings`` as read from ``source``, refused when it is not a settings object of a
    schema this code knows (a missing ``schema_version`` is 0)."""
    if not isinstance(settings, dict):
        raise ValueError(f"{source}: not a settings object")
    version = settings.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"{source}: schema_version {version!r} is not a whole number")
    if version > SETTINGS_SCHEMA_VERSION:
        raise ValueError(f"{source} has settings schema_version {version}, newer than this "
                         f"code reads ({SETTINGS_SCHEMA_VERSION}): update deepfake-detector")
    missing = [k for k in ("image_size", "threshold") if k not in settings]
    if missing:
        raise ValueError(f"{source}: the settings lack {', '.join(missing)}")
    return settings


def read_settings(path: Path, source: str | None = None) -> dict:
    """A settings file (``models/<m>.settings.json``, a registered version's settings.json)."""
    try:
        settings = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source or path} is not JSON: {exc}") from None
    return check_settings(settings, source or str(path))
