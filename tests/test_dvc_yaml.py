"""dvc.yaml checked against the code (fast: no TensorFlow, no DVC run).

For every stage, the project modules its script imports (transitively, imports inside
functions included) are derived with ``ast`` and compared with the stage's ``deps``: a module
that can change the stage's outputs but is not a dep means an edit to it does not re-run the
stage. And the model lists (``train:``, ``evaluate.models``, the tests' ``MODELS``) agree.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml
from conftest import ROOT

SRC = ROOT / "src"

# Modules whose edits cannot change any stage's outputs. They are not required in ``deps``
# (an edit to them must not re-run the whole pipeline), and what they import is not followed
# through them (a module they import for real work is reached through its real user too).
EXEMPT = {
    "deepfake_detector":  # src/deepfake_detector/__init__.py
        "quiet environment defaults (telemetry, TF's banner) and the version string",
    "deepfake_detector.stage_runner":
        "turns an expected failure into one line and exit code 1; writes nothing",
    "deepfake_detector.errors": "the error types: they shape a message, never an output",
    "deepfake_detector.interrupts": "SIGINT/SIGTERM handling: a stopped stage leaves no output",
    "deepfake_detector.atomic": "writes a file whole or not at all; the bytes are the caller's",
    "deepfake_detector.config":
        "reads params.yaml (and finds the checkout); DVC tracks the values as params",
    "deepfake_detector.params_check":
        "validates params.yaml: it rejects a value or fills a default, and params.yaml "
        "defines every key a stage reads",
    "deepfake_detector.paths":
        "the layout: a moved location must move in dvc.yaml's outs/deps too, where DVC sees it",
    "deepfake_detector.tracking":
        "MLflow logging: runs, tags and artifacts are not DVC outputs",
    "_common": "stages/_common.py: the project root, the params loader and the stage runner",
}

INTERPOLATION = re.compile(r"\$\{\s*([^}]+?)\s*\}")


def lookup(context: dict, dotted: str):
    value = context
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def interpolate(value, context: dict):
    """DVC's ``${a.b}``: a whole-string reference keeps the value's type, else it is text."""
    if isinstance(value, dict):
        return {interpolate(k, context): interpolate(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, context) for v in value]
    if not isinstance(value, str):
        return value
    whole = INTERPOLATION.fullmatch(value.strip())
    if whole:
        return lookup(context, whole.group(1))
    return INTERPOLATION.sub(lambda m: str(lookup(context, m.group(1))), value)


def expand(name: str, stage: dict, context: dict) -> dict[str, dict]:
    """One stage definition → its stages by DVC's names (``name@key`` for ``foreach``)."""
    if "foreach" not in stage:
        return {name: interpolate(stage, context)}
    items = interpolate(stage["foreach"], context)
    if isinstance(items, dict):
        pairs = {str(k): {"key": k, "item": v} for k, v in items.items()}
    elif any(isinstance(v, (dict, list)) for v in items):  # DVC: composite items go by index
        pairs = {str(i): {"key": i, "item": v} for i, v in enumerate(items)}
    else:  # a list of plain values: each is its own key
        pairs = {str(v): {"item": v} for v in items}
    return {f"{name}@{key}": interpolate(stage["do"], {**context, **local})
            for key, local in pairs.items()}


def dvc_stages() -> dict[str, dict]:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    context = {**yaml.safe_load((ROOT / "params.yaml").read_text()), **dvc.get("vars", {})}
    stages = {}
    for name, stage in dvc["stages"].items():
        stages.update(expand(name, stage, context))
    return stages


def entry_path(entry) -> str:
    """A deps/outs entry is a path or a one-key mapping ``{path: options}``."""
    return next(iter(entry)) if isinstance(entry, dict) else entry


def module_file(name: str, search: Path) -> Path | None:
    base = search.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def find_module(name: str, script_dir: Path) -> Path | None:
    """A project module by its import name: beside the stage script (``_common``), or under
    src/; None for the standard library and third-party packages."""
    return module_file(name, script_dir) or module_file(name, SRC)


