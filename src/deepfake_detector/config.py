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
    """``params.yaml``, checked (unknown keys, types, ranges) before anything uses it."""
    from .params_check import ParamsError, validate

    path = (root or project_root()) / "params.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no params.yaml in {path.parent}: run this inside the "
                                "project's checkout")
    try:
        with open(path) as fh:
            params = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    return validate(params, str(path))


def copy_checkout(root: Path, dest: Path, params: dict) -> Path:
    """A committed copy of the checkout as a fresh clone would have it (the files git tracks
    or would track), with ``params`` as its ``params.yaml``: a workspace for a throwaway
    pipeline run (tests, benchmarks) that never touches the user's data or runs."""
    import shutil
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for rel in listed:
        if (root / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    who = {"GIT_AUTHOR_NAME": "workspace", "GIT_AUTHOR_EMAIL": "workspace@example.invalid",
           "GIT_COMMITTER_NAME": "workspace", "GIT_COMMITTER_EMAIL": "workspace@example.invalid"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, env={**os.environ, **who}, check=True)
    return dest
