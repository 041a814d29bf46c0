"""Project paths and ``params.yaml``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from .errors import YAMLTooLarge

# A YAML alias (``*name``) refers to an anchored value without copying it, so a few hundred
# bytes of aliases to aliases ("billion laughs") stand for billions of values: harmless as
# shared Python objects, but anything that walks or prints them (params checks, ``repr``)
# expands them. params.yaml has ~400 values; refuse documents that expand past this.
MAX_YAML_VALUES = 100_000
MAX_YAML_BYTES = 16 * 2**20  # a params file is a few KB


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """How many values ``root`` stands for with every alias expanded, computed on the node
    graph (each distinct node once, iteratively); ``YAMLTooLarge`` past ``limit`` or for an
    alias inside its own anchor (a value that contains itself)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # being counted: the current path from the root
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = [x for pair in node.value for x in pair] if isinstance(
            node, yaml.MappingNode) else node.value
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > limit:
                raise YAMLTooLarge(f"its aliases expand to more than {limit:,} values "
                                   "(a YAML alias bomb)")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YAMLTooLarge("an alias refers to a value that contains it (a value "
                               "cannot hold itself)")
        open_nodes.add(key)
        stack.append((node, True))
        stack += [(c, False) for c in children if id(c) not in sizes]
    return sizes[id(root)]


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts the composed document's values, aliases expanded,
    and refuses it (``YAMLTooLarge``) before constructing any Python object."""

    max_values = MAX_YAML_VALUES

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            _expanded_size(node, self.max_values)
        return node


def safe_load(text: str, source: str = "YAML") -> object:
    """``yaml.safe_load`` for files users give the project: alias bombs and self-referring
    aliases are refused, and every failure is one ``ValueError`` line naming ``source``."""
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 - a SafeLoader
    except YAMLTooLarge as exc:
        raise YAMLTooLarge(f"{source}: {exc}; refused before reading its values") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{source} is not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise YAMLTooLarge(f"{source}: nested too deeply to be a settings file") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    what = "; ".join(p for p in (getattr(exc, "context", None), getattr(exc, "problem", None))
                     if p) or " ".join(str(exc).split())
    return what + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")


def read_yaml_file(path: Path, max_bytes: int = MAX_YAML_BYTES) -> object:
    """A user's YAML file through ``safe_load``: a regular file of at most ``max_bytes``."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: not a regular file")
    if info.st_size > max_bytes:
        raise YAMLTooLarge(f"{path}: {info.st_size:,} bytes, more than a settings file "
                           f"needs ({max_bytes // 2**20} MB at most)")
    with open(path, encoding="utf-8") as fh:
        return safe_load(fh.read(), str(path))


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
    """``params.yaml``, complete (each key it leaves out set to its default) and checked
    (unknown keys, types, ranges) before anything uses it."""
    from .params_check import ParamsError, complete, validate

    path = (root or project_root()) / "params.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no params.yaml in {path.parent}: run this inside the "
                                "project's checkout")
    try:
        params = read_yaml_file(path) or {}
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path} is not UTF-8 text: {exc}") from None
    except ValueError as exc:  # not YAML, an alias bomb, too large, not a file
        raise ParamsError(str(exc)) from None
    return validate(complete(params), str(path))


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
