"""Preprocess decoding against Keras' default loader, on the same images, in one run.

    python benchmarks/preprocess.py [--size 64] [--repeats 3] [--folder DIR]

Uses ../shared/datasets/ffhq-stylegan-dev (256×256 real JPEGs) when present, else generates
256×256 built-in faces. Each way's time includes finding the files (Keras lists the folder
itself; ours lists it likewise inside the timer). One discarded run of each way first, then
the ways alternate, each first every other repeat. Prints both rates (median of the
repeats), ``ratio: X`` and the peak resident memory of each way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from deepfake_detector.images import is_image_path  # noqa: E402
from deepfake_detector.memory import peak_rss_bytes  # noqa: E402
from deepfake_detector.preprocess import decode_files  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets" / "ffhq-stylegan-dev"


def generated_folder(n: int) -> Path:
    from deepfake_detector.synthetic import SyntheticConfig, generate

    out = Path(tempfile.mkdtemp(prefix="bench-faces-"))
    generate(out, SyntheticConfig(n_images=n, image_size=256))
    return out


def image_files(folder: Path) -> list[str]:
    """Every image under ``folder``, sorted: timed inside each of our runs, as Keras' own
    listing is inside each of its runs."""
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and is_image_path(p))


def peak_rss_mb() -> float:
    return peak_rss_bytes() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--folder", type=Path, default=None)
    args = ap.parse_args()
    folder = args.folder or (SHARED if SHARED.is_dir() else None)
    if folder is None:
        print("../shared/datasets/ffhq-stylegan-dev not found: using 1,600 generated faces")
        folder = generated_folder(1600)
    n = len(image_files(folder))
    print(f"images: {n} from {folder} at {args.size}x{args.size}, cores: {os.cpu_count()}")

    def our_run() -> float:
        started = time.perf_counter()
        _, keep, *_ = decode_files(image_files(folder), args.size, 50_000_000, desc="ours")
        assert keep.all(), "every benchmark image should decode"
        return n / (time.perf_counter() - started)

    our_run()  # warm up (and our peak, before Keras is imported)
    ours_rss = peak_rss_mb()

    import keras  # the ecosystem's default way

    def keras_run() -> float:
        started = time.perf_counter()
        ds = keras.utils.image_dataset_from_directory(
            folder, labels="inferred", image_size=(args.size, args.size), batch_size=256,
            shuffle=False, verbose=False)
        count = sum(int(batch.shape[0]) for batch, _ in ds)
        return count / (time.perf_counter() - started)

    keras_run()  # warm up: TensorFlow's first dataset builds its kernels
    ours, keras_rates = [], []
    for r in range(args.repeats):  # alternating, each way first every other time
        for way in ([our_run, keras_run] if r % 2 == 0 else [keras_run, our_run]):
            (ours if way is our_run else keras_rates).append(way())
    keras_rss = peak_rss_mb()

    ours_med, keras_med = statistics.median(ours), statistics.median(keras_rates)
    print(f"preprocess (ours):                     {ours_med:8.0f} images/s "
          f"(runs: {', '.join(f'{r:.0f}' for r in ours)})")
    print(f"keras image_dataset_from_directory:    {keras_med:8.0f} images/s "
          f"(runs: {', '.join(f'{r:.0f}' for r in keras_rates)})")
    print(f"peak RSS: ours {ours_rss:.0f} MB (before Keras was imported); after Keras "
          f"{keras_rss:.0f} MB")
    print(f"ratio: {ours_med / keras_med:.2f}")


if __name__ == "__main__":
    main()
