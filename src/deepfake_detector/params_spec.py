"""Every parameter once: ``SPEC`` gives each key of ``params.yaml`` its check and its default,
the study's value. ``params_check`` walks it (checks, ``complete``, ``defaults``); nothing
else in the project writes a parameter's default again.
"""

from __future__ import annotations

import re
from typing import NamedTuple


# Leaf checks: return None when the value is fine, else what it must be.
def integer(lo=None, hi=None):
    def check(v):
        ok = isinstance(v, int) and not isinstance(v, bool) and (lo is None or v >= lo) and (
            hi is None or v <= hi)
        return None if ok else "an integer" + _bounds(lo, hi)
    return check


def number(lo=None, hi=None, above=None):
    def check(v):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and (
            lo is None or v >= lo) and (hi is None or v <= hi) and (above is None or v > above)
        return None if ok else "a number" + (f" > {above}" if above is not None else "") + (
            _bounds(lo, hi))
    return check


def _bounds(lo, hi):
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    return f" ≥ {lo}" if lo is not None else (f" ≤ {hi}" if hi is not None else "")


def boolean(v):
    return None if isinstance(v, bool) else "true or false"


def text(v):
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def choice(*options):
    def check(v):
        return None if v in options else "one of " + ", ".join(map(str, options))
    return check


def optional(check):
    """``check``, or null (which then means something: no limit, no cap, Keras' own)."""
    def inner(v):
        return None if v is None else check(v)
    return inner


def external_sets(v):
    """``{name: folder}``: each name a plain word (it names metrics/external/<name>.json)."""
    ok = isinstance(v, dict) and all(
        isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", k)
        and isinstance(f, str) and f.strip() for k, f in v.items())
    return None if ok else ("a mapping {name: folder}, each name letters, digits, _ . - "
                            "(at most 64), each folder a path")


_NOTHING = object()  # fails every leaf check: check(_NOTHING) says what a value must be


def list_of(check, min_len=0):
    def inner(v):
        if not isinstance(v, list) or len(v) < min_len or any(check(x) for x in v):
            return (f"a list of at least {min_len} item(s)" if min_len else "a list") + (
                f", each {check(_NOTHING)}")
        return None
    return inner


def pair(check):
    def inner(v):
        if not isinstance(v, list) or len(v) != 2 or any(check(x) for x in v) or v[0] > v[1]:
            return f"a pair [low, high] with low ≤ high, each {check(_NOTHING)}"
        return None
    return inner


def regex(v):
    if v is None:
        return None
    try:
        re.compile(v)
    except (re.error, TypeError):
        return "a valid regular expression or null"
    return None


