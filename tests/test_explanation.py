"""Explanation methods: LIME equal to the lime package and reproducible, Grad-CAM and
occlusion finding the only region a model looks at, and the scores of perfect and random maps."""

import numpy as np
import pytest

from deepfake_detector import explain_report, explainer
from deepfake_detector import explanation as ex
from deepfake_detector.synthetic import SyntheticConfig, make_image


def face(index=3, fake=True):
    import io

    from PIL import Image

    data, mask = make_image(index, fake, SyntheticConfig())
    return np.asarray(Image.open(io.BytesIO(data))), mask


def top_left_brightness(x):
    """A "model" that looks only at the top-left 16×16 corner."""
    return x[:, :16, :16].reshape(len(x), -1).mean(axis=1) / 255.0


def test_lime_equals_the_lime_package_and_is_reproducible(tmp_path):
    from lime import lime_image

    image, _ = face()
    segments = ex.slic_segments(image)
    calls = []

    def predict(x):
        calls.append(len(x))
        return top_left_brightness(x)

    ours = ex.lime_explain(image, predict, segments, num_samples=300, seed=5, batch_size=128)
    assert calls == [128, 128, 44]  # batched, not 10 at a time
    again = ex.lime_explain(image, predict, segments, num_samples=300, seed=5)
    other = ex.lime_explain(image, predict, segments, num_samples=300, seed=6)
    assert np.array_equal(ours.weights, again.weights)
    assert not np.array_equal(ours.weights, other.weights)

    explained = lime_image.LimeImageExplainer(random_state=5).explain_instance(
        image, lambda b: np.stack([1 - top_left_brightness(b), top_left_brightness(b)], 1),
        labels=(1,), top_labels=None, hide_color=None, num_samples=300, batch_size=300,
        segmentation_fn=lambda img: segments, random_seed=0)
    theirs = np.zeros_like(ours.weights)
    for feature, weight in explained.local_exp[1]:
        theirs[feature] = weight
    assert np.allclose(ours.weights, theirs, atol=1e-12)
    # only segments touching the corner matter, and the image files repeat byte for byte
    corner = np.unique(segments[:16, :16])
    assert set(np.argsort(-np.abs(ours.weights))[:3]) <= set(corner)
    paths = []
    for run, result in enumerate((ours, again)):
        positive, both = explainer.lime_panels(image, segments, result.weights)
        paths.append(explain_report.example_figure(
            tmp_path / f"{run}.png", image, "t", [("+", positive), ("+/-", both)], None))
    assert paths[0].read_bytes() == paths[1].read_bytes()


def brightness_cnn():
    """conv (positive weights, no bias, relu) → mean → dense: it answers to bright pixels."""
    import keras
    from keras import layers

    inputs = keras.Input((64, 64, 3), dtype="uint8")
    x = layers.Rescaling(1 / 255.0)(inputs)
    conv = layers.Conv2D(4, 3, padding="same", activation="relu")
    x = conv(x)
    dense = layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, dense(layers.GlobalAveragePooling2D()(x)))
    conv.set_weights([np.full((3, 3, 3, 4), 0.1, "float32"), np.zeros(4, "float32")])
    dense.set_weights([np.ones((4, 1), "float32"), np.zeros(1, "float32")])
    return model


def test_gradcam_points_at_the_only_evidence_in_the_image():
    images = np.zeros((3, 64, 64, 3), np.uint8)
    for i, (top, left) in enumerate(((0, 0), (40, 10), (20, 44))):
        images[i, top:top + 16, left:left + 16] = 200
    maps, p = ex.gradcam_function(brightness_cnn())(images)
    assert maps.shape == (3, 64, 64) and p.shape == (3,)
    assert maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    for heat, (top, left) in zip(maps, ((0, 0), (40, 10), (20, 44))):
        inside = heat[max(0, top - 2):top + 18, max(0, left - 2):left + 18].sum()
        assert inside > 0.97 * heat.sum()


def test_gradcam_through_a_nested_backbone():
    from deepfake_detector.models import build_model
    from deepfake_detector.params_check import complete_model

    model = build_model("xception", 64, complete_model("xception", {"input_size": 71,
                                                                     "dense": [8]}))
    maps, p = ex.gradcam_function(model)(np.stack([face(i)[0] for i in range(2)]))
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all() and p.shape == (2,)


def test_occlusion_finds_the_region_the_model_reads():
    image, _ = face()
    image = image.copy()
    image[:16, :16] = 255
    heat = ex.occlusion_maps(image[None], top_left_brightness, patch=8, stride=4)[0]
    assert heat[:16, :16].mean() > 0 and heat[24:, :].max() == 0 and heat[:, 24:].max() == 0


def test_scores_of_a_perfect_a_random_and_a_wrong_map():
    masks = np.stack([face(i)[1] for i in range(20)])
    assert masks.any(axis=(1, 2)).all()
    perfect = ex.map_scores(masks.astype(float), masks, area=0.1)
    assert perfect["pointing_game"] == 1.0 and perfect["n"] == 20
    share = masks.reshape(20, -1).mean(axis=1)
    expected_iou = np.mean(np.minimum(share, 0.1) / np.maximum(share, 0.1))
    assert perfect["iou"] == pytest.approx(expected_iou, abs=0.01)
    random = ex.random_map_scores(masks, area=0.1, seed=0)
    assert random["pointing_game"] == pytest.approx(share.mean(), abs=0.05)
    assert random["iou"] < perfect["iou"] / 2
    wrong = ex.map_scores(1.0 - masks, masks, area=0.1)
    assert wrong["pointing_game"] == 0.0 and wrong["iou"] == 0.0
    real_only = ex.map_scores(np.ones((2, 8, 8)), np.zeros((2, 8, 8)))
    assert real_only == {"pointing_game": None, "iou": None, "n": 0}


def test_examples_are_balanced_and_include_mistakes():
    y = np.array([1] * 30 + [0] * 30)
    predicted = y.copy()
    predicted[[0, 1, 2, 40]] = 1 - predicted[[0, 1, 2, 40]]
    chosen = ex.choose_examples(y, predicted, 8, seed=0)
    assert len(set(chosen)) == 8 and (y[chosen] == 1).sum() == 4
    wrong = chosen[predicted[chosen] != y[chosen]]
    assert sorted(y[wrong].tolist()) == [0, 1, 1]  # 2 wrong fakes, the one wrong real
    assert len(ex.choose_examples(y, y, 8, seed=0)) == 8  # no mistakes: all right ones


def test_band_share():
    heat = np.zeros((10, 10))
    heat[3:5] = 1
    assert ex.band_share(heat, (0.3, 0.5)) == 1.0
    assert ex.band_share(np.ones((10, 10)), (0.3, 0.5)) == pytest.approx(0.2)
