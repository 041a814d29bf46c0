"""Pretrained weights resolve to a record: a file and its hash, or none and why."""

import hashlib

import pytest
from helpers import FakeServer

from deepfake_detector.models import IMAGENET_WEIGHTS, build_model
from deepfake_detector.params_check import complete_model
from deepfake_detector.pretrained import resolve

XCEPTION_WEIGHTS_FILE = IMAGENET_WEIGHTS["xception"].file


def test_none_and_missing_file(tmp_path):
    assert resolve("xception", {"weights": "none"}, tmp_path)["used"] == "none"
    assert resolve("baseline", complete_model("baseline"), tmp_path) == {
        "requested": "none", "used": "none", "sha256": None, "note": ""}
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        resolve("xception", {"weights": "nope.h5"}, tmp_path)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """Real Xception base weights (random init) saved the way a user would provide them."""
    import keras

    path = tmp_path_factory.mktemp("w") / "xception.weights.h5"
    keras.applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3),
                                pooling="avg").save_weights(path)
    return path


def test_local_weights_file_is_hashed_and_loads(tmp_path, weights_file):
    record = resolve("xception", {"weights": str(weights_file)}, tmp_path)
    assert record["sha256"] == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    model = build_model("xception", 64, complete_model("xception", {
        "input_size": 71, "weights_file": record["used"]}))
    assert model.count_params() > 20_000_000
    # the file's values are in the model: its first and last convolutions hold them, where a
    # model built without the file holds other (freshly initialised) values
    import keras
    import numpy as np

    saved = keras.applications.Xception(include_top=False, weights=None,
                                        input_shape=(71, 71, 3), pooling="avg")
    saved.load_weights(weights_file)
    fresh = build_model("xception", 64, complete_model("xception", {"input_size": 71}))
    for name in ("block1_conv1", "block14_sepconv2"):
        expected = saved.get_layer(name).get_weights()[0]
        assert np.array_equal(layer(model, name).get_weights()[0], expected), name
        assert not np.array_equal(layer(fresh, name).get_weights()[0], expected), name


def layer(model, name: str):
    """The layer called ``name`` in ``model`` or in a model nested in it."""
    for item in model.layers:
        if item.name == name:
            return item
        if hasattr(item, "layers"):
            try:
                return layer(item, name)
            except KeyError:
                continue
    raise KeyError(name)


def test_imagenet_downloads_into_keras_cache(tmp_path, monkeypatch, weights_file):
    body = weights_file.read_bytes()
    with FakeServer() as server:
        server.routes["/" + XCEPTION_WEIGHTS_FILE] = lambda h, q: (
            200, {"Content-Type": "application/octet-stream"}, body)
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
        monkeypatch.setenv("DEEPFAKE_WEIGHTS_URL", f"{server.url}/{XCEPTION_WEIGHTS_FILE}")
        record = resolve("xception", {"weights": "imagenet"}, tmp_path)
        assert record["used"] == str(tmp_path / "keras" / "models" / XCEPTION_WEIGHTS_FILE)
        assert record["sha256"] == hashlib.sha256(body).hexdigest()
        n = len(server.requests)
        assert resolve("xception", {"weights": "imagenet"}, tmp_path) == record
        assert len(server.requests) == n  # cached: no second download


def test_imagenet_unreachable_trains_from_scratch_and_says_how_to_fix(tmp_path, monkeypatch,
                                                                      capsys):
    with FakeServer() as server:  # answers 404 for the weights file
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
        monkeypatch.setenv("DEEPFAKE_WEIGHTS_URL", f"{server.url}/{XCEPTION_WEIGHTS_FILE}")
        record = resolve("xception", {"weights": "imagenet"}, tmp_path)
    assert record["requested"] == "imagenet" and record["used"] == "none"
    err = capsys.readouterr().err
    assert err.count("FROM SCRATCH") == 1
    assert XCEPTION_WEIGHTS_FILE in err and str(tmp_path / "keras" / "models") in err


@pytest.mark.parametrize("name, cfg", [("tuned", {}), ("big", {"architecture": "baseline"})])
def test_imagenet_for_an_architecture_without_imagenet_weights_is_refused(tmp_path, name, cfg):
    """Each architecture declares its own weights file: none for the study's CNNs, so
    ``weights: imagenet`` there is an error naming the architecture, not Xception's file."""
    arch = cfg.get("architecture", name)
    with pytest.raises(ValueError, match=f"train.{name}.weights is imagenet, but the {arch} "
                                         "architecture has no ImageNet weights"):
        resolve(name, {"weights": "imagenet", **cfg}, tmp_path)


def test_imagenet_follows_the_architecture_not_the_model_name(tmp_path, monkeypatch, capsys):
    """A model of any name built on Xception asks for Xception's file (offline here: it says
    so and names that model's setting)."""
    with FakeServer() as server:  # answers 404 for the weights file
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
        monkeypatch.setenv("DEEPFAKE_WEIGHTS_URL", f"{server.url}/{XCEPTION_WEIGHTS_FILE}")
        record = resolve("wide", {"weights": "imagenet", "architecture": "xception"}, tmp_path)
        asked = [r["path"] for r in server.requests]
    assert record["used"] == "none" and asked == [f"/{XCEPTION_WEIGHTS_FILE}"]
    assert "set train.wide.weights to its path" in capsys.readouterr().err
