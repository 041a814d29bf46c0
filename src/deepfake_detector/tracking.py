"""MLflow tracking: where runs go and what ties each run to its code and data."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from pathlib import Path

from .config import main_checkout
from .paths import Workspace

EXPERIMENT = "deepfake-detection"
# MLflow 3's experiment type, as its UI's type selector writes it: classic model training
# (the runs table), not a GenAI app (traces). The 3.17 UI's "GenAI | Model training" switch
# still decides the default page (README, `make ui`).
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the checkout's ``mlflow.db`` by absolute path
    (a relative one would land in throwaway copies under ``.dvc/tmp/exps``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{main_checkout(root) / 'mlflow.db'}"


def use_wal(uri: str) -> None:
    """Write-ahead logging for a SQLite store: readers no longer block the writer, so
    parallel stages and `dvc queue start -j 2` workers share one database without "database
    is locked" (MLflow already waits up to 20 s for a lock; the mode persists in the file)."""
    import sqlite3

    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):].split("?", 1)[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path, timeout=60)) as con:
        if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            con.execute("PRAGMA journal_mode=WAL")


def setup(root: Path):
    import mlflow

    local_store = "MLFLOW_TRACKING_URI" not in os.environ  # set_tracking_uri exports it
    use_wal(tracking_uri(root))
    mlflow.set_tracking_uri(tracking_uri(root))
    if local_store and mlflow.get_experiment_by_name(EXPERIMENT) is None:
        # Artifacts beside the database, not under whatever folder the first run started in.
        artifacts = (main_checkout(root) / "mlartifacts").as_uri()
        try:
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
        except mlflow.exceptions.MlflowException:
            pass  # created meanwhile by a parallel stage
    experiment = mlflow.set_experiment(EXPERIMENT)
    if KIND_TAG not in experiment.tags:  # also an experiment made before the tag was set
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, KIND_TAG, KIND)
    return mlflow


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def ui_url(root: Path, base: str = "http://127.0.0.1:5000") -> str:
    """Where `make ui` sends people: the project's experiment on its runs table. MLflow
    3.17's UI opens an experiment on its GenAI overview whatever the experiment's kind tag,
    unless the address asks for ``workflowType=machine_learning``."""
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return base + "/"  # no runs yet (`make repro` makes them)
    experiment = setup(root).get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return base + "/"
    return f"{base}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning"


@contextlib.contextmanager
def new_run(name: str):
    """An MLflow run that ends FINISHED, KILLED on SIGINT/SIGTERM (see stage_runner), or FAILED:
    never left RUNNING."""
    import mlflow

    run, status = mlflow.start_run(run_name=name), "FAILED"
    try:
        yield run
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)


@contextlib.contextmanager
def resumed_run(run_id: str):
    """Log more into an earlier run (evaluation into a training run). The run gets its own
    status back however this ends: an interrupted evaluate must not mark a finished training
    run FAILED or leave it RUNNING (DVC reruns the interrupted stage anyway)."""
    import mlflow

    status = mlflow.get_run(run_id).info.status
    run = mlflow.start_run(run_id=run_id)
    try:
        yield run
    finally:
        mlflow.end_run(status=status)


def git_commit(root: Path) -> str:
    return (_git(root, "rev-parse", "HEAD") or "").strip() or "none"


def _locked_stages(root: Path) -> dict:
    from .config import read_yaml_file

    lock = Workspace(root).lock
    return (read_yaml_file(lock) or {}).get("stages", {}) if lock.exists() else {}


def pipeline_outputs(root: Path) -> list[str]:
    """Every path dvc.yaml's stages write, as git glob patterns: a ``foreach`` stage's
    ``${...}`` becomes ``*``. Read from dvc.yaml, not dvc.lock: a first run has no lock yet
    while DVC already deletes the committed outputs of the stage it runs."""
    import re

    from .config import read_yaml_file

    pipeline = Workspace(root).pipeline
    stages = (read_yaml_file(pipeline) or {}).get("stages", {}) if pipeline.exists() else {}
    outs = {re.sub(r"\$\{[^}]*\}", "*", next(iter(out)) if isinstance(out, dict) else out)
            for stage in stages.values()
            for kind in ("outs", "metrics", "plots")
            for out in stage.get("do", stage).get(kind, [])}
    return sorted(outs)


