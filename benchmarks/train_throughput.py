"""Training throughput of the tuned CNN: our tf.data input against the study's way (the whole
split in memory as float32, ``model.fit`` on arrays), in one run; with augmentation on; and
the input pipeline alone, with parallel calls (as it runs when a GPU trains) and with one
call (as it runs when the CPU trains).

    python benchmarks/train_throughput.py [--n 20000] [--steps 200] [--epochs 4] [--repeats 2]

The split is written once as a ``.npz``, as the preprocess stage writes it. Each way runs in
its own process (so each peak RSS is its own) and fits ``--epochs`` capped epochs, timed on
all but the first (which includes tracing); the ways alternate ``--repeats`` times and each
rate is the median of its timed epochs. Memory is each process's peak RSS, and that peak
above the process's RSS right after importing TensorFlow and Keras (713 MB here, the same for
every way, before any data). The ways:

- ``in_memory``: the reference, ``np.load`` then ``astype(float32)`` and ``model.fit``;
- ``keras_uint8``: ``model.fit`` on the uint8 arrays (Keras 3's own array adapter);
- ``streamed``: ours, the pipeline's ``training_input.batches`` over ``images_in_graph``;
- ``augmented``: ours with every augmentation kind on at p 0.5;
- ``deterministic``: ours under ``training.deterministic: true`` (the pipeline's default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from deepfake_detector.params_check import complete_model, defaults  # noqa: E402

CFG = complete_model("tuned", {
    "conv": [{"filters": 128, "activation": "relu"}, {"filters": 64, "activation": "tanh"},
             {"filters": 32, "activation": "tanh"}, {"filters": 16, "activation": "tanh"}],
    "batch_norm": {"momentum": 0.95, "epsilon": 0.005}, "dense": [64, 32],
    "optimizer": "sgd", "learning_rate": 0.01, "batch_size": 16})
WAYS = ("streamed", "in_memory", "augmented", "keras_uint8", "deterministic")


def augment_all(p: float = 0.5) -> dict:
    from deepfake_detector.augmentation import KINDS  # imports TensorFlow: children only

    return {**defaults()["training"]["augment"], **{k: True for k in KINDS}, "p": p}


def write_split(path: Path, n: int, size: int) -> None:
    import numpy as np

    from deepfake_detector.reproducible import savez

    rng = np.random.default_rng(0)
    savez(path, x=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
          y=(rng.random(n) < 0.5).astype(np.uint8))


def run_one(way: str, split: Path, steps: int, epochs: int) -> dict:
    import numpy as np

    from deepfake_detector.memory import peak_rss_bytes, rss_bytes
    from deepfake_detector.training import configure

    configure(42, {**defaults()["training"], "deterministic": way == "deterministic"})
    import keras

    baseline = rss_bytes()

    from deepfake_detector.datasets import load_split
    from deepfake_detector.models import build_model, make_optimizer
    from deepfake_detector.training_input import batches, images_in_graph

    model = build_model("tuned", 64, CFG)
    model.compile(optimizer=make_optimizer(CFG), loss="binary_crossentropy")
    times = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: times.append(time.perf_counter()),
        on_epoch_end=lambda e, logs: times.append(time.perf_counter()))
    bs = CFG["batch_size"]
    fit = {"epochs": epochs, "callbacks": [timer], "verbose": 0}
    if way in ("in_memory", "keras_uint8"):
        data = load_split(split)
        x = data["x"].astype(np.float32) if way == "in_memory" else data["x"]
        del data
        model.fit(x, data_y(split), batch_size=bs, steps_per_epoch=steps, **fit)
    else:
        augment = augment_all() if way == "augmented" else None
        model.fit(batches(images_in_graph(split), data_y(split), bs, shuffle=True, seed=42,
                          augment=augment, max_steps=steps), shuffle=False, **fit)
    rates = [steps * bs / (times[i + 1] - times[i]) for i in range(2, 2 * epochs, 2)]
    return {"way": way, "rates": rates, "peak_rss_mb": peak_rss_bytes() / 2**20,
            "baseline_mb": baseline / 2**20}


def data_y(split: Path):
    from deepfake_detector.datasets import load_split

    return load_split(split, keys=("y",))["y"].astype("float32")


def input_only(size: int, n: int, parallel: bool, batch_size: int = 32,
               seconds: float = 5.0) -> float:
    """Images per second the input pipeline delivers with every augmentation kind on."""
    import numpy as np

    from deepfake_detector.training_input import batches, images_in_graph

    rng = np.random.default_rng(1)
    images = images_in_graph(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    y = (rng.random(n) < 0.5).astype(np.uint8)
    dataset = batches(images, y, batch_size, shuffle=True, seed=1, augment=augment_all(),
                      parallel=parallel)
    for _ in dataset.take(3):  # tracing
        pass
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for xb, _ in dataset:
            count += int(xb.shape[0])
    return count / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="images in the split")
    ap.add_argument("--steps", type=int, default=200, help="batches per timed epoch")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run (the first untimed)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each way, alternating")
    ap.add_argument("--ways", default=",".join(WAYS), help="which ways to run")
    ap.add_argument("--way", help=argparse.SUPPRESS)
    ap.add_argument("--split", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.way == "input":
        print("RESULT " + json.dumps({f"{s}/{parallel}": input_only(s, n, parallel)
                                      for parallel in (True, False)
                                      for s, n in ((64, 4000), (128, 2000))}))
        return
    if args.way:
        print("RESULT " + json.dumps(run_one(args.way, Path(args.split), args.steps,
                                             args.epochs)))
        return
    ways = args.ways.split(",")
    print(f"tuned CNN, batch 16, {args.n} images of 64x64, {args.steps} steps an epoch, "
          f"{args.epochs - 1} timed epochs a run, {args.repeats} runs of each way")
    runs: dict[str, list[dict]] = {}

    def child(*extra) -> dict:
        done = subprocess.run([sys.executable, __file__, *extra], capture_output=True,
                              text=True)
        if done.returncode:
            sys.exit(f"{extra} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.split("RESULT ", 1)[1])

    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "train.npz"
        write_split(split, args.n, 64)
        for _ in range(args.repeats):
            for way in ways:
                runs.setdefault(way, []).append(child(
                    "--way", way, "--split", str(split), "--steps", str(args.steps),
                    "--epochs", str(args.epochs)))
    results = {}
    for way, rs in runs.items():
        rates = [rate for r in rs for rate in r["rates"]]
        results[way] = {"images_per_s": statistics.median(rates), "slowest": min(rates),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                        "above_mb": max(r["peak_rss_mb"] - r["baseline_mb"] for r in rs)}
        r = results[way]
        print(f"{way:14s} {r['images_per_s']:8.0f} images/s (median of "
              f"{', '.join(f'{x:.0f}' for x in rates)})   peak RSS {r['peak_rss_mb']:6.0f} MB"
              f" ({r['above_mb']:.0f} MB above the import baseline)")
    print(f"uint8 arrays: {args.n * 64 * 64 * 3 / 2**20:.0f} MB; float32 copy: "
          f"{args.n * 64 * 64 * 3 * 4 / 2**20:.0f} MB")
    m = results.get("in_memory")
    for way, r in results.items():
        if m and way != "in_memory":
            print(f"{way} / in_memory throughput: {r['images_per_s'] / m['images_per_s']:.2f}"
                  f"; slowest / median epoch: {r['slowest'] / r['images_per_s']:.2f}"
                  f"; memory: 1/{m['peak_rss_mb'] / r['peak_rss_mb']:.1f} of in_memory's, "
                  f"1/{m['above_mb'] / r['above_mb']:.1f} above the import baseline")
    rates = child("--way", "input")
    for parallel, how in ((True, "parallel calls, as when a GPU trains"),
                          (False, "one call, as when the CPU trains")):
        print(f"input pipeline alone, every augmentation kind at p 0.5, {how}: "
              f"{rates[f'64/{parallel}']:.0f} images/s at 64 px, "
              f"{rates[f'128/{parallel}']:.0f} at 128 px")
    if m and "streamed" in results:
        print(f"ratio: {results['streamed']['images_per_s'] / m['images_per_s']:.2f}")


if __name__ == "__main__":
    main()
