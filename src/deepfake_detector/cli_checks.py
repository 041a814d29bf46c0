"""The CLI's arguments checked before any work (and before TensorFlow is imported): input
files (regular files only, within ``preprocess.max_file_mb``), ``--model`` and ``--out``.
Each wrong one is one line and exit 2."""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import zipfile
from pathlib import Path

from .errors import ImageRejected
from .images import MB, check_file, is_image_path, not_regular, readable_name

MODEL_FORMS = ("models:/NAME@ALIAS, models:/NAME/VERSION, runs:/…, a .keras file or an "
               "MLflow model folder")
MAX_KERAS_CONFIG = 64 * MB  # config.json inside a .keras file: a few KB to a few MB




class OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors as the one ``error:`` line (exit 2) every other error
    of the CLI is, instead of the usage block and a line; ``--help`` shows the usage."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _not_keras(path: str, why: str) -> ValueError:
    return ValueError(f"{path} is not a Keras model this project can load: {why}")


def _check_keras(path: str) -> None:
    """A .keras file is a zip archive holding config.json (a JSON object) and the weights:
    checked without Keras, so a renamed zip or any other file is one clear line."""
    import zlib

    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            info = zf.getinfo("config.json") if "config.json" in names else None
            if info is not None and info.file_size <= MAX_KERAS_CONFIG:
                raw = zf.read(info)
    except zipfile.BadZipFile:
        raise _not_keras(path, "not a zip archive (a .keras file is one)") from None
    except (OSError, EOFError, RuntimeError, NotImplementedError, ValueError,
            zlib.error) as exc:
        raise _not_keras(path, f"its archive cannot be read ({exc})") from None
    if info is None:
        raise _not_keras(path, "a zip archive without config.json (a .keras file holds "
                         "config.json, metadata.json and model.weights.h5)")
    if info.file_size > MAX_KERAS_CONFIG:
        raise _not_keras(path, f"its config.json is {info.file_size:,} bytes")
    if not any(n.startswith("model.weights.") for n in names):
        raise _not_keras(path, "a zip archive without model.weights.h5")
    try:
        config = json.loads(raw)
    except ValueError:
        raise _not_keras(path, "its config.json is not JSON") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise _not_keras(path, "its config.json does not describe a Keras model")


def check_model(arg: str | None) -> None:
    """``--model`` checked before anything is loaded (exit 2 with one line when wrong):
    a models:/ or runs:/ URI is left to MLflow; a path must be a .keras file that is a zip
    holding config.json, or an MLflow model folder (MLmodel, settings.json and a .keras)."""
    if arg is None or re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", arg):
        return  # a URI (models:/, runs:/, file://, s3://, …): MLflow resolves it
    try:
        info = os.stat(arg)
    except FileNotFoundError:
        if arg.endswith(".keras"):
            raise FileNotFoundError(f"no model file {arg}") from None
        raise FileNotFoundError(f"--model {arg}: no such file or folder (expected "
                                f"{MODEL_FORMS})") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"--model {arg}: cannot be read ({exc})") from None
    if stat.S_ISDIR(info.st_mode):
        folder = Path(arg)
        if not (folder / "MLmodel").is_file():
            raise ValueError(f"--model {arg}: a folder that is not an MLflow model (no MLmodel "
                             f"file in it); expected {MODEL_FORMS}")
        settings = next(folder.rglob("settings.json"), None)
        keras_file = next((p for p in folder.rglob("*.keras") if p.is_file()), None)
        if settings is None or keras_file is None:
            raise ValueError(f"--model {arg}: an MLflow model, but not one of this project's "
                             "(no settings.json and .keras file in it)")
        _check_keras(str(keras_file))
    elif not stat.S_ISREG(info.st_mode):
        raise ValueError(f"--model {arg}: {not_regular(info.st_mode)}")
    elif not arg.endswith(".keras"):
        raise ValueError(f"--model {arg}: not a .keras file; expected {MODEL_FORMS}")
    else:
        _check_keras(arg)


def check_out_file(value: str | None, *suffixes: str) -> None:
    """An --out FILE, checked before any work: one of ``suffixes``, in a folder that exists
    and can be written, and not a folder or a FIFO itself (an existing file is replaced)."""
    if value is None:
        return
    path = Path(value)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"--out {value!r}: must end in {' or '.join(suffixes)}")
    if not path.parent.resolve().is_dir():
        raise ValueError(f"--out {value!r}: no folder {path.parent}")
    if path.is_dir():
        raise ValueError(f"--out {value!r}: is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise ValueError(f"--out {value!r}: {not_regular(path.stat().st_mode)}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {value!r}: cannot write in folder {path.parent}")


def check_out_folder(value: Path) -> None:
    """An --out DIR, checked before any work: a folder, or a name that can become one."""
    if value.exists() and not value.is_dir():
        raise ValueError(f"--out {str(value)!r}: exists and is not a folder")
    parent = value
    while not parent.exists():  # the nearest folder that exists must take new folders
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {str(value)!r}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(value)!r}: cannot write in folder {parent}")


def _named_file(path: str, cap: int) -> str:
    """An image named on the command line: its rejection reason ("" when it may be read).
    A FIFO, device or socket is never a picture: a usage error (exit 2), not a row."""
    try:
        check_file(path, cap)
    except ImageRejected as exc:
        if exc.reason == "not_regular_file":
            raise ValueError(f"{shown(path)}: {exc.detail}; only regular files are read") from None
        return exc.reason
    return ""


def expand_paths(paths: list[str], cap: int, wanted=is_image_path) -> list[tuple[str, str]]:
    """(file, rejection reason or "") of files as given and of the files under the folders
    given that ``wanted`` takes (images; ``video.is_video_path`` for clips), sorted. Only
    ``os.stat`` here: nothing is opened."""
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(str(f) for f in path.rglob("*") if wanted(f) and not f.is_dir()):
                try:
                    check_file(f, cap)
                    out.append((f, ""))
                except ImageRejected as exc:
                    out.append((f, exc.reason))
        else:
            out.append((p, _named_file(p, cap)))
    return out


def shown(name: str) -> str:
    """A file name as text that prints on one line: bytes that are not UTF-8 and control
    characters (a newline, a carriage return) written as escapes."""
    name = readable_name(name)
    return name if name.isprintable() else "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)
