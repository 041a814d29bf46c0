"""params.yaml is checked before any work starts: unknown keys, missing keys, wrong types and
out-of-range values each give an error naming the key; a stage then writes nothing."""

import copy

import pytest
import yaml
from conftest import ROOT
from helpers import mini_project, run_stage, snapshot

from deepfake_detector.config import load_params
from deepfake_detector.params_check import (
    ParamsError,
    check_params,
    complete,
    complete_model,
    defaults,
    validate,
)
from deepfake_detector.params_file import profile_params

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def changed(dotted: str, value=None, delete=False) -> dict:
    params = copy.deepcopy(PARAMS)
    *path, last = dotted.split(".")
    node = params
    for key in path:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return params


def test_the_shipped_params_and_profiles_pass():
    from deepfake_detector.models import BUILDERS
    from deepfake_detector.params_check import ARCHITECTURES

    assert set(ARCHITECTURES) == set(BUILDERS)  # the checker knows every architecture
    assert check_params(PARAMS) == []
    for profile in (ROOT / "profiles").glob("*.yaml"):  # overlays: the defaults with each over
        assert check_params(profile_params(ROOT, profile.stem)) == [], profile.name


@pytest.mark.parametrize("dotted,value,message", [
    ("train.tuned.epoch", 3, "train.tuned.epoch: unknown key (did you mean train.tuned.epochs?)"),
    ("evaluate.treshold", 0.5, "evaluate.treshold: unknown key (did you mean evaluate.threshold?)"),
    ("colour", "red", "colour: unknown key"),
    ("training.cpu_devices", -1, "training.cpu_devices = -1: must be an integer from 0 to 64"),
    ("train.tuned.epochs", 0, "train.tuned.epochs = 0: must be an integer ≥ 1"),
    ("train.tuned.learning_rate", -0.1, "train.tuned.learning_rate = -0.1: must be a number > 0"),
    ("train.tuned.conv", [{"filters": 0}], "train.tuned.conv[0].filters = 0: must be an integer"),
    ("preprocess.image_size", "64", "preprocess.image_size = '64': must be an integer"),
    ("training.deterministic", "yes", "training.deterministic = 'yes': must be true or false"),
    ("training.distribute", "tpu", "training.distribute = 'tpu': must be one of none, mirrored"),
    ("split.fractions.val", 0.5, "split.fractions: must add up to 1, not 1.35"),
    ("split.group_regex", "(", "split.group_regex = '(': must be a valid regular expression"),
    ("data.sha256", "abc", "data.sha256 = 'abc': must be null or 64 hexadecimal digits"),
    ("evaluate.threshold", 1.5, "evaluate.threshold = 1.5: must be max_accuracy, eer"),
    ("explain.eye_band", [0.6, 0.2], "explain.eye_band = [0.6, 0.2]: must be a pair [low, high]"),
    ("serve.port", 70000, "serve.port = 70000: must be an integer from 0 to 65535"),
    ("ensemble.members", ["tuned", "resnet"], "ensemble.members: resnet not among the models"),
    ("promote.min_roc_auc", float("nan"), "promote.min_roc_auc = nan: must be a number"),
    ("train.a\rb", {"epochs": 1, "architecture": "tuned"},
     "train.'a\\rb': a model name is 1 to 64 letters, digits"),
    ("serve.max_files", 0, "serve.max_files = 0: must be an integer ≥ 1"),
    ("data.download.stall_s", 0, "data.download.stall_s = 0: must be a number > 0"),
])
def test_bad_values_name_their_key(dotted, value, message):
    problems = check_params(changed(dotted, value))
    assert any(p.startswith(message) for p in problems), problems


def test_missing_keys_and_sections_are_named():
    assert "serve.host: missing" in check_params(changed("serve.host", delete=True))
    assert "explain: missing" in check_params(changed("explain", delete=True))
    assert check_params([]) == ["params.yaml: must be a mapping of keys, not list"]
    with pytest.raises(ParamsError, match="2 problem"):
        validate(changed("train.tuned.epoch", 3) | {"colour": 1})


def test_load_params_refuses_bad_yaml_and_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no params.yaml"):
        load_params(tmp_path)
    (tmp_path / "params.yaml").write_text("base: {seed: [1\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path)


def test_load_params_fills_in_every_default(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "base: {seed: 7}\ntrain:\n  mine: {epochs: 2, architecture: tuned,"
        " conv: [{filters: 4}]}\nensemble: {members: [mine]}\nevaluate: {models: [mine]}\n"
        "explain: {model: mine, gradcam_models: [mine]}\nregister: {model: mine}\n")
    params = load_params(tmp_path)
    assert params["base"]["seed"] == 7 and check_params(params) == []
    assert params["serve"] == defaults()["serve"] and params["training"]["deterministic"]
    mine = params["train"]["mine"]
    assert mine["conv"] == [{"filters": 4, "kernel": 3, "activation": "relu",
                            "stride": 1}]
    assert mine["batch_norm"] == {"momentum": 0.95, "epsilon": 0.005}
    assert mine["dense"] == [64, 32] and "input_size" not in mine  # tuned reads no input_size
    assert complete(defaults()) == defaults()


def test_a_model_key_without_a_default_for_its_architecture_is_named():
    problems = check_params(complete(changed("train.small", {"epochs": 1,
                                                             "architecture": "tuned"})))
    assert "train.small.conv: missing (the tuned architecture has no default)" in problems
    assert complete_model("baseline")["conv"] == [{"filters": 32, "kernel": 3,
                                                   "activation": "relu", "stride": 1},
                                                  {"filters": 16, "kernel": 3,
                                                   "activation": "relu", "stride": 1}]


@pytest.mark.parametrize("stage", ["fetch", "train"])
def test_a_stage_with_bad_params_stops_before_any_work(tmp_path, stage):
    project = mini_project(tmp_path / "p", ROOT, {"train.tuned.epoch": 3,
                                                  "training.cpu_devices": -1})
    before = snapshot(project)
    done = run_stage(project, stage, *(["tuned"] if stage == "train" else []))
    assert done.returncode == 1
    assert "train.tuned.epoch: unknown key" in done.stderr
    assert "training.cpu_devices = -1" in done.stderr
    assert "Traceback" not in done.stderr
    after = snapshot(project)
    assert {k: v for k, v in after.items() if "__pycache__" not in k} == before
