"""The robustness table's perturbations change images as their parameters say: lower JPEG
quality loses more, a wider blur and a smaller rescale remove more fine detail, and the
mildest setting of each leaves images nearly as they were."""

import io

import numpy as np
from PIL import Image

from deepfake_detector.datasets import perturb
from deepfake_detector.synthetic import SyntheticConfig, make_image


def faces(n: int = 6) -> np.ndarray:
    cfg = SyntheticConfig(image_size=64)
    return np.stack([np.asarray(Image.open(io.BytesIO(make_image(i, i % 2 == 1, cfg)[0]))
                                .convert("RGB")) for i in range(n)])


def error(x, y) -> float:
    return float(np.abs(x.astype(float) - y.astype(float)).mean())


def detail(x) -> float:
    """Fine detail: the mean absolute difference between neighbouring pixels."""
    x = x.astype(float)
    return float(np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean())


def test_each_perturbation_follows_its_parameter():
    x = faces()
    for kind, values in (("jpeg", [95, 70, 50, 30, 10]), ("blur", [0.5, 1.0, 1.5, 2.0]),
                         ("rescale", [0.75, 0.5, 0.25])):
        out = [perturb(x, kind, v) for v in values]
        assert all(o.shape == x.shape and o.dtype == np.uint8 for o in out), kind
        errors = [error(x, o) for o in out]
        assert errors == sorted(errors) and errors[0] < errors[-1], (kind, errors)
        if kind != "jpeg":  # blur and rescale take detail away, more the stronger they are
            details = [detail(o) for o in out]
            assert details == sorted(details, reverse=True), (kind, details)
            assert details[-1] < 0.6 * detail(x), (kind, details, detail(x))
    assert error(x, perturb(x, "rescale", 1.0)) == 0      # no rescale: the same pixels
    assert error(x, perturb(x, "blur", 0.0)) == 0         # no blur: the same pixels
    assert error(x, perturb(x, "jpeg", 100)) < error(x, perturb(x, "jpeg", 30)) / 4
