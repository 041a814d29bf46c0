"""Scale-out for real, on the session's tiny pipeline: queued experiments on two workers sharing
the project's MLflow store, a DVC remote that gives back everything the pipeline made, and the
pipeline tracked by a real `mlflow server` (SQLite backend, separate artifact root)."""

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import httpx
import pytest
from helpers import free_port, wait_http
from pipeline_fixture import BIN, MODELS, pipeline_env

pytestmark = pytest.mark.slow


def dvc(repo, *args, env=None, timeout=1200):
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env or pipeline_env(),
                          capture_output=True, text=True, timeout=timeout)
    said = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, f"dvc {' '.join(args)}:\n{said}"
    return done.stdout + done.stderr


def baseline_runs(repo) -> dict[str, tuple[str, float, float]]:
    """learning_rate → (status, start, end in seconds) of every train@baseline run in the
    project's store; the end is its evaluation's (``evaluate`` reopens the training run)."""
    with sqlite3.connect(repo / "mlflow.db", timeout=30) as con:
        rows = con.execute(
            "SELECT p.value, r.status, r.start_time, r.end_time FROM runs r JOIN params p "
            "ON p.run_uuid = r.run_uuid WHERE r.name = 'baseline' AND p.key = 'learning_rate'"
        ).fetchall()
    return {rate: (status, start / 1000, (end or 0) / 1000) for rate, status, start, end in rows}


def queue_status(repo, tries: int = 5) -> str:
    """``dvc queue status``, asked again when DVC trips over a task file a worker is
    writing at that moment ("ERROR: unexpected error - Expecting value: line 1 column 1",
    seen in CI on 2026-11-29 with both tasks running): the tasks' states are what counts."""
    for _ in range(tries - 1):
        done = subprocess.run([str(BIN / "dvc"), "queue", "status"], cwd=repo,
                              env=pipeline_env(), capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return done.stdout + done.stderr
        assert "Expecting value" in done.stdout + done.stderr, done.stdout + done.stderr
        time.sleep(2)
    return dvc(repo, "queue", "status")


def test_two_queued_experiments_run_on_two_workers_into_one_store(pipeline):
    repo = pipeline["repo"]
    rates = ["0.0021", "0.0007"]
    assert not set(rates) & set(baseline_runs(repo))
    for rate in rates:
        dvc(repo, "exp", "run", "--queue", "-S", f"train.baseline.learning_rate={rate}")
    started = time.perf_counter()
    # Not waited on: `queue start` can stay in the foreground with a worker that celery's
    # monitor shut down while it was busy (seen once here: both tasks Success, the command
    # still running 20 min later). The tasks' status is what this test judges.
    starter = subprocess.Popen([str(BIN / "dvc"), "queue", "start", "-j", "2"], cwd=repo,
                               env=pipeline_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 900
    status = ""
    try:
        while time.monotonic() < deadline:
            status = queue_status(repo)
            done = status.count("Success") + status.count("Failed") >= len(rates)
            if done or ("Queued" not in status and "Running" not in status):
                break
            time.sleep(3)
    finally:
        if starter.poll() is None:
            os.killpg(starter.pid, signal.SIGTERM)
            starter.wait(30)
    print(status, f"{time.perf_counter() - started:.0f} s")
    assert status.count("Success") >= 2 and "Failed" not in status, status
    logs = "".join(dvc(repo, "queue", "logs", line.split()[0])
                   for line in status.splitlines() if "Success" in line)
    assert "database is locked" not in logs
    runs = baseline_runs(repo)  # in the checkout's mlflow.db, not a copy under .dvc/tmp
    assert all(runs.get(rate, ("",))[0] == "FINISHED" for rate in rates), runs
    # two workers, not one after the other: each run starts before the other has ended
    (_, start_a, end_a), (_, start_b, end_b) = (runs[rate] for rate in rates)
    overlap = min(end_a, end_b) - max(start_a, start_b)
    print(f"runs {end_a - start_a:.1f} s and {end_b - start_b:.1f} s; overlap {overlap:.1f} s")
    assert overlap > 0, (start_a, end_a, start_b, end_b)
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))
    shown = dvc(repo, "exp", "show", "--csv")
    assert all(rate in shown for rate in rates)


@pytest.fixture(scope="module")
def copied_repo(pipeline, tmp_path_factory):
    """A second checkout of the tiny pipeline's workspace (its own DVC cache, no MLflow store):
    what a teammate has after cloning, before pulling any data."""
    dest = tmp_path_factory.mktemp("teammate") / "repo"
    shutil.copytree(pipeline["repo"], dest, symlinks=True, ignore=shutil.ignore_patterns(
        "mlflow.db*", "mlartifacts", "tmp"))
    return dest


