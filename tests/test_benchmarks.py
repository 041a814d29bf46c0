"""The benchmark runs and reports measured rates and their ratio (the figure itself is
quoted in the README from a full run; timings are too noisy for a CI gate)."""

import re
import subprocess
import sys

import pytest
from conftest import ROOT

from deepfake_detector.synthetic import SyntheticConfig, generate


def run_benchmark(script: str, *args: str) -> tuple[str, float]:
    """Run ``benchmarks/<script>`` to the end; its output and the ``ratio:`` it printed."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, float(re.search(r"^ratio: ([\d.]+)$", done.stdout, re.M).group(1))


@pytest.mark.slow
def test_preprocess_benchmark_prints_rates_and_ratio(tmp_path):
    generate(tmp_path, SyntheticConfig(n_images=200, image_size=256))
    out, ratio = run_benchmark("preprocess.py", "--folder", str(tmp_path), "--repeats", "1")
    assert "images: 200" in out
    rates = re.findall(r"(\d+) images/s", out)
    assert len(rates) == 2 and all(int(r) > 0 for r in rates)
    assert ratio == pytest.approx(int(rates[0]) / int(rates[1]), rel=0.02)
    assert "peak RSS" in out


@pytest.mark.slow
def test_explain_benchmark_prints_both_times_and_ratio():
    out, ratio = run_benchmark("explain.py", "--repeats", "1", "--samples", "200",
                               "--model", "absent.keras")
    assert "untrained tuned CNN" in out
    times = [float(t) for t in re.findall(r"\s([\d.]+) s  \(", out)]
    assert len(times) == 3 and all(t > 0 for t in times)
    assert ratio == pytest.approx(times[1] / times[0], rel=0.1)
    compiled = float(re.search(r"^lime_image batch 500 compiled / ours: ([\d.]+)$", out,
                               re.M).group(1))
    assert compiled == pytest.approx(times[2] / times[0], rel=0.1)
    assert float(re.search(r"^model alone \(200 images, compiled call\)\s+([\d.]+) s$", out,
                           re.M).group(1)) > 0


@pytest.mark.slow
def test_serving_benchmark_prints_latencies_ratio_and_errors():
    out, ratio = run_benchmark("serving.py", "--calls", "40", "--clients", "2",
                               "--requests", "10")
    p50 = [float(t) for t in re.findall(r"p50\s+([\d.]+) ms$", out, re.M)]
    assert len(p50) == 3 and ratio == pytest.approx(p50[1] / p50[0], rel=0.1)
    above_bare = float(re.search(r"^ours / bare compiled call: ([\d.]+)$", out, re.M).group(1))
    assert above_bare == pytest.approx(p50[0] / p50[2], rel=0.1)
    alone, with_it, more = re.search(r"^provenance \(no manifest: metadata \+ manifest check\) "
                                     r"p50 ([\d.]+) ms alone; ours with it p50 ([\d.]+) ms, "
                                     r"([+-][\d.]+) ms over ours without$", out, re.M).groups()
    assert 0 < float(alone) < float(with_it)
    assert float(more) == pytest.approx(float(with_it) - p50[0], abs=0.011)
    assert re.search(r"throughput \d+ requests/s; latency p50 [\d.]+ ms, p99 [\d.]+ ms; "
                     r"errors 0", out)


@pytest.mark.slow
def test_video_benchmark_splits_its_time_and_prints_ratio_and_memory():
    out, ratio = run_benchmark("video.py", "--seconds", "6", "--repeats", "1",
                               "--memory-minutes", "1.5")
    ours = re.search(r"^ours: ([\d.]+) s for 12 sampled frames, (\d+) scored \((\w+)\); split: "
                     r"decode ([\d.]+) s, face detection ([\d.]+) s, model ([\d.]+) s$", out, re.M)
    naive = re.search(r"^naive .*: ([\d.]+) s for (\d+) scored$", out, re.M)
    assert ours and naive, out
    assert ours.group(2) == naive.group(2)  # both ways scored the same frames
    assert sum(float(ours.group(i)) for i in (4, 5, 6)) <= float(ours.group(1)) + 0.01
    assert ratio == pytest.approx(float(naive.group(1)) / float(ours.group(1)), abs=0.06)
    memory = re.search(r"1 min \((\d+) frames scored\) (\d+) MiB; 1.5 min \((\d+) frames\) "
                       r"(\d+) MiB; memory ratio: ([\d.]+)$", out, re.M)
    assert memory and memory.group(1) == "120" and memory.group(3) == "180", out
    own = re.search(r"above the loaded model: 1 min (-?\d+) MiB; 1.5 min (-?\d+) MiB$", out, re.M)
    assert own and int(own.group(2)) < 200, out  # 50% more frames: no more than noise


def test_cross_validation_folds_test_every_image_once_and_never_train_on_it(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import real_data

    generate(tmp_path / "faces", SyntheticConfig(n_images=30, image_size=16, seed=3))
    folders = real_data.fold_sources(tmp_path / "cv", 3, seed=0, faces=tmp_path / "faces")
    tested = []
    for folder in folders:
        names = {split: {(f.parent.name, f.name) for f in (folder / split).glob("*/*.jpg")}
                 for split in ("train", "val", "test")}
        assert sum(map(len, names.values())) == 30  # every image once per fold
        assert not (names["train"] & names["test"] or names["val"] & names["test"]
                    or names["train"] & names["val"])
        assert {c for c, _ in names["test"]} == {"real", "fake"} and len(names["val"]) == 4
        tested += names["test"]
    assert len(tested) == len(set(tested)) == 30  # each image tested in exactly one fold
