"""What `deepfake predict` prints: JSON for scripts (strict, one row per file with the verdict
beside the domain flag and training data), a table for people with the verdict in words, and
no TensorFlow start-up chatter unless -v, while the CLI's own warnings still show."""

import json
import os
import subprocess

import pytest
from conftest import ROOT
from helpers import jpeg_bytes

from deepfake_detector.verdicts import verdict_text

BIN = ROOT / ".venv" / "bin"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    import keras

    from deepfake_detector.models import build_model
    from deepfake_detector.params_check import complete_model

    folder = tmp_path_factory.mktemp("cli")
    (folder / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())
    keras.utils.set_random_seed(0)
    build_model("baseline", 64, complete_model("baseline")).save(folder / "small.keras")
    for i in range(2):
        (folder / f"face{i}.jpg").write_bytes(jpeg_bytes(i, fake=bool(i)))
    (folder / "notes.jpg").write_text("not a picture")
    return folder


def predict(folder, *args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([str(BIN / "deepfake"), *args, "predict", "face0.jpg", "face1.jpg",
                           "notes.jpg", "--model", "small.keras", "--no-face-crop"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_json_rows_table_words_and_a_quiet_start(small_model):
    quiet = subprocess.run(
        [str(BIN / "deepfake"), "predict", "face0.jpg", "face1.jpg", "notes.jpg", "--model",
         "small.keras", "--no-face-crop", "--json"], cwd=small_model, capture_output=True,
        text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert quiet.returncode == 1  # one file could not be scored
    rows = json.loads(quiet.stdout)  # strict JSON, nothing else on stdout
    assert [r["file"] for r in rows] == ["face0.jpg", "face1.jpg", "notes.jpg"]
    assert all(r["verdict"] in ("fake", "real", "inconclusive") for r in rows[:2])
    assert rows[2]["error"] == "not_image" and rows[2]["verdict"] is None
    assert all(r["trained_on"] == "unknown" for r in rows)  # a bare file records none
    # the CLI's own lines only: the missing settings warning survives the hidden start-up
    said = quiet.stderr.strip().splitlines()
    assert said == ["warning: no models/small.settings.json: uncalibrated, threshold 0.5",
                    "model: small.keras"], said

    loud = predict(small_model, "-v")  # -v before the command's name works too
    assert len(loud.stderr.splitlines()) > len(said)  # TensorFlow's own start-up lines
    assert "model trained on unknown" in loud.stdout  # the table for people
    for row in rows[:2]:  # the verdict in words, as verdicts.verdict_text writes it
        assert verdict_text(row["p_fake"], 0.5, row["verdict"]) in loud.stdout
    assert "not_image" in loud.stdout
