"""tf.distribute: mirrored over two logical CPU devices, and two workers on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import ROOT
from train_driver import prepare

pytestmark = pytest.mark.slow
DRIVER = str(ROOT / "tests" / "train_driver.py")


def env(tmp_path, **extra):
    out = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG",)}
    out["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out.update(extra)
    return out


def loads(path):
    import keras
    import numpy as np

    model = keras.models.load_model(path)
    out = np.asarray(model(np.zeros((2, 32, 32, 3), np.uint8)))
    return out.shape == (2, 1)


def test_mirrored_over_two_logical_cpus(tmp_path):
    prepare(tmp_path)
    done = subprocess.run([sys.executable, DRIVER, str(tmp_path), "mirrored", "2"],
                          env=env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert record["epochs_run"] == 1 and record["replicas"] == 2
    assert loads(tmp_path / "models" / "tuned.keras")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_two_processes_on_loopback(tmp_path):
    prepare(tmp_path)
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers},
                                "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, DRIVER, str(tmp_path), "multi_worker"],
            env=env(tmp_path, TF_CONFIG=tf_config), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            outs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            proc.kill()
    for index, (rc, out, err) in enumerate(outs):
        assert rc == 0, f"worker {index}: {err[-3000:]}"
        assert f"epoch 1/1 worker {index}" in out
    chief = json.loads(outs[0][1].split("RESULT ", 1)[1])
    assert chief["epochs_run"] == 1 and chief["run_id"] and chief["replicas"] == 2
    assert json.loads(outs[1][1].split("RESULT ", 1)[1]) == {"model": "tuned", "worker": 1}
    # in sync: both workers hold the same model after the epoch, bit for bit, BatchNorm's
    # moving statistics included (averaged over workers), and report the same validation
    weights = [out.split("WEIGHTS ", 1)[1].split()[0] for _, out, _ in outs]
    assert weights[0] == weights[1]
    val = [next(line for line in out.splitlines() if line.startswith("epoch 1/1"))
           .split("val_loss=")[1] for _, out, _ in outs]
    assert val[0] == val[1]
    assert loads(tmp_path / "models" / "tuned.keras")
    assert not list((tmp_path / "models").glob(".worker*"))
