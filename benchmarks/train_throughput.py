"""Training throughput of the tuned CNN: our streamed tf.data input against the study's way
(the whole split in memory as float32, ``model.fit`` on arrays), in one run.

    python benchmarks/train_throughput.py [--n 20000] [--steps 200] [--repeats 2]

Each way runs in its own process (so each peak RSS is its own) and fits three capped epochs,
timed on the last two (the first includes tracing); the ways alternate ``--repeats`` times
and each rate is the median of its timed epochs. Also times the streamed way with
``training.deterministic: true``, the price of bit-identical reruns.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
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


def run_one(way: str, n: int, steps: int) -> dict:
    import numpy as np

    from deepfake_detector.memory import peak_rss_bytes
    from deepfake_detector.training import configure

    configure(42, {**defaults()["training"], "deterministic": way == "deterministic"})
    import keras

    from deepfake_detector.datasets import batches
    from deepfake_detector.models import build_model, make_optimizer

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    y = (rng.random(n) < 0.5).astype(np.uint8)
    model = build_model("tuned", 64, CFG)
    model.compile(optimizer=make_optimizer(CFG), loss="binary_crossentropy")
    times = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: times.append(time.perf_counter()),
        on_epoch_end=lambda e, logs: times.append(time.perf_counter()))
    bs = CFG["batch_size"]
    if way == "in_memory":
        x_float = x.astype(np.float32)  # the study's way: the split as float32 arrays
        del x
        model.fit(x_float, y.astype(np.float32), batch_size=bs, epochs=3,
                  steps_per_epoch=steps, callbacks=[timer], verbose=0)
    else:
        model.fit(batches(x, y, bs, shuffle=True, seed=42, max_steps=steps), epochs=3,
                  callbacks=[timer], verbose=0, shuffle=False)
    rates = [steps * bs / (times[i + 1] - times[i]) for i in (2, 4)]
    return {"way": way, "rates": rates,
            "peak_rss_mb": peak_rss_bytes() / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="images in the split")
    ap.add_argument("--steps", type=int, default=200, help="batches per timed epoch")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each way, alternating")
    ap.add_argument("--way", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.way:
        print("RESULT " + json.dumps(run_one(args.way, args.n, args.steps)))
        return
    print(f"tuned CNN, batch 16, {args.n} images of 64x64, {args.steps} steps an epoch, "
          f"{args.repeats} runs of each way")
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for way in ("streamed", "in_memory", "deterministic"):
            done = subprocess.run([sys.executable, __file__, "--way", way, "--n", str(args.n),
                                   "--steps", str(args.steps)], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{way} failed:\n{done.stderr[-3000:]}")
            runs.setdefault(way, []).append(json.loads(done.stdout.split("RESULT ", 1)[1]))
    results = {}
    for way, rs in runs.items():
        rates = [rate for r in rs for rate in r["rates"]]
        results[way] = {"images_per_s": statistics.median(rates),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)}
        r = results[way]
        print(f"{way:14s} {r['images_per_s']:8.0f} images/s (median of "
              f"{', '.join(f'{x:.0f}' for x in rates)})   peak RSS {r['peak_rss_mb']:6.0f} MB")
    s, m, d = results["streamed"], results["in_memory"], results["deterministic"]
    print(f"uint8 arrays: {args.n * 64 * 64 * 3 / 2**20:.0f} MB; float32 copy: "
          f"{args.n * 64 * 64 * 3 * 4 / 2**20:.0f} MB")
    print(f"deterministic / streamed throughput: {d['images_per_s'] / s['images_per_s']:.2f}")
    print(f"memory in_memory / streamed: {m['peak_rss_mb'] / s['peak_rss_mb']:.2f}")
    print(f"ratio: {s['images_per_s'] / m['images_per_s']:.2f}")


if __name__ == "__main__":
    main()
