"""One LIME explanation (64×64, tuned CNN, 1,000 samples): our way against the study's way,
in one run.

    python benchmarks/explain.py [--repeats 5] [--samples 1000] [--model models/tuned.keras]

Ours: the perturbed images built in one vectorised step and scored 500 at a time through a
compiled call (``explanation.lime_explain``). The study's: ``lime_image.LimeImageExplainer``
with its default batch of 10 through ``model.predict``. Both use the same SLIC segmentation of
the same image. Prints the median of ``--repeats`` runs of each and ``ratio: X`` (study's time
/ ours: how many times faster). Uses the trained model when there is one, else a freshly built
tuned CNN (the time does not depend on the weights).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=1000, help="LIME perturbations")
    ap.add_argument("--model", default=str(ROOT / "models" / "tuned.keras"))
    args = ap.parse_args()

    import keras
    import numpy as np
    from lime import lime_image

    from deepfake_detector.config import load_params
    from deepfake_detector.explanation import lime_explain, slic_segments
    from deepfake_detector.models import build_model
    from deepfake_detector.scoring import compiled_predict
    from deepfake_detector.synthetic import SyntheticConfig, make_image

    params = load_params(ROOT)
    if Path(args.model).is_file():
        model, source = keras.models.load_model(args.model, compile=False), args.model
    else:
        model, source = build_model("tuned", 64, params["train"]["tuned"]), "untrained tuned CNN"
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(make_image(7, True, SyntheticConfig())[0])))
    seg_cfg = params["explain"]["segments"]
    segment = lambda img: slic_segments(np.asarray(img, dtype=np.uint8), **seg_cfg)  # noqa: E731

    ours = compiled_predict(model, 500)

    def our_way(seed):
        return lime_explain(image, ours, segment(image), args.samples, seed)

    def study_way(seed):
        def classifier(batch):
            p = np.asarray(model.predict(np.asarray(batch), verbose=0)).reshape(-1)
            return np.stack([1 - p, p], axis=1)

        explainer = lime_image.LimeImageExplainer(random_state=seed)
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
            return explainer.explain_instance(image.astype("double"), classifier, top_labels=2,
                                              hide_color=None, num_samples=args.samples,
                                              segmentation_fn=segment)

    our_way(0), study_way(0)  # warm up: tracing, first-call allocations
    times = {"ours": [], "study": []}
    for r in range(args.repeats):
        for name, fn in (("ours", our_way), ("study", study_way)):
            t = time.perf_counter()
            fn(r)
            times[name].append(time.perf_counter() - t)
    ours_s, study_s = statistics.median(times["ours"]), statistics.median(times["study"])
    print(f"one LIME explanation, 64x64, {args.samples} samples, {source}, "
          f"{segment(image).max() + 1} SLIC segments, median of {args.repeats}")
    for name, label in (("ours", "ours (batch 500, compiled call)"),
                        ("study", "study's way (batch 10, model.predict)")):
        print(f"{label:40s} {statistics.median(times[name]):6.2f} s  "
              f"({', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"ratio: {study_s / ours_s:.1f}")


if __name__ == "__main__":
    main()
