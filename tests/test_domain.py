"""The out-of-domain score: fitted in evaluate on the model's own features, shipped in its
settings, returned with every prediction."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from deepfake_detector import datasets, domain, evaluation
from deepfake_detector.inference import Detector
from deepfake_detector.paths import Workspace


def colour_model(path):
    """P(fake) from the mean colour (a 3-vector: the penultimate features)."""
    import keras

    inputs = keras.Input((16, 16, 3), dtype="uint8", name="image")
    identity = keras.layers.Conv2D(3, 1, use_bias=False)  # a conv layer, for Grad-CAM
    x = identity(keras.layers.Rescaling(1 / 255.0)(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(1, activation="sigmoid", name="p_fake")
    model = keras.Model(inputs, dense(x))
    identity.set_weights([np.eye(3).reshape(1, 1, 3, 3)])
    dense.set_weights([np.array([[8.0], [0.0], [0.0]]), np.array([-4.0])])
    model.save(path)
    return model


def images(n, seed, centre=(120, 120, 120), spread=20):
    """Flat-coloured images whose colours scatter around ``centre``."""
    rng = np.random.default_rng(seed)
    colours = np.clip(rng.normal(centre, spread, (n, 3)), 0, 255)
    return np.broadcast_to(colours[:, None, None, :], (n, 16, 16, 3)).astype(np.uint8)


def test_a_part_flags_a_quantile_of_unseen_in_domain_values_and_all_of_a_shifted_set():
    rng = np.random.default_rng(0)
    train, val, test = (rng.normal(0, 1, (n, 8)) for n in (2000, 1000, 1000))
    part = domain._fit_part(train, val, 0.99)
    assert part["size"] == 8
    out_test = (domain.distances(test, part) > part["threshold"]).mean()
    assert 0.002 <= out_test <= 0.03  # ~1% of values like the training data
    shifted = test + np.r_[8.0, np.zeros(7)]  # one feature moved 8 standard deviations
    assert (domain.distances(shifted, part) > part["threshold"]).mean() > 0.95
    # a direction the training data hardly varies in counts (what Euclidean distance misses)
    narrow = np.c_[rng.normal(0, 10, (2000, 1)), rng.normal(0, 0.1, (2000, 1))]
    part = domain._fit_part(narrow, narrow[:500], 0.99)
    assert domain.distances(np.array([[0.0, 1.0]]), part)[0] > part["threshold"]
    assert domain.distances(np.array([[10.0, 0.0]]), part)[0] < part["threshold"]


def test_the_thumbnail_flags_images_the_features_cannot_tell_apart():
    """A model that sees only the mean colour: pictures with the same mean colour but other
    content get the same features, and the thumbnail part still flags them."""
    import keras

    inputs = keras.Input((16, 16, 3), dtype="uint8", name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, name="p_fake")(x))
    features = domain.feature_function(model)
    fitted = domain.fit_domain(features, images(300, 1), images(200, 2), 0.99)
    assert set(fitted["parts"]) == {"features", "pixels", "texture"}
    assert fitted["fitted_on"] == 300
    halves = images(20, 3).copy()  # same mean colour, left half dark and right half light
    halves[:, :, :8] = np.clip(halves[:, :, :8].astype(int) - 100, 0, 255)
    halves[:, :, 8:] = np.clip(halves[:, :, 8:].astype(int) + 100, 0, 255)
    feature_part, pixel_part = fitted["parts"]["features"], fitted["parts"]["pixels"]
    assert (domain.distances(features(halves), feature_part) <= feature_part["threshold"]).all()
    assert (domain.distances(domain.thumbnails(halves), pixel_part)
            > pixel_part["threshold"]).all()
    assert (domain.scores(features, halves, fitted) > 1).all()
    assert (domain.scores(features, images(200, 4), fitted) > 1).mean() <= 0.05


def test_the_texture_flags_flat_pictures_shown_to_a_model_of_detailed_ones():
    """Noisy pictures in training; flat ones of the same colours have the same features and
    an in-domain thumbnail, and only their missing detail gives them away."""
    import keras

    def noisy(n, seed):
        rng = np.random.default_rng(seed + 100)
        return np.clip(images(n, seed).astype(int) + rng.integers(-40, 41, (n, 16, 16, 3)),
                       0, 255).astype(np.uint8)

    inputs = keras.Input((16, 16, 3), dtype="uint8", name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    features = domain.feature_function(keras.Model(inputs, keras.layers.Dense(1, name="p_fake")(x)))
    fitted = domain.fit_domain(features, noisy(400, 1), noisy(200, 2), 0.99)
    flat, texture_part = images(50, 3), fitted["parts"]["texture"]
    feature_part, pixel_part = fitted["parts"]["features"], fitted["parts"]["pixels"]
    assert (domain.distances(features(flat), feature_part)
            <= feature_part["threshold"]).mean() > 0.9
    assert (domain.distances(domain.thumbnails(flat), pixel_part)
            <= pixel_part["threshold"]).mean() > 0.9
    assert (domain.distances(domain.texture(flat), texture_part) > texture_part["threshold"]).all()
    assert (domain.scores(features, noisy(200, 4), fitted) > 1).mean() <= 0.07
    # and a model fitted before the texture part existed still scores, on its own parts
    older = {**fitted, "parts": {k: v for k, v in fitted["parts"].items() if k != "texture"}}
    assert (domain.scores(features, flat, older) > 1).mean() < 0.1


def evaluated(tmp_path):
    """The colour model evaluated on flat images (its domain fitted): (model, settings,
    the evaluation result)."""
    out = Workspace(tmp_path)
    out.models_dir.mkdir()
    model = colour_model(out.model("tiny"))
    train, val, test = images(400, 1), images(200, 2), images(100, 3)
    labels = {"y": np.arange(200) % 2, "paths": np.array([f"v/{i}.png" for i in range(200)]),
              "x": val}
    datasets.write_val_scores(out.val_scores("tiny"), np.linspace(0, 1, 200), labels["paths"])
    cfg = {"threshold": 0.5, "target_fake_recall": 0.95, "calibration": "none",
           "robustness": {}, "domain": {"quantile": 0.99, "max_images": 300}}
    serving = {"image_size": 16, "centre_crop": 1.0, "max_pixels": 10**6,
               "face_crop": {"enabled": False}}
    result = evaluation.run("tiny", out.model("tiny"), out.val_scores("tiny"), labels,
                            {"x": test, "y": np.arange(100) % 2}, cfg, serving, out,
                            train_x=train)
    return model, json.loads(out.settings("tiny").read_text()), result


def png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def test_evaluate_ships_the_fit_and_every_prediction_carries_the_flag(tmp_path):
    model, settings, result = evaluated(tmp_path)
    assert settings["domain"]["fitted_on"] == 300
    assert settings["domain"]["parts"]["features"]["size"] == 3
    assert result["metrics"]["out_of_domain"] <= 0.05
    assert 0 <= result["metrics"]["real_called_fake_unflagged"] <= result["metrics"][
        "real_called_fake"]

    detector = Detector(model, settings)
    far = images(20, 4, centre=(250, 10, 200), spread=3)  # colours no training image had
    assert [v for v, _ in detector.domain(far)] == ["out"] * 20
    near = images(200, 5)
    assert [v for v, _ in detector.domain(near)].count("out") <= 10
    p, rows = detector.assess(near[:0])  # no images (the pyfunc may be sent none)
    assert p.shape == (0,) and rows == []
    pngs = [png(near[0]), png(far[0])]
    rows = detector.score(pngs + [b"not an image"], ["near.png", "far.png", "bad.png"])
    assert [r["domain"] for r in rows] == ["in", "out", None]
    assert rows[1]["domain_score"] > 1 > rows[0]["domain_score"]
    # a model evaluated before the domain score existed answers None, not an error
    legacy = Detector(model, {k: v for k, v in settings.items() if k != "domain"})
    assert legacy.score(pngs[:1])[0]["domain"] is None


@pytest.mark.parametrize("name", ["baseline", "tuned", "ensemble"])
def test_every_architecture_has_features_to_score(name):
    from deepfake_detector import models
    from deepfake_detector.params_check import defaults

    params = defaults()
    tuned = models.build_model("tuned", 64, params["train"]["tuned"])
    model = {"baseline": lambda: models.build_model("baseline", 64, params["train"]["baseline"]),
             "tuned": lambda: tuned,
             "ensemble": lambda: models.build_ensemble(
                 [tuned, models.build_model("baseline", 64, params["train"]["baseline"])],
                 64, "stacked", 8)}[name]()
    x = images(5, 0, spread=60).repeat(4, axis=1).repeat(4, axis=2)
    features = domain.feature_function(model)(x)
    width = {"baseline": 16, "tuned": 32, "ensemble": 48}[name]  # pooled map, dense, both
    assert features.shape == (5, width) and np.isfinite(features).all()
    # one call for both (Detector.assess): the model's own P(fake) and the same features,
    # bit for bit, and nothing for no images
    from deepfake_detector.scoring import compiled_predict

    p, same = domain.feature_function(model, with_output=True)(x)
    assert np.array_equal(p, compiled_predict(model)(x)) and np.array_equal(same, features)
    p, none = domain.feature_function(model, with_output=True)(x[:0])
    assert p.shape == (0,) and len(none) == 0


def test_the_flag_reaches_the_http_api(tmp_path):
    """POST /predict on a real server answers each image's domain and score."""
    import httpx
    import yaml
    from conftest import ROOT
    from helpers import start_server

    from deepfake_detector.service import create_app

    model, settings, _ = evaluated(tmp_path)
    card = {"uri": "models/tiny.keras", "name": "deepfake-detector", "version": None,
            "data_source": "synthetic", "synthetic_warning": True, "metrics": {}}
    app = create_app(Detector(model, settings), card,
                     yaml.safe_load((ROOT / "params.yaml").read_text()))
    server, thread, url = start_server(app)
    try:
        near, far = images(1, 5)[0], images(1, 4, centre=(250, 10, 200), spread=3)[0]
        files = [("files", ("near.png", png(near), "image/png")),
                 ("files", ("far.png", png(far), "image/png"))]
        reply = httpx.post(f"{url}/predict", files=files)
        assert reply.status_code == 200, reply.text
        rows = {r["file"]: r for r in reply.json()["results"]}
        assert rows["near.png"]["domain"] == "in" and rows["far.png"]["domain"] == "out"
        assert rows["far.png"]["domain_score"] > 1 > rows["near.png"]["domain_score"]
    finally:
        server.should_exit = True
        thread.join(10)
