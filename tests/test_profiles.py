"""Profiles are overlays: profiles/<name>.yaml holds only the values it changes, every key in
it exists, and the defaults with it over them make a valid params.yaml. The committed
params.yaml is the defaults (the study's values), written the way `make params` writes it."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from deepfake_detector.params_check import ParamsError, defaults
from deepfake_detector.params_file import NOTES, STUDY, profile_params, write_profile

PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))


def test_committed_params_are_the_defaults_as_make_params_writes_them(tmp_path):
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == defaults()
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    write_profile(tmp_path, STUDY)
    assert (tmp_path / "params.yaml").read_text() == (ROOT / "params.yaml").read_text()


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_every_overlay_key_exists_and_the_merged_params_validate(profile):
    params = profile_params(ROOT, profile.stem)  # raises on an unknown key or a bad value
    overlay = yaml.safe_load(profile.read_text()) or {}

    def same(over, merged):
        for key, value in over.items():
            if isinstance(value, dict):
                same(value, merged[key])
            else:
                assert merged[key] == value, key
    same(overlay, params)


def test_a_typo_in_an_overlay_is_refused_naming_the_profile(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text("train:\n  tuned:\n    epoch: 3\n")
    with pytest.raises(ParamsError) as err:
        profile_params(tmp_path, "mine")
    assert "mine.yaml" in str(err.value)
    assert "train.tuned.epoch: unknown key (did you mean train.tuned.epochs?)" in str(err.value)


def test_a_profile_written_and_back_again(tmp_path):
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    run = [sys.executable, "-m", "deepfake_detector.params_check", "--profile"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([*run, "real-small"], cwd=tmp_path, capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "params.yaml").read_text()
    assert text.startswith("# Profile real-small:") and "make params PROFILE=study" in text
    assert "image_size: 128         # real-small; study: 64" in text
    written = yaml.safe_load(text)
    assert written == profile_params(ROOT, "real-small")
    assert written["train"]["tuned"]["highpass"] and written["train"]["tuned"]["conv"]
    done = subprocess.run([*run, "study"], cwd=tmp_path, capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "params.yaml").read_text() == (ROOT / "params.yaml").read_text()
    done = subprocess.run([*run, "nope"], cwd=tmp_path, capture_output=True, text=True,
                          env=env)
    assert done.returncode == 2 and done.stderr.startswith("error: no profile 'nope'")
    assert "real-small" in done.stderr and "Traceback" not in done.stderr


def test_every_note_names_a_key():
    study = defaults()
    for dotted in NOTES:
        node = study
        for key in dotted.split("."):
            node = node[key]