def cached_outputs(repo) -> list[str]:
    """The outputs DVC keeps in its cache (what a remote holds), from dvc.yaml itself."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return sorted({str(out.def_path) for stage in dvc_repo.index.stages
                       for out in stage.outs if out.use_cache})


def tree_digest(path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in [path, *path.rglob("*")] if p.is_file()):
        digest.update(file.relative_to(path.parent).as_posix().encode() + file.read_bytes())
    return digest.hexdigest()


def test_dvc_remote_push_wipe_pull_then_nothing_to_do(copied_repo, tmp_path):
    repo = copied_repo
    outputs = cached_outputs(repo)
    assert {"data/raw", "data/processed", "models/tuned.keras"} <= set(outputs)
    before = {p: tree_digest(repo / p) for p in outputs}
    remote = tmp_path / "remote"  # a local folder standing in for s3:// or gs://
    dvc(repo, "remote", "add", "--local", "-d", "team", str(remote))
    assert "pushed" in dvc(repo, "push")
    shutil.rmtree(repo / ".dvc" / "cache")
    for path in outputs:
        target = repo / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert "deleted" in dvc(repo, "status")
    dvc(repo, "pull")
    assert before == {p: tree_digest(repo / p) for p in outputs}
    assert "up to date" in dvc(repo, "status")
    repro = dvc(repo, "repro")
    assert "Running stage" not in repro and "didn't change" in repro, repro[-2000:]


def test_pipeline_tracked_by_a_real_mlflow_server(copied_repo, tmp_path):
    repo, port = copied_repo, free_port()
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri",
         f"sqlite:///{server_dir / 'backend.db'}", "--artifacts-destination",
         str(server_dir / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], cwd=server_dir, env=pipeline_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        env = {**pipeline_env(), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
        dvc(repo, "repro", "-f", env=env)
        experiment = httpx.get(f"{api}/experiments/get-by-name",
                               params={"experiment_name": "deepfake-detection"}).json()
        found = httpx.post(f"{api}/runs/search", json={
            "experiment_ids": [experiment["experiment"]["experiment_id"]],
            "max_results": 100}).json()["runs"]
        runs = {run["info"]["run_name"]: run for run in found}
        assert set(MODELS) <= set(runs), sorted(runs)
        assert all(runs[m]["info"]["status"] == "FINISHED" for m in MODELS)
        tags = {t["key"]: t["value"] for t in runs["tuned"]["data"]["tags"]}
        assert tags["git.dirty"] in ("true", "false")
        assert "dvc.md5.data/processed/train.npz" in tags
        version = httpx.get(f"{api}/registered-models/alias", params={
            "name": "deepfake-detector", "alias": "challenger"}).json()["model_version"]
        assert version["run_id"] == runs["tuned"]["info"]["run_id"]
        registered = json.loads((repo / "models/registered.json").read_text())
        assert registered["version"] == int(version["version"]) == 1
        # artifacts went through the server to its own root, nothing into the checkout
        assert any((server_dir / "artifacts").rglob("MLmodel"))
        assert not (repo / "mlflow.db").exists() and not (repo / "mlartifacts").exists()
    finally:
        proc.terminate()
        proc.wait(30)


def test_make_clean_removes_workspace_outputs_and_dvc_checkout_restores_them(copied_repo):
    repo = copied_repo
    outputs = cached_outputs(repo)
    before = {p: tree_digest(repo / p) for p in outputs}
    # every path the README says `make clean` removes, and every one it keeps
    removed = ["data", "models", "dvc_plots", "test-artifacts", ".pytest_cache", ".ruff_cache"]
    kept = {"mlflow.db": b"stands in for the project's runs",
            "mlartifacts/0/run/artifacts/model.txt": b"an artifact",
            ".cache/downloads/dataset.zip": b"a downloaded zip"}
    if not (repo / ".venv").exists():  # a copy without its own environment: one stands in
        kept[".venv/pyvenv.cfg"] = b"home = /usr/bin"
    for folder in removed:
        (repo / folder).mkdir(exist_ok=True)
        (repo / folder / "made-by-the-test").write_text("x")
    for path, data in kept.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(data)
    cache = tree_digest(repo / ".dvc" / "cache")
    done = subprocess.run(["make", "clean"], cwd=repo, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert [f for f in removed if (repo / f).exists()] == []
    assert {p: (repo / p).read_bytes() for p in kept} == kept
    assert (repo / ".venv").is_dir() and tree_digest(repo / ".dvc" / "cache") == cache
    assert (repo / "params.yaml").exists() and (repo / "metrics" / "tuned.json").exists()
    dvc(repo, "checkout")
    assert before == {p: tree_digest(repo / p) for p in outputs}