def sha256(v):
    ok = v is None or (isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{64}", v))
    return None if ok else "null or 64 hexadecimal digits"


def threshold(v):
    if v in ("max_accuracy", "eer", "fake_recall"):
        return None
    return number(0, 1)(v) and "max_accuracy, eer, fake_recall or a number from 0 to 1"


def builder_names() -> tuple[str, ...]:
    """The keys of ``models.BUILDERS``, read from models.py's source: checking params must not
    import Keras (seconds), and a new architecture is then named in one place only."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(__file__).with_name("models.py").read_text())
    for node in tree.body:
        target = node.targets[-1] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if getattr(target, "id", None) == "BUILDERS" and isinstance(node.value, ast.Dict):
            return tuple(key.value for key in node.value.keys)
    raise RuntimeError("models.py has no BUILDERS = {name: builder, ...} literal")


ARCHITECTURES = builder_names()
PROB = number(0, 1)
POSITIVE = number(above=0)
REQUIRED = object()     # a Key without a default: the file must give it
MODEL_NAME = object()   # the default of train.<name>.architecture: the model's own name
MODELS = "models"       # the check of ``train``: any names, each checked against MODEL


class Key(NamedTuple):
    """One parameter: its check (a leaf check, a section dict, or ``[section]`` for a list of
    blocks) and its default."""

    check: object
    default: object = REQUIRED


STUDY_ARCHITECTURES = ("baseline", "tuned", "xception")


class Per(dict):
    """A model key's default per architecture; a study architecture not named here never reads
    the key, so it is left out of that model's settings (it stays, unused, where a file gives
    it). ``new=`` is the default for an architecture the study does not build (a builder added
    to models.BUILDERS), which may read any key its shared helpers read."""

    def __init__(self, **by_architecture):
        super().__init__(by_architecture)

    def default_for(self, arch, absent):
        if arch in self and arch != "new":
            return self[arch]
        if arch not in STUDY_ARCHITECTURES and "new" in self:
            return self["new"]
        return absent


CONV = {"filters": Key(integer(1)), "kernel": Key(integer(1), 3),
        "activation": Key(text, "relu"), "stride": Key(integer(1), 1)}
MODEL = {  # train.<name>: only epochs has no default
    "epochs": Key(integer(1)),
    "batch_size": Key(integer(1), 32),
    "optimizer": Key(choice("sgd", "adam", "rmsprop", "adamw", "nadam", "adagrad"), "rmsprop"),
    "learning_rate": Key(POSITIVE, 0.001),
    "momentum": Key(number(0, 1), 0.0),  # read by sgd only
    "conv": Key([CONV], Per(baseline=[{"filters": 32}, {"filters": 16}], tuned=REQUIRED)),
    "batch_norm": Key({"momentum": Key(PROB, 0.95), "epsilon": Key(POSITIVE, 0.005)},
                      Per(tuned={})),  # the tuned CNN normalises after every conv block
    "dense": Key(list_of(integer(1)), Per(tuned=[64, 32], xception=[128])),
    "dropout": Key(optional(number(0, 0.99)), Per(tuned=0.0, xception=0.0)),
    "early_stopping": {"monitor": Key(choice("val_accuracy", "val_loss", "val_auc"),
                                      "val_accuracy"),
                       "patience": Key(integer(0), 3), "min_delta": Key(number(0), 0.0)},
    "input_size": Key(integer(71), Per(xception=71)),
    "weights": Key(optional(text), "none"),  # the pretrained stage resolves it
    "trainable_base": Key(boolean, Per(xception=True)),
    "base_bn_momentum": Key(optional(PROB), Per(xception=None)),  # null: Keras' own
    "architecture": Key(choice(*ARCHITECTURES), MODEL_NAME),
    "highpass": Key(boolean, Per(baseline=False, tuned=False, new=False)),  # models.scaled
}
STUDY_MODELS = {  # the default of ``train``: the study's three models
    "baseline": {"epochs": 25},
    "tuned": {"epochs": 25, "batch_size": 16, "optimizer": "sgd", "learning_rate": 0.01,
              "momentum": 0.9,
              "conv": [{"filters": 128, "activation": "relu"},
                       {"filters": 64, "activation": "tanh"},
                       {"filters": 32, "activation": "tanh"},
                       {"filters": 16, "activation": "tanh"}]},
    "xception": {"epochs": 4, "optimizer": "adam", "weights": "imagenet",
                 "base_bn_momentum": 0.9},
}

SPEC = {
    "base": {"seed": Key(integer(0), 42)},
    "data": {
        "source": Key(text, "synthetic"), "sha256": Key(sha256, None),
        "class_names": {"real": Key(list_of(text, 1), ["real"]),
                        "fake": Key(list_of(text, 1), ["fake"])},
        "synthetic": {"n_images": Key(integer(10), 3000), "image_size": Key(integer(16, 1024), 64),
                      "strength": Key(number(0, 10), 1.5),
                      "families": {"face_swap": Key(boolean, True),
                                   "gan_artifacts": Key(boolean, True),
                                   "eye_mismatch": Key(boolean, True)},
                      # clips of moving procedural faces for video checks (data/raw/videos)
                      "videos": {"clips": Key(integer(0), 100), "seconds": Key(POSITIVE, 6),
                                 "fps": Key(integer(1, 60), 10),
                                 "segment_share": Key(PROB, 0.5)}},
        "cache_dir": Key(text, ".cache/downloads"), "gdrive_base_url": Key(optional(text), None),
        "extract": {"max_total_bytes": Key(integer(1), 20 * 2**30),
                    "max_ratio": Key(number(1), 200), "max_entries": Key(integer(1), 2_000_000)},
        "download": {"max_bytes": Key(integer(1), 8 * 2**30), "stall_s": Key(POSITIVE, 60),
                     "deadline_s": Key(optional(POSITIVE), 43200)},
    },
    "split": {"keep_existing": Key(boolean, True),
              "fractions": {"train": Key(number(0, 1, above=0), 0.7),
                            "val": Key(number(0, 1, above=0), 0.15),
                            "test": Key(number(0, 1, above=0), 0.15)},
              "group_regex": Key(regex, None),
              "near_duplicate_bits": Key(optional(integer(0, 12)), 6),
              "shortcut_audit": Key(choice("warn", "fail"), "warn"),
              "shortcut_max_auc": Key(number(0.5, 1), 0.7)},
    "preprocess": {"image_size": Key(integer(16, 1024), 64),
                   "centre_crop": Key(number(hi=1, above=0), 1.0),
                   "max_pixels": Key(integer(1), 50_000_000),
                   "max_rejected_share": Key(PROB, 0.2), "max_file_mb": Key(POSITIVE, 100),
                   "face_crop": Key(boolean, False), "face_margin": Key(number(0, 5), 0.25),
                   "face_min_fraction": Key(number(hi=1, above=0), 0.1)},
    "training": {"distribute": Key(choice("none", "mirrored", "multi_worker"), "none"),
                 "cpu_devices": Key(integer(0, 64), 0), "deterministic": Key(boolean, True),
                 "max_steps_per_epoch": Key(optional(integer(1)), None),
                 # off for the built-in data: every recipe tried cost its clean ROC AUC
                 # (README, Robustness); the real-faces profile turns it on
                 "augment": {"flip": Key(boolean, False), "shift": Key(boolean, False),
                             "colour": Key(boolean, False), "rescale": Key(boolean, False),
                             "blur": Key(boolean, False), "jpeg": Key(boolean, False),
                             "p": Key(PROB, 0.5),
                             "shift_fraction": Key(number(0, 0.25), 0.0625),
                             "colour_strength": Key(number(0, 0.5), 0.1),
                             "rescale_factor": Key(pair(number(0.1, 1)), [0.25, 1.0]),
                             "blur_sigma": Key(pair(number(0)), [0.3, 2.0]),
                             "jpeg_quality": Key(pair(integer(1, 100)), [30, 95])}},
    "train": Key(MODELS, STUDY_MODELS),
    "ensemble": {"method": Key(choice("stacked", "average"), "stacked"),
                 "members": Key(list_of(text, 1), ["tuned", "xception"]),
                 "head_units": Key(integer(1), 32), "folds": Key(integer(2), 5),
                 "epochs": Key(integer(1), 100), "batch_size": Key(integer(1), 64),
                 "learning_rate": Key(POSITIVE, 0.01)},
    "evaluate": {"threshold": Key(threshold, "max_accuracy"),
                 "target_fake_recall": Key(number(hi=1, above=0), 0.95),
                 "calibration": Key(choice("temperature", "none"), "temperature"),
                 # severities of each perturbation; an empty list skips one
                 "robustness": {"jpeg": Key(list_of(integer(1, 100)), [90, 70, 50, 30]),
                                "blur": Key(list_of(POSITIVE), [0.5, 1.0, 1.5, 2.0]),
                                "rescale": Key(list_of(number(hi=1, above=0)),
                                               [0.75, 0.5, 0.25])},
                 "bootstrap": {"resamples": Key(integer(0), 1000), "seed": Key(integer(0), 0)},
                 "decide": {"target_accuracy": Key(optional(number(0.5, 1)), 0.95)},
                 "external": Key(external_sets, {}),
                 "domain": {"quantile": Key(optional(number(0.5, 1)), 0.99),
                            "max_images": Key(integer(10), 5000)},
                 "models": Key(list_of(text, 1), ["baseline", "tuned", "xception", "ensemble"])},
    "video": {"fps": Key(POSITIVE, 2), "max_frames": Key(integer(1), 600),
              "max_pixels": Key(integer(1), 3840 * 2160), "max_seconds": Key(POSITIVE, 1800),
              "max_file_mb": Key(POSITIVE, 2048), "deadline_s": Key(POSITIVE, 300),
              "top_fraction": Key(number(hi=1, above=0), 0.2)},
    "explain": {"model": Key(text, "tuned"),
                "gradcam_models": Key(list_of(text), ["baseline", "tuned", "xception"]),
                "n_images": Key(integer(1), 8), "num_samples": Key(integer(10), 1000),
                "batch_size": Key(integer(1), 500),
                "segments": {"n_segments": Key(integer(2), 50), "compactness": Key(POSITIVE, 10),
                             "sigma": Key(number(0), 1)},
                "gradcam_min_size": Key(integer(1), 8),
                "occlusion": {"patch": Key(integer(1), 8), "stride": Key(integer(1), 4)},
                "score_fakes": Key(integer(0), 100), "area": Key(number(hi=1, above=0), 0.1),
                "aggregate_images": Key(integer(1), 500),
                "eye_band": Key(pair(PROB), [0.33, 0.55])},
    "register": {"model": Key(text, "tuned"), "name": Key(text, "deepfake-detector")},
    "promote": {"min_roc_auc": Key(PROB, 0.75), "min_fake_recall": Key(PROB, 0.6),
                "max_drop": Key(PROB, 0.01)},
    "serve": {"face_crop": Key(boolean, True), "face_margin": Key(number(0, 5), 0.25),
              "face_min_fraction": Key(number(hi=1, above=0), 0.1),
              "host": Key(text, "127.0.0.1"), "port": Key(integer(0, 65535), 8000),
              "max_upload_mb": Key(POSITIVE, 10), "max_request_mb": Key(POSITIVE, 100),
              "max_files": Key(integer(1), 100), "upload_stall_s": Key(POSITIVE, 30),
              "allowed_hosts": Key(optional(list_of(text, 1)), None),
              "explain_concurrency": Key(integer(1), 1),
              "max_video_mb": Key(POSITIVE, 50), "scan_concurrency": Key(integer(1), 1)},
    "provenance": {"trust_anchors": Key(optional(text), None), "timeout_s": Key(POSITIVE, 20)},
}