def imported_names(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports (anywhere in it), with the packages above each one."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import a / from .x import y / from ..x import y
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            names.add(base)
            # `from pkg import name`: name may be a submodule
            names.update(f"{base}.{alias.name}" for alias in node.names)
    with_parents = set()
    for name in names:
        parts = name.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return with_parents


def script_modules(script: Path) -> dict[str, Path]:
    """The project modules ``script`` runs, transitively: import name → file. Exempt modules
    are included but their imports are not followed."""
    found, queue = {}, [("__main__", script)]
    seen = {script}
    while queue:
        module, path = queue.pop()
        if module in EXEMPT:
            continue
        for name in sorted(imported_names(path, module)):
            target = find_module(name, script.parent)
            if target is None or target in seen:
                continue
            seen.add(target)
            found[name] = target
            queue.append((name, target))
    return found


def script_of(cmd: str) -> Path:
    match = re.search(r"\bpython3?\s+(?:-m\s+(\S+)|(\S+\.py))", cmd)
    assert match, f"cannot tell which Python script `{cmd}` runs"
    if match.group(1):
        found = module_file(match.group(1), SRC)
        assert found, f"`{cmd}`: no module {match.group(1)} under src/"
        return found
    return ROOT / match.group(2)


def covered(path: Path, deps: list[str]) -> bool:
    """``path`` is a dep itself or lies inside a folder that is one."""
    rel = path.relative_to(ROOT)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


def test_every_module_a_stage_runs_is_among_its_deps():
    problems = []
    for name, stage in dvc_stages().items():
        deps = [entry_path(d) for d in stage.get("deps", [])]
        script = script_of(stage["cmd"])
        runs = script_modules(script)
        needed = {m: p for m, p in runs.items() if m not in EXEMPT}
        if not covered(script, deps):
            problems.append(f"{name}: its script {script.relative_to(ROOT)} is not in deps")
        for module, path in sorted(needed.items()):
            if not covered(path, deps):
                problems.append(f"{name}: imports {module} but {path.relative_to(ROOT)} is not "
                                "in deps (an edit to it would not re-run the stage)")
        exempt = {p for m, p in runs.items() if m in EXEMPT}
        for dep in (d for d in deps if d.endswith(".py")):
            if ROOT / dep in exempt:
                problems.append(f"{name}: depends on {dep}, which is exempt (cannot change "
                                "outputs): an edit to it would re-run the stage for nothing")
            elif ROOT / dep not in {script, *needed.values()}:
                problems.append(f"{name}: depends on {dep}, which it does not import")
    assert not problems, ("dvc.yaml has drifted from the code (fix the stage's deps, or add a "
                          "module that cannot change outputs to EXEMPT with its reason):\n"
                          + "\n".join(problems))


def test_every_dep_exists_or_is_another_stages_output():
    stages = dvc_stages()
    outs = {name: [entry_path(o) for key in ("outs", "metrics", "plots")
                   for o in stage.get(key, [])] for name, stage in stages.items()}
    missing = []
    for name, stage in stages.items():
        for dep in map(entry_path, stage.get("deps", [])):
            made_elsewhere = any(Path(dep) == Path(o) or Path(o) in Path(dep).parents
                                 for other, paths in outs.items() if other != name
                                 for o in paths)
            if not (ROOT / dep).exists() and not made_elsewhere:
                missing.append(f"{name}: {dep}")
    assert not missing, "deps that neither exist nor are made by a stage:\n" + "\n".join(missing)


def test_exempt_modules_exist():
    """The exempt list names real modules (a rename must update it, not silently widen it)."""
    stale = [m for m in EXEMPT if find_module(m, ROOT / "stages") is None]
    assert not stale, f"EXEMPT names modules that do not exist: {stale}"


def test_model_lists_agree():
    """dvc.yaml's train foreach, params.yaml's train: sections, evaluate.models and the tests'
    model list name the same models."""
    from pipeline_fixture import MODELS

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = dvc_stages()
    trained = {n.partition("@")[2] for n in stages if n.startswith("train@")}
    assert trained == set(params["train"]), "dvc.yaml's train foreach is not over train:"
    made = {Path(o).stem for stage in stages.values() for o in map(entry_path, stage.get(
        "outs", [])) if Path(o).parent == Path("models") and o.endswith(".keras")}
    assert set(params["train"]) <= made
    evaluated = params["evaluate"]["models"]
    assert sorted(evaluated) == sorted(made), (
        f"evaluate.models {evaluated} is not every model a stage makes: {sorted(made)}")
    assert set(params["ensemble"]["members"]) <= set(params["train"])
    for key in ("explain.model", "register.model"):
        assert lookup(params, key) in made, f"{key} names no model a stage makes"
    assert set(params["explain"]["gradcam_models"]) <= made
    assert tuple(MODELS) == tuple(evaluated), "tests' MODELS must be evaluate.models"
    # a stage that loads models named by params depends on those models' files
    # (DVC cannot loop over a list in deps, so dvc.yaml names them; this keeps them in step)
    for stage, names in (("ensemble", params["ensemble"]["members"]),
                         ("explain", [params["explain"]["model"],
                                      *params["explain"]["gradcam_models"]]),
                         ("register", [params["register"]["model"]])):
        deps = {entry_path(d) for d in stages[stage]["deps"]}
        missing = [n for n in names if f"models/{n}.keras" not in deps]
        assert not missing, f"{stage} loads {missing} but does not depend on their .keras files"


def test_expansion_matches_dvcs_own():
    """The expansion above (foreach, ${...} from params.yaml) gives the stages, commands and
    deps DVC itself reads from dvc.yaml (its parser only: nothing runs)."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        theirs = {s.addressing: (s.cmd, [str(d.def_path) for d in s.deps if d.def_path !=
                                         "params.yaml"]) for s in repo.index.stages}
    ours = {name: (stage["cmd"], [entry_path(d) for d in stage.get("deps", [])])
            for name, stage in dvc_stages().items()}
    assert ours == theirs


def test_foreach_over_a_list_and_a_dict_is_named_as_dvc_names_it():
    context = {"evaluate": {"models": ["a", "b"]}, "train": {"a": {"n": 1}}}
    listed = expand("evaluate", {"foreach": "${evaluate.models}", "do": {
        "cmd": "python stages/evaluate.py ${item}", "deps": ["models/${item}.keras"]}}, context)
    assert listed == {f"evaluate@{m}": {"cmd": f"python stages/evaluate.py {m}",
                                        "deps": [f"models/{m}.keras"]} for m in ("a", "b")}
    keyed = expand("train", {"foreach": "${train}", "do": {"cmd": "python t.py ${key} ${item.n}"}},
                   context)
    assert keyed == {"train@a": {"cmd": "python t.py a 1"}}
    composite = expand("x", {"foreach": [{"m": "a"}], "do": {"cmd": "${item.m}"}}, context)
    assert composite == {"x@0": {"cmd": "a"}}
