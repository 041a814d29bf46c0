"""Check ``params.yaml`` before any work starts: unknown keys, missing keys, wrong types and
out-of-range values, each named by its full key (``train.tuned.epochs``); and fill in what a
file leaves out from each key's default (``params_spec.SPEC``).

A typo such as ``train.tuned.epoch`` would otherwise be ignored silently and
``-S training.cpu_devices=-1`` would fail an hour into a run.
"""

from __future__ import annotations

import copy
import difflib
import re

from .errors import ParamsError  # re-exported: callers catch params_check.ParamsError
from .params_spec import ARCHITECTURES, MODEL, MODEL_NAME, MODELS, REQUIRED, SPEC, Key, Per


def _walk(values, spec, prefix, problems, model_arch=None):
    """Report problems of ``values`` against the section ``spec``. ``model_arch``: inside a
    model's settings (its architecture), where keys with a default may be absent."""
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
            continue
        check = spec[key].check if isinstance(spec[key], Key) else spec[key]
        if check == MODELS:
            _walk_models(value, name, problems)
        elif isinstance(check, list):
            if not isinstance(value, list) or not value:
                problems.append(f"{name}: must be a non-empty list of "
                                f"{{{', '.join(check[0])}}}")
                continue
            for i, item in enumerate(value):
                _walk(item, check[0], f"{name}[{i}].", problems, model_arch)
        elif isinstance(check, dict):
            if value is None and model_arch:  # a model's section: null keeps its defaults
                continue
            _walk(value, check, f"{name}.", problems, model_arch)
        else:
            need = check(value)
            if need:
                problems.append(f"{name} = {value!r}: must be {need}")
    for key, entry in spec.items():
        if key not in values and _required(entry, model_arch):
            per_architecture = isinstance(entry, Key) and isinstance(entry.default, Per)
            problems.append(f"{prefix}{key}: missing" + (
                f" (the {model_arch} architecture has no default)" if per_architecture else ""))


def _required(entry, model_arch) -> bool:
    if not model_arch:  # outside a model every key has a default: absent only before complete()
        return True
    default = entry.default if isinstance(entry, Key) else None
    if isinstance(default, Per):
        default = default.default_for(model_arch, None)
    return default is REQUIRED


def _walk_models(value, name, problems):
    if not isinstance(value, dict) or not value:
        problems.append(f"{name}: must map model names to their settings")
        return
    for model, cfg in value.items():
        # the name becomes a file name, a DVC stage name and a CSV field
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", str(model)):
            problems.append(f"{name}.{model!r}: a model name is 1 to 64 letters, "
                            "digits, '_', '.' or '-', starting with a letter or digit")
            continue
        arch = _architecture(model, cfg)
        if isinstance(cfg, dict) and model not in ARCHITECTURES and "architecture" not in cfg:
            problems.append(f"{name}.{model}: a new model name needs architecture "
                            f"({', '.join(ARCHITECTURES)})")
        _walk(cfg, MODEL, f"{name}.{model}.", problems, arch or "any")


def _architecture(model, cfg):
    arch = cfg.get("architecture", model) if isinstance(cfg, dict) else model
    return arch if arch in ARCHITECTURES else None


def check_params(params: dict) -> list[str]:
    """Every problem in ``params``, one line each, naming the key. Run on a file as it is, a
    key it leaves out is "missing"; ``load_params`` runs it after ``complete``."""
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


def complete(params: dict) -> dict:
    """A copy of ``params`` with every key it leaves out set to its default (sections, each
    model's settings and conv blocks included). Values it gives, and keys the SPEC does not
    know, are kept as they are for ``check_params`` to judge."""
    return _filled(params, SPEC, None)


def defaults() -> dict:
    """The complete default config: the study's values (a fresh copy each call)."""
    return complete({})


def _filled(values, spec: dict, arch):
    if values is None:  # an empty section keeps its defaults
        values = {}
    if not isinstance(values, dict):
        return copy.deepcopy(values)
    out = {}
    for key, entry in spec.items():
        check, default = (entry.check, entry.default) if isinstance(entry, Key) else (entry, {})
        if isinstance(default, Per):  # REQUIRED when this architecture never reads the key
            default = default.default_for(arch, REQUIRED)
        if key in values:
            value = values[key]
        elif default is REQUIRED or default is MODEL_NAME:
            continue  # check_params reports a missing required key; models name their own
        else:
            value = default
        if check == MODELS and isinstance(value, dict):
            value = {model: _filled_model(model, cfg) for model, cfg in value.items()}
        elif isinstance(check, list) and isinstance(value, list):
            value = [_filled(item, check[0], arch) for item in value]
        elif isinstance(check, dict) and (value is None or isinstance(value, dict)):
            value = _filled(value, check, arch)
        out[key] = copy.deepcopy(value)
    out.update({k: copy.deepcopy(v) for k, v in values.items() if k not in spec})
    return out


def complete_model(name: str, cfg: dict | None = None) -> dict:
    """One model's settings (``train.<name>``) with its architecture's defaults filled in."""
    return _filled_model(name, cfg or {})


def _filled_model(model, cfg):
    arch = _architecture(model, cfg)
    if arch is None or not isinstance(cfg, dict):
        return copy.deepcopy(cfg)  # not a model check_params accepts: left for it to report
    return _filled({"architecture": arch, **cfg}, MODEL, arch)


def main(argv: list[str] | None = None) -> int:
    """``python -m deepfake_detector.params_check``: check the project's params.yaml the way
    every stage, the CLI and the service read it (YAML alias bombs included), so that
    ``make repro`` stops on a bad file before DVC parses it. ``--profile NAME`` first writes
    params.yaml as the defaults with ``profiles/NAME.yaml`` over them. Exit 0 when fine, 2
    when not."""
    import argparse
    import sys

    from .config import load_params, project_root

    parser = argparse.ArgumentParser(prog="python -m deepfake_detector.params_check",
                                     description=main.__doc__.splitlines()[0])
    parser.add_argument("--profile", help="write params.yaml from profiles/PROFILE.yaml "
                        "(study: the study's values)")
    args = parser.parse_args(argv)
    try:
        if args.profile:
            from .params_file import write_profile

            written = write_profile(project_root(), args.profile)
            print(f"wrote {written} (profile {args.profile})")
        load_params(project_root())
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
