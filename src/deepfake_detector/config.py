"""Project paths and ``params.yaml``."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``params.yaml`` (or ``dvc.yaml``), searching upwards from ``start``."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").exists() or (folder / "dvc.yaml").exists():
            return folder
    return here


def main_checkout(root: Path) -> Path:
    """The user's checkout, also from inside a ``dvc exp run --queue`` temporary copy.

    Queued experiments run in ``<checkout>/.dvc/tmp/exps/...``; state that must outlive
    them (the MLflow database, the download cache) belongs to ``<checkout>``.
    """
    parts = root.resolve().parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root.resolve()


def load_params(root: Path | None = None) -> dict:
    path = (root or project_root()) / "params.yaml"
    with open(path) as fh:
        return yaml.safe_load(fh) or {}
