"""``params.yaml`` as DVC reads it, written from the defaults (``params_spec.SPEC``) with a
profile over them: ``profiles/<name>.yaml`` holds only the values it changes.

``python -m deepfake_detector.params_check --profile real-small`` (``make params
PROFILE=real-small``) writes the merged file; ``--profile study`` writes the study's values
back, byte for byte the committed ``params.yaml`` (tests/test_profiles.py checks that).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .atomic import write_text
from .config import read_yaml_file
from .params_check import complete, defaults, validate
from .paths import Workspace

STUDY = "study"  # profiles/study.yaml: no changes, the study's values
WIDTH = 100      # a mapping or list is written on one line when it fits in this many columns
NOTE_COLUMN = 26
_ABSENT = object()  # a key the defaults do not have (a model a profile adds)

# The comments params.yaml carries, by key. A note with a line break goes above its key.
NOTES = {
    "provenance": "Content Credentials (C2PA) and generator metadata beside every verdict",
    "provenance.trust_anchors": "PEM file of trusted signer/root certificates; null: none",
    "provenance.timeout_s": "time limit on reading one file's manifest store",
    "data.source": "synthetic (built-in), a folder, a .zip, an http(s):// URL of a zip, or "
                   "gdrive://<file id>.\nThe original study's data: "
                   "gdrive://1b-GA8_23MGmbEBsuEluKVm90QJ1kLEtV",
    "data.sha256": "optional checksum of the zip; verified before extraction",
    "data.class_names": "folder words per class, matched without regard to case",
    "data.synthetic.strength": "visibility of every manipulation",
    "data.cache_dir": "download cache (resumable .part files); not a DVC output",
    "data.gdrive_base_url": "null: $DEEPFAKE_GDRIVE_URL or https://drive.google.com",
    "data.extract.max_total_bytes": "20 GiB uncompressed",
    "data.extract.max_ratio": "uncompressed/compressed, per entry > 1 MiB and overall",
    "data.download": "http(s):// and gdrive:// sources",
    "data.download.max_bytes": "8 GiB (the study's zip is ~2 GB); a .part past it is deleted",
    "data.download.stall_s": "give up when no byte arrives for this long",
    "data.download.deadline_s": "give up on the whole download after this long (12 h)",
    "split.group_regex": "e.g. '^(?:.*/)?(vid\\d+)_' keeps all frames of a video in one split",
    "split.near_duplicate_bits": "pHash bits (of 64) within which images are one picture; "
                                 "null: off",
    "split.shortcut_audit": "warn | fail when file facts alone tell the classes apart",
    "split.shortcut_max_auc": "...past this cross-validated ROC AUC (format, quality, sizes)",
    "preprocess.centre_crop": "keep this share of the shorter side (centred) before resizing",
    "preprocess.max_file_mb": "larger files are rejected (too_large) unread; also the CLI's cap",
    "preprocess.face_crop": "frame every image on its largest face (Haar), as the model is served",
    "preprocess.face_margin": "added around the face box on each side, × its size",
    "preprocess.face_min_fraction": "smallest face, as a share of the image's shorter side",
    "training": "shared by every model",
    "training.distribute": "none | mirrored | multi_worker (needs TF_CONFIG)",
    "training.cpu_devices": "> 1: split the CPU into that many logical devices (for mirrored)",
    "training.deterministic": "bit-identical reruns (one inter-op thread); false is faster on "
                              "many cores",
    "training.max_steps_per_epoch": "cap batches per epoch (smoke tests, memory checks)",
    "training.augment": "robustness augmentation; off for the built-in data (README)",
    "training.augment.flip": "mirror half the images",
    "training.augment.shift": "shift by up to shift_fraction of the side (edges reflected)",
    "training.augment.colour": "brightness, contrast and saturation by up to colour_strength",
    "training.augment.rescale": "shrink by rescale_factor and back (one factor per block of 64)",
    "training.augment.blur": "Gaussian blur in blur_sigma (one sigma per block of 64)",
    "training.augment.jpeg": "re-compress in jpeg_quality (one quality per block of 64)",
    "training.augment.p": "chance of each kind but flip, per image",
    "train": "one entry per model; dvc.yaml runs train@<name> for each",
    "train.baseline": "the study's baseline CNN",
    "train.baseline.epochs": "study: up to 25 with early stopping",
    "train.tuned": "the study's hand-tuned CNN (the one it deployed)",
    "train.tuned.epochs": "study: up to 25 with early stopping (stops near 16 here)",
    "train.tuned.momentum": "plain SGD (0) did not converge within the CPU budget",
    "train.xception": "Keras Xception, base fine-tuned (the study found that necessary)",
    "train.xception.epochs": "~55 images/s at 71 px on a 2-core CPU: ~45 s an epoch here",
    "train.xception.momentum": "read by sgd only",
    "train.baseline.momentum": "read by sgd only",
    "train.xception.input_size": "resized inside the model; Xception needs >= 71",
    "train.xception.weights": "imagenet | none | path/to/weights.h5 (the pretrained stage "
                              "resolves it)",
    "train.xception.base_bn_momentum": "Keras' 0.99 lags when training from scratch; null "
                                       "keeps it",
    "train.tuned.highpass": "true: noise-residual channels beside the pixels",
    "ensemble.method": "stacked (Dense(32) combiner fitted on validation) | average",
    "ensemble.folds": "cross-fitting on validation: out-of-fold scores choose the threshold",
    "evaluate.threshold": "chosen on validation: max_accuracy | eer | fake_recall | a number",
    "evaluate.target_fake_recall": "for threshold: fake_recall (catch this share of fakes)",
    "evaluate.calibration": "temperature scaling fitted on validation | none",
    "evaluate.robustness": "test images re-shared at each severity ([] skips a kind)",
    "evaluate.bootstrap": "95% intervals of ROC AUC and accuracy (resamples 0: none)",
    "evaluate.decide": "verdict inconclusive in a band around the threshold (fitted on "
                       "validation)",
    "evaluate.decide.target_accuracy": "validation accuracy outside the band; null: no band",
    "evaluate.external": "{name: labelled folder} scored by every model (stage external)",
    "evaluate.domain": "out-of-domain flag: features' distance to the training images",
    "evaluate.domain.quantile": "flag past this quantile of validation distances; null: off",
    "evaluate.domain.max_images": "training (and validation) images the fit uses, spread",
    "data.synthetic.videos": "clips of moving faces, data/raw/videos/{val,test} (0: none)",
    "data.synthetic.videos.clips": "per split, half real; half the fakes manipulated in one "
                                   "segment only",
    "data.synthetic.videos.fps": "encoded frame rate (H.264, one thread: the same bytes each run)",
    "data.synthetic.videos.segment_share": "a segment fake's manipulated share of the clip",
    "video": "scanning clips (deepfake scan, POST /scan, the evaluate stage)",
    "video.fps": "frames sampled per second of video, by timestamp",
    "video.max_frames": "at most this many per clip (spread over a longer clip)",
    "video.max_pixels": "larger frames are refused (default: 4K UHD)",
    "video.max_seconds": "longer clips (declared or decoded) are refused",
    "video.max_file_mb": "larger files are refused unread (CLI)",
    "video.deadline_s": "decoding one clip takes at most this long (else too_long)",
    "video.top_fraction": "a clip's P(fake): the mean of its top this share of frame scores",
    "explain.model": "LIME, occlusion and activations for this one (the study's choice)",
    "explain.n_images": "test images explained: half fakes, half reals, right and wrong",
    "explain.num_samples": "LIME perturbations per image",
    "explain.batch_size": "images per compiled model call",
    "explain.segments": "SLIC",
    "explain.gradcam_min_size": "Grad-CAM on the last conv layer at least this many pixels wide",
    "explain.score_fakes": "test fakes whose maps are scored against the true masks",
    "explain.area": "the share of pixels a map may point at when scored (IoU)",
    "explain.aggregate_images": "per class, for the mean Grad-CAM maps",
    "explain.eye_band": "rows (fractions of the height) where the eyes of aligned faces lie",
    "register.model": "the study deployed its tuned CNN",
    "register.name": "the registered model; each new model is a version, alias challenger",
    "promote": "the gate `deepfake promote` applies before moving alias champion",
    "promote.min_roc_auc": "test-split floors",
    "promote.max_drop": "no key metric more than this below the current champion's",
    "serve.face_crop": "for a model that records no framing: crop the largest face first",
    "serve.face_margin": "added around the face box on each side, × its size",
    "serve.face_min_fraction": "smallest face, as a share of the image's shorter side",
    "serve.max_upload_mb": "per file; larger uploads get 413 without being read whole",
    "serve.max_request_mb": "per request, all files together",
    "serve.max_files": "files per request",
    "serve.upload_stall_s": "give up on a request body that sends nothing for this long",
    "serve.allowed_hosts": "Host header names served; null: localhost, 127.0.0.1, ::1, "
                           "serve.host",
    "serve.explain_concurrency": "/explain requests at once; more get 503 with Retry-After",
    "serve.max_video_mb": "POST /scan: one video up to this size (within max_request_mb)",
    "serve.scan_concurrency": "/scan requests at once; more get 503 with Retry-After",
}

STUDY_HEADER = """\
# The study's parameters: every key with its default (src/deepfake_detector/params_spec.py).
# DVC reads this file. A profile changes some values: `make params PROFILE=real-small` writes
# them here from profiles/real-small.yaml; `make params PROFILE=study` writes this file back.

