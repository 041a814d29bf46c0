"""After the tiny pipeline: the registered version, `deepfake promote`, the CLI on the
champion, `mlflow models serve` on it, and real-browser tests of the web page and the MLflow UI
(Debian's chromium driven by Playwright)."""

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import ARTIFACTS
from helpers import free_port, start_server, wait_http
from pipeline_fixture import BIN, pipeline_env, sh

pytestmark = pytest.mark.slow


def first_fake(repo: Path) -> Path:
    return sorted((repo / "data/raw/fake").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def champion(pipeline):
    """The pipeline's registered version, promoted by the CLI."""
    repo = pipeline["repo"]
    registered = json.loads((repo / "models/registered.json").read_text())
    assert registered["name"] == "deepfake-detector" and registered["alias"] == "challenger"
    done = sh([str(BIN / "deepfake"), "promote"], repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"version {registered['version']} of deepfake-detector is now champion" in done.stdout
    return {**pipeline, "version": registered["version"]}


def test_models_lists_the_champion_and_lineage(champion):
    done = sh([str(BIN / "deepfake"), "models"], champion["repo"])
    assert done.returncode == 0 and "challenger,champion" in done.stdout
    done = sh([str(BIN / "deepfake"), "models", "--lineage", str(champion["version"])],
              champion["repo"])
    lineage = json.loads(done.stdout)
    tags = lineage["tags"]
    assert len(tags["git.commit"]) == 40 and tags["model"] == "tuned"
    assert tags["git.dirty"] in ("true", "false") and tags["weights"] == "none"
    assert len(tags["dvc.md5.data/processed/train.npz"]) == 32
    assert lineage["run_status"] == "FINISHED" and lineage["params"]["optimizer"] == "sgd"
    missing = sh([str(BIN / "deepfake"), "models", "--lineage", "999"], champion["repo"])
    assert missing.returncode == 2 and "has no version 999" in missing.stderr


def test_predict_and_evaluate_a_folder_with_the_champion(champion, tmp_path):
    repo = champion["repo"]
    for label in ("real", "fake"):
        (tmp_path / "mine" / label).mkdir(parents=True)
        for f in sorted((repo / "data/raw" / label).glob("*.jpg"))[:10]:
            shutil.copy(f, tmp_path / "mine" / label / f.name)
    done = sh([str(BIN / "deepfake"), "predict", str(tmp_path / "mine"), "--out",
               str(tmp_path / "p.json")], repo)
    assert done.returncode == 0, done.stderr
    assert "models:/deepfake-detector@champion" in done.stderr
    rows = json.loads((tmp_path / "p.json").read_text())
    assert len(rows) == 20 and all(r["label"] in ("real", "fake") for r in rows)
    done = sh([str(BIN / "deepfake"), "evaluate", "--data", str(tmp_path / "mine"), "--out",
               str(tmp_path / "e.json")], repo)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["as_served"]["n"] == 20 and 0 <= report["as_served"]["roc_auc"] <= 1
    # the built-in data's models are trained on whole frames, so they are served whole frames
    assert "without_face_crop" not in report and "faces_found" not in report["as_served"]
    fake = sorted((tmp_path / "mine/fake").glob("*.jpg"))[0]
    done = sh([str(BIN / "deepfake"), "explain", str(fake), "--out", str(tmp_path / "ex")], repo)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ex/explanation.png").stat().st_size > 5000


def test_mlflow_models_serve_answers_an_image(champion):
    repo, port = champion["repo"], free_port()
    env = {**pipeline_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m",
                             "models:/deepfake-detector@champion", "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", 180, proc)
        image = base64.b64encode((first_fake(repo)).read_bytes()).decode()
        reply = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=60, json={
            "dataframe_split": {"columns": ["image"], "data": [[image], ["bm90IGFuIGltYWdl"]]}})
        assert reply.status_code == 200, reply.text
        first, second = reply.json()["predictions"]
        assert 0 <= first["p_fake"] <= 1 and first["label"] in ("real", "fake")
        assert second["error"] == "not_image"
    finally:
        proc.terminate()
        proc.wait(20)


def test_page_upload_shows_the_verdict(champion, browser):
    from deepfake_detector.config import load_params
    from deepfake_detector.inference import load_detector
    from deepfake_detector.service import create_app, model_card

    repo = champion["repo"]
    params = load_params(repo)
    detector, uri = load_detector(None, repo, params)
    server, thread, url = start_server(create_app(
        detector, model_card(uri, detector, repo, params), params))
    try:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#card .warning")  # trained on synthetic data: says so
        page.set_input_files("#file", str(first_fake(repo)))
        page.wait_for_selector("#images figure", timeout=60_000)
        verdict = page.inner_text("#verdict")
        assert verdict.split()[0] in ("real", "fake") and verdict.endswith("%")
        assert page.locator("#images img").count() == 4
        page.screenshot(path=str(ARTIFACTS / "service_page.png"), full_page=True)
    finally:
        server.should_exit = True
        thread.join(10)


def test_mlflow_ui_shows_the_champion(champion, browser):
    repo, port = champion["repo"], free_port()
    proc = subprocess.Popen([str(BIN / "mlflow"), "ui", "--backend-store-uri",
                             f"sqlite:///{repo / 'mlflow.db'}", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=repo, env=pipeline_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/#/models/deepfake-detector")
        # the alias chip itself, not the registered model's champion_history tag
        page.get_by_text(re.compile(r"^(@\s*)?champion$")).first.wait_for(timeout=60_000)
        assert page.get_by_text("deepfake-detector").count() > 0
        page.screenshot(path=str(ARTIFACTS / "mlflow_ui_model.png"), full_page=True)
    finally:
        proc.terminate()
        proc.wait(20)
    assert os.path.getsize(ARTIFACTS / "mlflow_ui_model.png") > 10_000
