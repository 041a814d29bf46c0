"""Check ``params.yaml`` before any work starts: unknown keys, missing keys, wrong types and
out-of-range values, each named by its full key (``train.tuned.epochs``).

A typo such as ``train.tuned.epoch`` would otherwise be ignored silently (the code falls back
to a default) and ``-S training.cpu_devices=-1`` would fail an hour into a run.
"""

from __future__ import annotations

import difflib
import re


class ParamsError(ValueError):
    """params.yaml has problems; the message lists each with its key."""


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
    def inner(v):
        return None if v is None else check(v)
    inner.optional = True
    return inner


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
CONV = {"filters": integer(1), "kernel": optional(integer(1)), "activation": optional(text)}
MODEL = {  # train.<name>; only epochs is required, the rest have defaults in models.py
    "epochs": integer(1), "batch_size": optional(integer(1)),
    "optimizer": optional(choice("sgd", "adam", "rmsprop", "adamw", "nadam", "adagrad")),
    "learning_rate": optional(POSITIVE), "momentum": optional(number(0, 1)),
    "conv": [CONV],  # a list of blocks, each checked against CONV
    "batch_norm": {"momentum": optional(PROB), "epsilon": optional(POSITIVE)},
    "dense": optional(list_of(integer(1))), "dropout": optional(number(0, 0.99)),
    "early_stopping": {"monitor": optional(choice("val_accuracy", "val_loss", "val_auc")),
                       "patience": optional(integer(0)), "min_delta": optional(number(0))},
    "input_size": optional(integer(71)), "weights": optional(text),
    "trainable_base": optional(boolean), "base_bn_momentum": optional(PROB),
    "architecture": optional(choice(*ARCHITECTURES)),
    "highpass": optional(boolean),
}

SPEC = {
    "base": {"seed": integer(0)},
    "data": {
        "source": text, "sha256": sha256,
        "class_names": {"real": list_of(text, 1), "fake": list_of(text, 1)},
        "synthetic": {"n_images": integer(10), "image_size": integer(16, 1024),
                      "strength": number(0, 10),
                      "families": {"face_swap": boolean, "gan_artifacts": boolean,
                                   "eye_mismatch": boolean}},
        "cache_dir": text, "gdrive_base_url": optional(text),
        "extract": {"max_total_bytes": integer(1), "max_ratio": number(1),
                    "max_entries": integer(1)},
        "download": {"max_bytes": integer(1), "stall_s": POSITIVE,
                     "deadline_s": optional(POSITIVE)},
    },
    "split": {"keep_existing": boolean,
              "fractions": {"train": number(0, 1, above=0), "val": number(0, 1, above=0),
                            "test": number(0, 1, above=0)},
              "group_regex": regex},
    "preprocess": {"image_size": integer(16, 1024), "centre_crop": number(hi=1, above=0),
                   "max_pixels": integer(1), "max_rejected_share": PROB,
                   "max_file_mb": POSITIVE},
    "training": {"distribute": choice("none", "mirrored", "multi_worker"),
                 "cpu_devices": integer(0, 64), "deterministic": boolean,
                 "max_steps_per_epoch": optional(integer(1)),
                 "augment": {"flip": boolean, "jpeg": boolean, "blur": boolean, "p": PROB,
                             "jpeg_quality": pair(integer(1, 100)),
                             "blur_sigma": pair(number(0))}},
    "train": "models",  # any names, each checked against MODEL
    "ensemble": {"method": choice("stacked", "average"), "members": list_of(text, 1),
                 "head_units": integer(1), "folds": integer(2), "epochs": integer(1),
                 "batch_size": integer(1), "learning_rate": POSITIVE},
    "evaluate": {"threshold": threshold, "target_fake_recall": number(hi=1, above=0),
                 "calibration": choice("temperature", "none"),
                 "robustness": {"jpeg": optional(integer(1, 100)), "blur": optional(POSITIVE),
                                "rescale": optional(number(hi=1, above=0))},
                 "models": list_of(text, 1)},
    "explain": {"model": text, "gradcam_models": list_of(text), "n_images": integer(1),
                "num_samples": integer(10), "batch_size": integer(1),
                "segments": {"n_segments": integer(2), "compactness": POSITIVE,
                             "sigma": number(0)},
                "gradcam_min_size": integer(1),
                "occlusion": {"patch": integer(1), "stride": integer(1)},
                "score_fakes": integer(0), "area": number(hi=1, above=0),
                "aggregate_images": integer(1), "eye_band": pair(PROB)},
    "register": {"model": text, "name": text},
    "promote": {"min_roc_auc": PROB, "min_fake_recall": PROB, "max_drop": PROB},
    "serve": {"face_crop": boolean, "face_margin": number(0, 5),
              "face_min_fraction": number(hi=1, above=0), "host": text,
              "port": integer(0, 65535), "max_upload_mb": POSITIVE,
              "max_request_mb": POSITIVE, "max_files": integer(1),
              "upload_stall_s": POSITIVE, "allowed_hosts": optional(list_of(text, 1)),
              "explain_concurrency": integer(1)},
}


