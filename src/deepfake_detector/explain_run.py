"""The explain stage's work: explain chosen test images, score the maps against the true
manipulation masks, average Grad-CAM over many images, and write the page and figures."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from . import explain_report as report
from . import explainer
from . import explanation as ex
from .scoring import CLASS_NAMES, apply_temperature, label


def run(root: Path, params: dict, out_dir: Path) -> dict:
    """Writes ``out_dir`` (figures, index.html); returns scores, aggregate view and timings."""
    import keras

    from .datasets import load_split
    from .model_settings import read_settings
    from .paths import Workspace
    from .scoring import compiled_predict

    cfg, seed = params["explain"], params["base"]["seed"]
    started = time.perf_counter()
    workspace = Workspace(root)
    test = load_split(workspace.processed("test"))
    name = cfg["model"]
    evaluated = read_settings(workspace.settings(name))  # temperature, threshold

    def load(model_name):
        return keras.models.load_model(workspace.model(model_name), compile=False)

    model = load(name)
    predict = compiled_predict(model, int(cfg["batch_size"]))
    p = apply_temperature(predict(test["x"]), evaluated["temperature"])
    cams = {m: ex.gradcam_function(model if m == name else load(m),
                                   cfg["gradcam_min_size"])
            for m in cfg["gradcam_models"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, lime_maps = _explain_examples(out_dir, name, model, predict, cams, test, p,
                                        evaluated["threshold"], cfg, seed)
    timings = {"lime_seconds_median": statistics.median(r["lime_seconds"] for r in rows)
               if rows else None, "lime_images": len(rows)}
    scores = _score_against_masks(test, rows, lime_maps, predict, cams, cfg, seed, timings)
    aggregate = _aggregate(out_dir, name, cams.get(name) or next(iter(cams.values())), test, cfg)
    report.index_page(out_dir / "index.html", name, rows, scores, aggregate,
                      {"mean_maps": "mean_gradcam.png"})
    timings["total_seconds"] = time.perf_counter() - started
    return {"scores": scores, "aggregate": aggregate, "timings": timings, "examples": rows}


def _explain_examples(out_dir, name, model, predict, cams, test, p, threshold, cfg, seed):
    """LIME, Grad-CAM per CNN, occlusion and first-layer activations of the chosen images."""
    x, y, masks = test["x"], test["y"].astype(int), test.get("masks")
    chosen = ex.choose_examples(y, (label(p, threshold) == "fake").astype(int),
                                int(cfg["n_images"]), seed)
    rows, lime_maps = [], []
    for k, i in enumerate(chosen):
        image = x[i]
        segments = ex.slic_segments(image, **cfg["segments"])
        t = time.perf_counter()
        lime = ex.lime_explain(image, predict, segments, int(cfg["num_samples"]), seed + k,
                               int(cfg["batch_size"]))
        lime_seconds = time.perf_counter() - t
        lime_maps.append(lime.heatmap())
        positive, both = explainer.lime_panels(image, segments, lime.weights)
        panels = [("LIME: top regions for fake", positive),
                  ("LIME: fake (green) / real (red)", both)]
        panels += [(f"Grad-CAM {m}", cam(image[None])[0][0]) for m, cam in cams.items()]
        panels.append(("occlusion",
                       ex.occlusion_maps(image[None], predict, **cfg["occlusion"])[0]))
        truth, predicted = CLASS_NAMES[y[i]], label(p[i], threshold)
        stem = f"example_{k:02d}_{truth}"
        report.example_figure(out_dir / f"{stem}.png", image,
                              f"{Path(str(test['paths'][i])).name}: truth {truth}, "
                              f"{name} says {predicted} (P(fake) {p[i]:.3f})",
                              panels, masks[i] if masks is not None and y[i] else None)
        report.activation_grid(out_dir / f"{stem}_activations.png",
                               ex.first_layer_activations(model, image),
                               f"{name}: first convolution layer, {truth} image")
        rows.append({"index": int(i), "file": str(test["paths"][i]), "truth": truth,
                     "predicted": predicted, "p_fake": float(p[i]),
                     "threshold": float(threshold), "correct": truth == predicted,
                     "figure": f"{stem}.png", "activations": f"{stem}_activations.png",
                     "lime_seconds": lime_seconds})
    return rows, lime_maps


def _score_against_masks(test, rows, lime_maps, predict, cams, cfg, seed, timings) -> dict:
    """Pointing game and IoU of each method's maps over test fakes, beside random and perfect
    maps. Empty when the data has no masks (anything but the built-in dataset)."""
    x, y, masks = test["x"], test["y"].astype(int), test.get("masks")
    fakes = np.flatnonzero(y == 1)[:int(cfg["score_fakes"])]
    if masks is None or not masks[fakes].any():
        return {}
    area = float(cfg["area"])
    truth = masks[fakes]
    scores = {"model": cfg["model"], "area": area, "n_fakes": len(fakes),
              "random": ex.random_map_scores(truth, area, seed=seed),
              "perfect": ex.map_scores(truth, truth, area)}
    t = time.perf_counter()
    for m, cam in cams.items():
        scores[f"gradcam_{m}"] = ex.map_scores(cam(x[fakes])[0], truth, area)
    timings["gradcam_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    scores["occlusion"] = ex.map_scores(
        ex.occlusion_maps(x[fakes], predict, **cfg["occlusion"]), truth, area)
    timings["occlusion_seconds"] = time.perf_counter() - t
    explained = [j for j, row in enumerate(rows) if row["truth"] == "fake"]
    scores["lime"] = ex.map_scores(np.array([lime_maps[j] for j in explained]),
                                   masks[[rows[j]["index"] for j in explained]], area)
    return scores


def _aggregate(out_dir, name, cam, test, cfg) -> dict:
    """Mean Grad-CAM over many test fakes and reals (faces are roughly aligned), and the share
    of it in the eye band: the study's "the eyes mattered", measured."""
    x, y, masks = test["x"], test["y"].astype(int), test.get("masks")
    band = tuple(cfg["eye_band"])
    n = int(cfg["aggregate_images"])
    mean_fake = cam(x[np.flatnonzero(y == 1)[:n]])[0].mean(axis=0)
    mean_real = cam(x[np.flatnonzero(y == 0)[:n]])[0].mean(axis=0)
    panels = [(f"Grad-CAM {name}, test reals", mean_real),
              (f"Grad-CAM {name}, test fakes", mean_fake)]
    aggregate = {"images_per_class": int(min(n, (y == 1).sum(), (y == 0).sum())),
                 "eye_band_rows": list(band), "band_area_share": round(band[1] - band[0], 6),
                 "fake_gradcam_share_in_band": ex.band_share(mean_fake, band),
                 "real_gradcam_share_in_band": ex.band_share(mean_real, band)}
    if masks is not None and masks[y == 1].any():
        mean_mask = masks[y == 1].mean(axis=0)
        panels.append(("true manipulated region, test fakes", mean_mask))
        aggregate["mask_share_in_band"] = ex.band_share(mean_mask, band)
    report.mean_maps_figure(out_dir / "mean_gradcam.png", panels, band)
    aggregate["summary"] = (
        f"On average {aggregate['fake_gradcam_share_in_band']:.0%} of the {name} model's "
        f"Grad-CAM evidence on fakes lies in the eye band (rows {band[0]:.0%}–{band[1]:.0%}), "
        f"which covers {band[1] - band[0]:.0%} of the image"
        + (f"; {aggregate['mask_share_in_band']:.0%} of the true manipulated pixels do."
           if "mask_share_in_band" in aggregate else "."))
    return aggregate
