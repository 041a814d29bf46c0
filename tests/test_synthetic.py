"""The built-in dataset: deterministic, balanced, with masks that mark the manipulation."""

import numpy as np

from deepfake_detector.synthetic import FAMILIES, SyntheticConfig, family_of, generate, make_image


def test_same_seed_same_bytes_other_seed_differs():
    cfg = SyntheticConfig(seed=3)
    assert make_image(5, True, cfg)[0] == make_image(5, True, cfg)[0]
    assert make_image(5, True, cfg)[0] != make_image(5, True, SyntheticConfig(seed=4))[0]


def test_generate_is_balanced_and_keeps_masks(tmp_path):
    counts = generate(tmp_path, SyntheticConfig(n_images=40, image_size=64))
    assert counts == {"real": 20, "fake": 20}
    assert len(list((tmp_path / "real").glob("*.jpg"))) == 20
    with np.load(tmp_path / "masks.npz") as z:
        names, masks, families = z["names"], z["masks"], z["families"]
    assert masks.shape == (40, 64, 64) and masks.dtype == np.uint8
    is_fake = np.array([n.startswith("fake/") for n in names])
    assert masks[~is_fake].max() == 0  # real images: no manipulation
    assert (masks[is_fake].reshape(20, -1).sum(axis=1) > 0).all()  # every fake marked
    assert set(families[~is_fake]) == {""} and set(families[is_fake]) == set(FAMILIES)


def test_the_recorded_family_is_the_one_drawn():
    # an eye_mismatch mask sits on one eye: far smaller than a swapped face or a GAN patch
    cfg = SyntheticConfig(image_size=64)
    areas = {f: [] for f in FAMILIES}
    for i in range(30):
        areas[family_of(i, True, cfg)].append(make_image(i, True, cfg)[1].mean())
    assert family_of(0, False, cfg) == ""
    assert max(areas["eye_mismatch"]) < min(areas["face_swap"] + areas["gan_artifacts"])


def test_each_family_changes_pixels_inside_its_mask():
    for family in ("face_swap", "gan_artifacts", "eye_mismatch"):
        cfg = SyntheticConfig(families=(family,), image_size=64)
        _, mask = make_image(11, True, cfg)
        assert 0 < mask.mean() < 0.5, family  # a region, not the whole picture


def test_families_can_be_switched_off():
    cfg = SyntheticConfig(families=())
    data, mask = make_image(2, True, cfg)
    assert mask.max() == 0
