"""Faults: a training stage killed with SIGTERM (the stage process alone, as a scheduler or the
OOM guard would) or SIGINT (Ctrl-C: the whole process group) leaves no model file, its MLflow
run ends KILLED, and the next `dvc repro` trains cleanly. Atomic writes keep old files whole."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import time

import pytest
import yaml
from conftest import ROOT
from pipeline_fixture import BIN, pipeline_env, sh

from deepfake_detector.atomic import atomic_path, write_text
from deepfake_detector.config import copy_checkout


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = write_text(tmp_path / "out.json", "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out.json"]
    write_text(target, "new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def runs(repo, name):
    """(status, number of logged metric values) of each MLflow run named ``name``."""
    db = repo / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as con:
        try:
            return con.execute(
                "SELECT r.status, (SELECT COUNT(*) FROM metrics m WHERE m.run_uuid = r.run_uuid) "
                "FROM runs r WHERE r.name = ? ORDER BY r.start_time", (name,)).fetchall()
        except sqlite3.OperationalError:  # tables not created yet
            return []


def stage_pids(repo, script):
    pids = []
    for entry in os.listdir("/proc"):
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            if (any(part.decode(errors="replace").endswith(script) for part in cmd)
                    and os.readlink(f"/proc/{entry}/cwd") == str(repo)):
                pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


def start_and_kill(repo, signum, whole_group):
    """`dvc repro train@baseline`, killed once its run has logged an epoch."""
    before = len(runs(repo, "baseline"))
    # A terminal's Ctrl-C: started from a background job (as CI may be), the test inherits
    # SIGINT ignored, and Python keeps ignoring it; the dvc under test gets it back.
    proc = subprocess.Popen([str(BIN / "dvc"), "repro", "train@baseline"], cwd=repo,
                            env=pipeline_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        now = runs(repo, "baseline")
        if len(now) > before and now[-1][0] == "RUNNING" and now[-1][1] > 0:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stdout.read()}"
    if whole_group:
        os.killpg(proc.pid, signum)
        sent = f"{signum!r} to process group {proc.pid}"
    else:
        (pid,) = stage_pids(repo, "stages/train.py")
        os.kill(pid, signum)
        sent = f"{signum!r} to stage process {pid}"
    out, _ = proc.communicate(timeout=120)
    epochs = [line.split()[1] for line in out.splitlines() if line.startswith("Epoch ")]
    note = f"sent {sent} at epoch {epochs[-1] if epochs else '?'} (of those printed); then:\n"
    return proc.returncode, out, note + out[-1500:]


@pytest.mark.slow
def test_killed_training_leaves_no_model_and_a_killed_run(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["synthetic"]["n_images"] = 200
    baseline = params["train"]["baseline"]
    baseline["epochs"] = 40  # long enough to be killed mid-way: no early stop below
    baseline["early_stopping"]["patience"] = 100
    repo = copy_checkout(ROOT, tmp_path / "repo", params)
    for signum, whole_group in ((signal.SIGTERM, False), (signal.SIGINT, True)):
        code, out, said = start_and_kill(repo, signum, whole_group)
        assert code != 0, said
        assert f"interrupted by {signal.Signals(signum).name}" in out, said  # by the stage
        assert not (repo / "models/baseline.keras").exists()
        assert not (repo / "metrics/train/baseline.json").exists()
        assert [p.name for p in (repo / "models").iterdir() if "baseline" in p.name] == []
        assert runs(repo, "baseline")[-1][0] == "KILLED", (signum, runs(repo, "baseline"))
    assert not stage_pids(repo, "stages/train.py")
    done = sh([str(BIN / "dvc"), "repro", "train@baseline"], repo)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (repo / "models/baseline.keras").stat().st_size > 0
    assert [r[0] for r in runs(repo, "baseline")] == ["KILLED", "KILLED", "FINISHED"]
    status = sh([str(BIN / "dvc"), "status", "train@baseline"], repo)
    assert "up to date" in status.stdout, status.stdout


def test_runs_end_killed_failed_or_keep_their_status(tmp_path, monkeypatch):
    import mlflow

    from deepfake_detector import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # any default artifact folder lands here
    tracking.setup(tmp_path)
    ids = {}
    for name, exc in (("killed", KeyboardInterrupt), ("failed", RuntimeError), ("ok", None)):
        with pytest.raises(exc) if exc else contextlib.nullcontext():
            with tracking.new_run(name) as run:
                ids[name] = run.info.run_id
                if exc:
                    raise exc
    with pytest.raises(KeyboardInterrupt):  # evaluate interrupted while logging into "ok"
        with tracking.resumed_run(ids["ok"]):
            mlflow.log_metric("test_accuracy", 0.5)
            raise KeyboardInterrupt
    assert {n: mlflow.get_run(i).info.status for n, i in ids.items()} == {
        "killed": "KILLED", "failed": "FAILED", "ok": "FINISHED"}
    with sqlite3.connect(tmp_path / "mlflow.db") as con:  # readers never block the writer
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_swallowed_signal_is_raised_again_at_the_next_check(monkeypatch):
    from deepfake_detector import interrupts

    monkeypatch.setattr(interrupts, "received", [])
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        interrupts.install()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except KeyboardInterrupt:
            pass  # what a callback run from C++ inside TensorFlow may do with it
        with pytest.raises(interrupts.Interrupted) as info:
            interrupts.check()
        assert interrupts.signal_name(info.value) == "SIGTERM"
        assert interrupts.exit_code(info.value) == 143
    finally:
        for signum, handler in previous.items():  # pytest's own handlers back
            signal.signal(signum, handler)
