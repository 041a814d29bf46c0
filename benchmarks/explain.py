"""One LIME explanation (64×64, tuned CNN, 1,000 samples): our way against the study's way,
in one run.

    python benchmarks/explain.py [--repeats 5] [--samples 1000] [--model models/tuned.keras]

Ours: the perturbed images built in one vectorised step and scored 500 at a time through a
compiled call (``explanation.lime_explain``). The study's: ``lime_image.LimeImageExplainer``
with its default batch of 10 through ``model.predict``. The strongest simple way:
``lime_image`` itself with a batch of 500 through the same compiled call as ours. All use the
same SLIC segmentation of the same image. Prints the median of ``--repeats`` runs of each,
``ratio: X`` (study's time / ours: how many times faster) and ``lime_image batch 500 compiled
/ ours: Y`` (what is left once lime_image is given our batch and call), and the model alone
on as many images through the same call (the floor any way has). Uses the trained
model when there is one, else a freshly built tuned CNN (the time does not depend on the
weights).
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

    def with_lime_image(predict, batch_size):
        def classifier(batch):
            p = np.asarray(predict(np.asarray(batch))).reshape(-1)
            return np.stack([1 - p, p], axis=1)

        def explain(seed):
            explainer = lime_image.LimeImageExplainer(random_state=seed)
            with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
                return explainer.explain_instance(
                    image.astype("double"), classifier, top_labels=2, hide_color=None,
                    num_samples=args.samples, batch_size=batch_size, segmentation_fn=segment)

        return explain

    batch = np.repeat(image[None], args.samples, axis=0)
    ways = {"ours": our_way,
            "study": with_lime_image(lambda b: model.predict(b, verbose=0), 10),
            # lime_image hands over float64 images: cast to uint8 as ours are, one traced call
            "lime_compiled": with_lime_image(lambda b: ours(b.astype(np.uint8)), 500),
            "model": lambda seed: ours(batch)}  # the floor: the model on as many images
    for fn in ways.values():
        fn(0)  # warm up: tracing, first-call allocations
    times = {name: [] for name in ways}
    for r in range(args.repeats):  # each repeat in the other order than the last
        for name, fn in (list(ways.items()) if r % 2 == 0 else list(ways.items())[::-1]):
            t = time.perf_counter()
            fn(r)
            times[name].append(time.perf_counter() - t)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"one LIME explanation, 64x64, {args.samples} samples, {source}, "
          f"{segment(image).max() + 1} SLIC segments, median of {args.repeats}")
    for name, label in (("ours", "ours (batch 500, compiled call)"),
                        ("study", "study's way (batch 10, model.predict)"),
                        ("lime_compiled", "lime_image (batch 500, compiled call)")):
        print(f"{label:40s} {median[name]:6.2f} s  "
              f"({', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"{'model alone (' + str(args.samples) + ' images, compiled call)':40s} "
          f"{median['model']:6.2f} s")
    print(f"ratio: {median['study'] / median['ours']:.1f}")
    print(f"lime_image batch 500 compiled / ours: {median['lime_compiled'] / median['ours']:.2f}")


if __name__ == "__main__":
    main()
