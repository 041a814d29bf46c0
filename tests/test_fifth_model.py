"""A fifth model touches only its builder, its section under ``train:`` and the list of
evaluated models (issue 12): in a copy of the session's tiny pipeline a small new architecture
is added and committed, then DVC trains and evaluates it and the summary takes it in."""

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipeline_fixture import BIN, MODELS, sh

pytestmark = pytest.mark.slow

TINY_BUILDER = '''

def build_tiny(size: int, cfg: dict) -> keras.Model:
    """A fifth model: one convolution, global average pooling, P(fake)."""
    inputs = image_input(size)
    x = layers.Conv2D(8, 3, activation="relu")(scaled(inputs, cfg))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="tiny")
'''


def copy_workspace(source, dest):
    """The pipeline's workspace and MLflow store (its runs re-pointed at the copy's artifact
    folder), without DVC's cache: nothing is checked out, and the original is left as it is."""
    skipped = {source / ".dvc" / "cache", source / ".dvc" / "tmp"}
    shutil.copytree(source, dest, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if Path(folder) / n in skipped])
    with sqlite3.connect(dest / "mlflow.db") as con:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            con.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)",
                        (source.as_uri() + "/", dest.as_uri() + "/"))
    return dest


def add_tiny_model(repo) -> None:
    """What a user writes: a builder in models.py, train.tiny and evaluate.models in params."""
    models = repo / "src/deepfake_detector/models.py"
    source = models.read_text()
    assert source.count("\n\nBUILDERS = {") == 1, "models.py has no BUILDERS = {...}"
    models.write_text(source.replace("\n\nBUILDERS = {",
                                     TINY_BUILDER + '\n\nBUILDERS = {"tiny": build_tiny, '))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["tiny"] = {"epochs": 1, "architecture": "tiny"}
    params["evaluate"]["models"].append("tiny")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def check_fifth_model(repo) -> str:
    """Add the model, commit, run its stages; returns DVC's output."""
    def git(*args):
        done = sh(["git", *args], repo)
        assert done.returncode == 0, done.stderr
        return done.stdout

    git("commit", "-qam", "the workspace as copied", "--allow-empty")
    add_tiny_model(repo)
    git("commit", "-qam", "a fifth model: tiny")
    changed = git("diff", "--name-only", "HEAD~1", "HEAD").split()
    assert sorted(changed) == ["params.yaml", "src/deepfake_detector/models.py"]
    # --single-item: the new model's stages only. A changed models.py is a dependency of every
    # train@ stage, so a plain `dvc repro` would retrain the four others as well.
    done = sh([str(BIN / "dvc"), "repro", "--single-item", "pretrained", "train@tiny",
               "evaluate@tiny", "summary"], repo)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    for stage in ("train@tiny", "evaluate@tiny", "summary"):
        assert f"Running stage '{stage}'" in said, stage
    for output in ("models/tiny.keras", "models/tiny.val_scores.npz",
                   "metrics/plots/robustness/tiny.csv"):
        assert (repo / output).is_file(), output
    settings = json.loads((repo / "models/tiny.settings.json").read_text())
    assert settings["schema_version"] == 1 and settings["model"] == "tiny"
    assert 0 <= settings["threshold"] <= 1 and settings["temperature"] > 0
    metrics = json.loads((repo / "metrics/tiny.json").read_text())
    assert metrics["threshold"] == settings["threshold"] and metrics["n"] > 0
    summary = pd.read_csv(repo / "metrics/summary.csv")
    assert summary["model"].tolist() == [*MODELS, "tiny"]
    return said


def test_a_fifth_model_needs_its_builder_and_params_only(pipeline, tmp_path):
    repo = copy_workspace(pipeline["repo"], tmp_path / "repo")
    check_fifth_model(repo)