def _walk(values, spec, prefix, problems, all_optional=False):
    # a model's sub-sections (conv, batch_norm, early_stopping) and all in them have defaults
    sections_optional = all_optional or spec is MODEL
    if not isinstance(values, dict):
        problems.append(f"{prefix.rstrip('.') or 'params.yaml'}: must be a mapping of keys, "
                        f"not {type(values).__name__}")
        return
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in spec:
            near = difflib.get_close_matches(str(key), [str(k) for k in spec], n=1)
            problems.append(f"{name}: unknown key" + (f" (did you mean {prefix}{near[0]}?)"
                                                      if near else ""))
        elif spec[key] == "models":
            if not isinstance(value, dict) or not value:
                problems.append(f"{name}: must map model names to their settings")
                continue
            for model, cfg in value.items():
                # the name becomes a file name, a DVC stage name and a CSV field
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", str(model)):
                    problems.append(f"{name}.{model!r}: a model name is 1 to 64 letters, "
                                    "digits, '_', '.' or '-', starting with a letter or digit")
                    continue
                _walk(cfg, MODEL, f"{name}.{model}.", problems)
                if isinstance(cfg, dict) and model not in ARCHITECTURES and \
                        "architecture" not in cfg:
                    problems.append(f"{name}.{model}: a new model name needs architecture "
                                    f"({', '.join(ARCHITECTURES)})")
        elif isinstance(spec[key], list):
            if not isinstance(value, list) or not value:
                problems.append(f"{name}: must be a non-empty list of "
                                f"{{{', '.join(spec[key][0])}}}")
                continue
            for i, item in enumerate(value):
                _walk(item, spec[key][0], f"{name}[{i}].", problems)
        elif isinstance(spec[key], dict):
            if value is None and sections_optional:
                continue
            _walk(value, spec[key], f"{name}.", problems, sections_optional)
        else:
            need = spec[key](value)
            if need:
                problems.append(f"{name} = {value!r}: must be {need}")
    for key, check in spec.items():
        optional_key = getattr(check, "optional", False) or all_optional or (
            sections_optional and isinstance(check, (dict, list)))
        if key not in values and not optional_key:
            problems.append(f"{prefix}{key}: missing")


def check_params(params: dict) -> list[str]:
    """Every problem in ``params``, one line each, naming the key."""
    problems: list[str] = []
    _walk(params, SPEC, "", problems)
    try:
        problems += _cross_checks(params)
    except (KeyError, TypeError, AttributeError):
        pass  # the structure is wrong: already reported above
    return problems


def _cross_checks(params: dict) -> list[str]:
    problems = []
    fractions = params["split"]["fractions"]
    if abs(sum(fractions.values()) - 1) > 1e-6:
        problems.append(f"split.fractions: must add up to 1, not {sum(fractions.values()):g}")
    models = set(params["train"]) | {"ensemble"}
    for key, names in (("ensemble.members", params["ensemble"]["members"]),
                       ("evaluate.models", params["evaluate"]["models"]),
                       ("explain.gradcam_models", params["explain"]["gradcam_models"]),
                       ("explain.model", [params["explain"]["model"]]),
                       ("register.model", [params["register"]["model"]])):
        unknown = [n for n in names if n not in models]
        if unknown:
            problems.append(f"{key}: {', '.join(map(str, unknown))} not among the models "
                            f"({', '.join(sorted(models))})")
    if "ensemble" in params["ensemble"]["members"]:
        problems.append("ensemble.members: the ensemble cannot be its own member")
    return problems


def validate(params: dict, source: str = "params.yaml") -> dict:
    problems = check_params(params)
    if problems:
        raise ParamsError(f"{source} has {len(problems)} problem(s); nothing was run:\n  " +
                          "\n  ".join(problems))
    return params


def main() -> int:
    """``python -m deepfake_detector.params_check``: check the project's params.yaml the way
    every stage, the CLI and the service read it (YAML alias bombs included), so that
    ``make repro`` stops on a bad file before DVC parses it. Exit 0 when fine, 2 when not."""
    import sys

    from .config import load_params, project_root

    try:
        load_params(project_root())
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
