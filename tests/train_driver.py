"""Run one short training in a fresh process (devices and TF_CONFIG are per process).

    python tests/train_driver.py WORKDIR DISTRIBUTE [CPU_DEVICES]
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from deepfake_detector.images import load_image  # noqa: E402
from deepfake_detector.params_check import complete_model, defaults  # noqa: E402
from deepfake_detector.synthetic import SyntheticConfig, make_image  # noqa: E402
from deepfake_detector.training import train  # noqa: E402


def split(n, offset):
    cfg = SyntheticConfig(image_size=32)
    y = np.arange(n) % 2
    x = np.stack([load_image(make_image(offset + i, bool(y[i]), cfg)[0], 32) for i in range(n)])
    return {"x": x, "y": y.astype(np.uint8), "paths": np.array([str(i) for i in range(n)])}


def prepare(work: Path) -> None:
    """Small train/val splits of built-in faces at 32×32 (written once, before any worker)."""
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    np.savez(data / "train.npz", **split(64, 0))
    np.savez(data / "val.npz", **split(16, 1000))


def main():
    work, kind = Path(sys.argv[1]), sys.argv[2]
    devices = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    data = work / "data"
    cfg = complete_model("tuned", {
        "epochs": 1, "batch_size": 8, "optimizer": "sgd", "learning_rate": 0.01,
        "conv": [{"filters": 8, "activation": "relu"}, {"filters": 4, "activation": "tanh"}],
        "dense": [8]})
    training = {**defaults()["training"], "distribute": kind, "cpu_devices": devices,
                "deterministic": False}
    seen = watch_weights()
    record = train("tuned", cfg, training=training,
                   seed=1, data_dir=data, model_path=work / "models" / "tuned.keras",
                   history_path=work / "metrics" / "tuned.json", root=work, image_size=32)
    if seen:  # the workers' own loop (multi_worker) scores validation after each epoch
        print("WEIGHTS " + seen[0])  # the model as this process scored it after epoch 1
    print("RESULT " + json.dumps(record))


def watch_weights() -> list[str]:
    """The sha256 of the model's weights each time the training loop scores validation
    (after each epoch, once the workers have averaged their state): the real ``predict``
    still runs; the digest only looks at what it was given."""
    import hashlib

    from deepfake_detector import training

    seen, score = [], training.predict

    def predict_and_record(model, x, *args, **kwargs):
        digest = hashlib.sha256()
        for value in model.get_weights():
            digest.update(np.ascontiguousarray(value).tobytes())
        seen.append(digest.hexdigest())
        return score(model, x, *args, **kwargs)

    training.predict = predict_and_record
    return seen


if __name__ == "__main__":
    main()