def producing_stage(root: Path, path: Path) -> str | None:
    """The stage that ``dvc.lock`` says wrote ``path`` (None before any run wrote it)."""
    rel = path.relative_to(root).as_posix()
    return next((name for name, stage in _locked_stages(root).items()
                 if any(out["path"] == rel for out in stage.get("outs", []))), None)


def git_changes(root: Path) -> list[str] | None:
    """Tracked files that differ from the commit, leaving out the pipeline's own outputs and
    ``dvc.lock`` (a `dvc repro` rewrites those as it goes): the code or params that a run used
    but that no commit holds. ``None`` outside a git checkout."""
    excluded = [f":(exclude,glob){p}" for p in ("dvc.lock", *pipeline_outputs(root))]
    out = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded)
    if out is None:
        return None
    return sorted(line[3:] for line in out.splitlines() if line.strip())


def git_tags(root: Path) -> dict:
    """The commit, and whether tracked code or params differ from it (``git.dirty``)."""
    changes = git_changes(root)
    tags = {"git.commit": git_commit(root),
            "git.dirty": "unknown" if changes is None else str(bool(changes)).lower()}
    if changes:
        tags["git.changed_files"] = ", ".join(changes)[:500]
    return tags


def md5_file(path: Path) -> str:
    """The file's md5, as ``dvc.lock`` records it."""
    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            md5.update(block)
    return md5.hexdigest()


def data_tags(root: Path, data_files: list[Path]) -> dict:
    """Each data file's md5 as ``dvc.lock`` records it (``dvc.md5.<path>``), and ``data.hash``
    (the sha256 of all of them, in order), from one read of each file."""
    combined, tags = hashlib.sha256(), {}
    for path in data_files:
        md5 = hashlib.md5()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                md5.update(block)
                combined.update(block)
        tags[f"dvc.md5.{path.relative_to(root).as_posix()}"] = md5.hexdigest()
    tags["data.hash"] = combined.hexdigest()
    return tags


def flatten(d: dict, prefix: str = "", sep: str = ".") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}{sep}", sep))
        else:
            out[name] = value
    return out


def run_tags(root: Path, stage: str, data_files: list[Path], **extra) -> dict:
    """The tags that tie a run to its code and data."""
    return {"dvc.stage": stage, **git_tags(root), **data_tags(root, data_files), **extra}


def training_run(root: Path, model: str) -> str:
    """The id of the MLflow run that made ``models/<model>.keras`` as it is now: the newest
    FINISHED run tagged with the model's name and the file's md5 (``model.md5``, the md5
    ``dvc.lock`` records). Run ids live here, not in DVC outputs, where a new id on every run
    would change ``dvc.lock``. Where no run matches (a model from ``dvc pull``, a deleted
    mlflow.db), a FINISHED run tagged ``restored`` is made now; the next call finds it."""
    mlflow = setup(root)
    workspace = Workspace(root)
    model_file = workspace.model(model)
    md5 = md5_file(model_file)
    found = mlflow.search_runs(
        experiment_names=[EXPERIMENT], output_format="list", max_results=1,
        filter_string=(f"tags.model = '{model}' and tags.`model.md5` = '{md5}' "
                       "and attributes.status = 'FINISHED'"),
        order_by=["attributes.start_time DESC"])
    if found:
        return found[0].info.run_id
    data = [p for p in (workspace.processed("train"), workspace.processed("val")) if p.exists()]
    stage = producing_stage(root, model_file) or f"train@{model}"
    with new_run(model) as run:
        mlflow.set_tags(run_tags(root, stage, data, model=model, restored="true",
                                 **{"model.md5": md5}))
    return run.info.run_id


def log_keras_model(model, example) -> None:
    """The model with signature and input example. ``mlflow.tensorflow`` (``mlflow.keras``
    with ``input_example`` fails in MLflow 3.17), explicit requirements (inferring them
    costs seconds and lists both TensorFlow wheels)."""
    import keras
    import mlflow.tensorflow
    import numpy as np
    import tensorflow as tf
    from mlflow.models import infer_signature

    out = np.asarray(model(example, training=False))
    mlflow.tensorflow.log_model(
        model, name="model", input_example=example, signature=infer_signature(example, out),
        pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"])
