"""Outputs that DVC hashes are the same bytes when written again seconds later."""

import json
import time
import zipfile

import numpy as np

from deepfake_detector.reproducible import ZIP_EPOCH, save_model, savez


def _tiny_trained_model():
    """Its layers share one dtype policy: config.json records the policy's memory address,
    so two builds in one process differ as two runs of a stage do."""
    import keras

    keras.utils.set_random_seed(0)
    policy = keras.DTypePolicy("float32")
    model = keras.Sequential([
        keras.Input((8, 8, 3), name="image"),
        keras.layers.Conv2D(2, 3, dtype=policy, name="conv"),
        keras.layers.BatchNormalization(dtype=policy, name="norm"),
        keras.layers.Flatten(dtype=policy, name="flat"),
        keras.layers.Dense(1, activation="sigmoid", dtype=policy, name="p_fake")], name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(name="adam"),  # its state is saved too
                  loss="binary_crossentropy")
    model.fit(np.zeros((4, 8, 8, 3)), np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    return model


def test_a_model_saved_twice_seconds_apart_is_the_same_bytes_and_loads(tmp_path):
    import keras

    model = _tiny_trained_model()
    plain_first, plain_second = tmp_path / "plain1.keras", tmp_path / "plain2.keras"
    model.save(plain_first)
    save_model(model, tmp_path / "first.keras")
    time.sleep(2.1)  # past the 2 s resolution of zip entry times and HDF5's 1 s
    model.save(plain_second)
    save_model(model, tmp_path / "second.keras")
    assert plain_first.read_bytes() != plain_second.read_bytes()  # what this fixes
    assert (tmp_path / "first.keras").read_bytes() == (tmp_path / "second.keras").read_bytes()
    with zipfile.ZipFile(tmp_path / "first.keras") as fixed, zipfile.ZipFile(plain_first) as raw:
        # the HDF5 weights inside hold no timestamps of their own
        assert fixed.read("model.weights.h5") == raw.read("model.weights.h5")
        assert [(e.filename, e.compress_type) for e in fixed.infolist()] == \
            [(e.filename, e.compress_type) for e in raw.infolist()]
        assert {e.date_time for e in fixed.infolist()} == {ZIP_EPOCH}
        metadata = json.loads(fixed.read("metadata.json"))
        assert "date_saved" not in metadata and metadata["keras_version"] == keras.__version__
    loaded = keras.models.load_model(tmp_path / "second.keras")
    x = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert not list(tmp_path.glob("*.rewrite"))


def test_shared_objects_are_numbered_not_located(tmp_path):
    """The same model built again (another process, or here another policy object) gives
    the same bytes; the numbering keeps what Keras links on loading."""
    import keras

    first, second = _tiny_trained_model(), _tiny_trained_model()
    first.save(tmp_path / "plain1.keras")
    second.save(tmp_path / "plain2.keras")
    assert (tmp_path / "plain1.keras").read_bytes() != (tmp_path / "plain2.keras").read_bytes()
    a, b = save_model(first, tmp_path / "a.keras"), save_model(second, tmp_path / "b.keras")
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as archive:
        assert '"shared_object_id": 1' in archive.read("config.json").decode()
    plain, fixed = (keras.models.load_model(p) for p in (tmp_path / "plain2.keras", b))
    assert [layer.dtype_policy.name for layer in fixed.layers] == \
        [layer.dtype_policy.name for layer in plain.layers]
    assert [type(layer) for layer in fixed.layers] == [type(layer) for layer in plain.layers]


def test_npz_written_twice_seconds_apart_is_the_same_bytes_and_loads(tmp_path):
    arrays = {"x": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
              "paths": np.array(["real/a.jpg", "fake/b.jpg"])}
    for compressed in (False, True):
        first = savez(tmp_path / f"first-{compressed}.npz", compressed=compressed, **arrays)
        time.sleep(2.1)
        second = savez(tmp_path / f"second-{compressed}.npz", compressed=compressed, **arrays)
        assert first.read_bytes() == second.read_bytes()
        with np.load(second) as z:
            assert sorted(z.files) == ["paths", "x"]
            np.testing.assert_array_equal(z["x"], arrays["x"])
            assert z["paths"].tolist() == ["real/a.jpg", "fake/b.jpg"]
        with zipfile.ZipFile(second) as archive:
            kinds = {e.compress_type for e in archive.infolist()}
            assert kinds == {zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED}
            assert {e.date_time for e in archive.infolist()} == {ZIP_EPOCH}
