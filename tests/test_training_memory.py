"""Streaming keeps training memory near the uint8 arrays: 150,000 images at 64×64."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_tuned_cnn_on_150k_images_stays_within_arrays_plus_1_5_gb(tmp_path):
    n, n_val = 150_000, 2_000
    (tmp_path / "data").mkdir()
    rng = np.random.default_rng(0)
    for name, count in (("train", n), ("val", n_val)):  # made here: not in the measured process
        x = rng.integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)
        np.savez(tmp_path / "data" / f"{name}.npz", x=x, paths=np.array(["p"] * count),
                 y=(np.arange(count) % 2).astype(np.uint8))
        del x
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'src')!r})
        from pathlib import Path
        work = Path({str(tmp_path)!r})
        from deepfake_detector.training import train
        import yaml
        cfg = yaml.safe_load(open({str(ROOT / 'params.yaml')!r}))["train"]["tuned"]
        cfg["epochs"] = 1  # the study's tuned CNN, one capped epoch
        from deepfake_detector.params_check import defaults
        training = {{**defaults()["training"], "max_steps_per_epoch": 30,
                    "deterministic": False}}
        train("tuned", cfg, training=training, seed=1,
              data_dir=work / "data", model_path=work / "tuned.keras",
              history_path=work / "tuned.json", root=work, image_size=64)
        from deepfake_detector.memory import peak_rss_bytes
        print("PEAK", peak_rss_bytes())
    """)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "CI": "1",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=1200, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    peak = int(done.stdout.split("PEAK ")[1].split()[0])
    arrays = (n + n_val) * 64 * 64 * 3
    print(f"peak RSS {peak / 2**30:.2f} GiB; uint8 arrays {arrays / 2**30:.2f} GiB; "
          f"float32 copy would be {4 * arrays / 2**30:.2f} GiB")
    assert peak < arrays + 1.5 * 2**30
