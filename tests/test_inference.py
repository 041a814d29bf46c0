"""The decision rule, written once: "fake" when the calibrated P(fake) reaches the threshold."""

import io

import numpy as np
from PIL import Image

from deepfake_detector.inference import Detector
from deepfake_detector.params_check import complete_model
from deepfake_detector.scoring import label


def test_label_is_fake_from_the_threshold_up():
    assert label(0.3, 0.3) == "fake" and label(0.2999, 0.3) == "real"
    assert type(label(np.float32(0.9), 0.5)) is str  # JSON-ready, not a numpy string
    assert label(np.array([0.1, 0.5, 0.7]), 0.5).tolist() == ["real", "fake", "fake"]


def test_detector_labels_with_its_own_threshold():
    from deepfake_detector.models import build_model

    detector = Detector(build_model("baseline", 16, complete_model("baseline")),
                        {"image_size": 16, "threshold": 0.8})
    assert [detector.label(p) for p in (0.79, 0.8, 0.95)] == ["real", "fake", "fake"]
    assert detector.label(np.array([0.79, 0.8])).tolist() == ["real", "fake"]
    png = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 60, 30)).save(png, "PNG")
    image, _ = detector.prepare(png.getvalue())
    p = round(float(detector.probabilities(image[None])[0]), 6)  # score() reports 6 decimals
    for threshold, expected in ((p, "fake"), (p + 1e-6, "real")):
        detector.settings["threshold"] = threshold
        assert detector.score([png.getvalue()])[0]["label"] == expected