"""
PROFILE_HEADER = """\
# Profile {name}: the study's defaults with {path} over them (it says why).
# Written by `make params PROFILE={name}`; the study's values: `make params PROFILE=study`.

"""


def profile_path(root: Path, profile: str) -> Path:
    """``profiles/<profile>.yaml``, or ``profile`` itself when it names a YAML file."""
    if profile.endswith((".yaml", ".yml")):
        return Path(root, profile)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", profile):
        raise ValueError(f"profile {profile!r}: a profile is a name (letters, digits, '_', "
                         "'.', '-') of a file in profiles/")
    path = Workspace(root).profiles / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Workspace(root).profiles.glob("*.yaml"))
        raise FileNotFoundError(f"no profile {profile!r} ({path}); known: {', '.join(known)}")
    return path


def profile_params(root: Path, profile: str) -> dict:
    """The complete, checked config of ``profile``: the defaults with its overlay over them.
    A key the overlay misspells is refused, naming the profile file."""
    path = profile_path(root, profile)
    overlay = read_yaml_file(path)
    if overlay is not None and not isinstance(overlay, dict):
        raise ValueError(f"{path}: a profile is a mapping of the keys it changes")
    merged = complete(overlaid(defaults(), overlay or {}))
    return validate(merged, f"{path} (over the defaults)")


def overlaid(base, overlay):
    """``base`` with ``overlay`` over it: mappings merge key by key, anything else replaces."""
    if not (isinstance(base, dict) and isinstance(overlay, dict)):
        return overlay
    return {**base, **{k: overlaid(base.get(k), v) for k, v in overlay.items()}}


def write_profile(root: Path, profile: str) -> Path:
    """Write ``params.yaml`` for ``profile`` (``study``: the defaults)."""
    params = profile_params(root, profile)
    if profile_path(root, profile).stem == STUDY:
        text = STUDY_HEADER + render(params)
    else:
        rel = profile_path(root, profile).resolve()
        shown = rel.relative_to(Path(root).resolve()) if rel.is_relative_to(
            Path(root).resolve()) else rel
        name = Path(profile).stem
        text = PROFILE_HEADER.format(name=name, path=shown) + render(params, name)
    return write_text(Workspace(root).params, text)


def render(params: dict, profile: str | None = None) -> str:
    """``params`` as YAML with each key's note; under a profile, a value that differs from
    the default says so (``# real-small; study: 64``)."""
    lines: list[str] = []
    study = defaults()
    for i, (section, values) in enumerate(params.items()):
        lines += [""] if i else []
        _block(lines, section, values, section, 0, study.get(section), profile)
    return "\n".join(lines) + "\n"


def _block(lines, key, value, dotted, depth, default, profile):
    indent = "  " * depth
    note = NOTES.get(dotted, "")
    if "\n" in note:
        lines += [f"{indent}# {line}" for line in note.splitlines()]
        note = ""
    if isinstance(value, dict) and value and not _one_line(value, dotted, depth):
        lines.append(_noted(f"{indent}{key}:", note))
        for k, v in value.items():
            sub = default.get(k, _ABSENT) if isinstance(default, dict) else _ABSENT
            _block(lines, k, v, f"{dotted}.{k}", depth + 1, sub, profile)
        return
    if profile and value != default:
        note = f"{profile}; " + ("not in the study" if default is _ABSENT else
                                 f"study: {flow(default)}")
    if isinstance(value, list) and len(indent + key) + 2 + len(flow(value)) > WIDTH:
        lines.append(_noted(f"{indent}{key}:", note))
        lines += [f"{indent}  - {flow(item)}" for item in value]
    else:
        lines.append(_noted(f"{indent}{key}: {flow(value)}", note))


def _one_line(value: dict, dotted: str, depth: int) -> bool:
    """A mapping of plain values, without notes of their own, that fits on its line (with its
    own note); never a whole section or a model's settings."""
    if depth == 0 or dotted.count(".") == 1 and dotted.startswith("train."):
        return False
    return all(not isinstance(v, dict) for v in value.values()) and \
        not any(k.startswith(dotted + ".") for k in NOTES) and \
        len(_noted(f"{'  ' * depth}{dotted.split('.')[-1]}: {flow(value)}",
                   NOTES.get(dotted, ""))) <= WIDTH


def _noted(line: str, note: str) -> str:
    return f"{line.ljust(NOTE_COLUMN - 1)} # {note}" if note else line


def flow(value) -> str:
    """One value as YAML on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True,
                          width=10**6).strip()
    return text.removesuffix("\n...").strip()
