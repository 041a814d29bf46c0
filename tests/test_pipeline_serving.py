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


def test_mlflow_models_serve_answers_an_image_and_a_clip(champion):
    repo, port = champion["repo"], free_port()
    env = {**pipeline_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m",
                             "models:/deepfake-detector@champion", "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", 180, proc)
        from c2pa_files import make_chain, sign

        image = base64.b64encode((first_fake(repo)).read_bytes()).decode()
        signed = base64.b64encode(sign(first_fake(repo).read_bytes(), make_chain())).decode()
        reply = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=60, json={
            "dataframe_split": {"columns": ["image"], "data": [[image], ["bm90IGFuIGltYWdl"],
                                                                [signed]]}})
        assert reply.status_code == 200, reply.text
        first, second, third = reply.json()["predictions"]
        assert 0 <= first["p_fake"] <= 1 and first["label"] in ("real", "fake")
        assert second["error"] == "not_image"
        # provenance as JSON text beside the score (the served copy starts its own reader)
        assert json.loads(first["provenance"])["claim"] == "none"
        found = json.loads(third["provenance"])
        assert third["p_fake"] == first["p_fake"]  # the manifest does not touch the pixels
        assert (found["claim"], found["verified"], found["error"]) == ("ai_generated", True, "")
        # a clip: one row with the clip's verdict (the built-in clips are whole-frame scored)
        clip = next((repo / "data/raw/videos/test/fake").glob("*.mp4"))
        reply = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=120, json={
            "dataframe_split": {"columns": ["video"], "data": [
                [base64.b64encode(clip.read_bytes()).decode()], ["bm90IGEgdmlkZW8="]]}})
        assert reply.status_code == 200, reply.text
        first, second = reply.json()["predictions"]
        assert 0 <= first["p_fake"] <= 1 and first["verdict"] in ("real", "fake", "inconclusive")
        assert second["error"] == "not_video"
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
        page.wait_for_selector("#card .unreliable")  # trained on synthetic data: says so
        page.set_input_files("#files", str(first_fake(repo)))
        page.wait_for_selector("#rows .verdict", timeout=60_000)
        verdict = page.inner_text("#rows .verdict")
        assert re.match(r"P\(fake\) \d\.\d+, threshold \d\.\d+: (fake|real|inconclusive)$",
                        verdict), verdict
        assert "trained on synthetic: " in page.inner_text("#rows .domain")
        page.locator("#rows button").click()
        page.wait_for_selector("#detail figure", timeout=60_000)
        assert page.locator("#detail figure img").count() == 4
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


def test_real_photographs_get_the_domain_flag_and_a_chance_warning(champion, shared_data,
                                                                   tmp_path):
    """The champion trained on the built-in faces, on real FFHQ photographs and StyleGAN
    faces (../shared): every verdict carries the domain flag and the training data, in the
    CLI and the API, and `deepfake evaluate` says when the result is chance."""
    repo = champion["repo"]
    for label in ("real", "fake"):  # 150 of each: enough for an interval, quick in CI
        (tmp_path / "photos" / label).mkdir(parents=True)
        for f in sorted((shared_data / label).iterdir())[:150]:
            shutil.copy(f, tmp_path / "photos" / label / f.name)
    real = sorted((tmp_path / "photos/real").iterdir())[:4]
    done = sh([str(BIN / "deepfake"), "predict", *map(str, real), "--json"], repo)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert all(r["domain"] in ("in", "out") and r["verdict"] in ("fake", "real", "inconclusive")
               and r["trained_on"].startswith("synthetic: ") for r in rows), rows
    assert all(r["verdict"] == "inconclusive" for r in rows if r["domain"] == "out")
    table = sh([str(BIN / "deepfake"), "predict", str(real[0])], repo).stdout
    assert "model trained on synthetic: " in table and "threshold" in table
    assert re.search(r"P\(fake\) \d\.\d+, threshold \d\.\d+: \w+\s+\S+\s+(in|out) ", table)

    from deepfake_detector.config import load_params
    from deepfake_detector.inference import load_detector
    from deepfake_detector.service import create_app, model_card

    params = load_params(repo)
    detector, uri = load_detector(None, repo, params)
    server, thread, url = start_server(create_app(
        detector, model_card(uri, detector, repo, params), params))
    try:
        reply = httpx.post(f"{url}/predict", timeout=60, files=[
            ("files", (f.name, f.read_bytes(), "image/jpeg")) for f in real])
        assert reply.status_code == 200
        assert [(r["domain"], r["verdict"], r["trained_on"]) for r in reply.json()["results"]] \
            == [(r["domain"], r["verdict"], r["trained_on"]) for r in rows]
    finally:
        server.should_exit = True
        thread.join(10)

    done = sh([str(BIN / "deepfake"), "evaluate", "--data", str(tmp_path / "photos"), "--out",
               str(tmp_path / "e.json")], repo)
    assert done.returncode == 0, done.stderr
    m = json.loads((tmp_path / "e.json").read_text())["as_served"]
    assert "balanced accuracy" in done.stdout and "real recall" in done.stdout
    assert f"(95% CI {m['roc_auc_ci_low']:.3f}-{m['roc_auc_ci_high']:.3f})" in done.stdout
    chance = m["roc_auc_ci_low"] <= 0.5 <= m["roc_auc_ci_high"]
    assert ("indistinguishable from chance" in done.stdout) == chance, done.stdout
    if not chance and m["roc_auc_ci_high"] < 0.6:
        assert "near chance on this data" in done.stdout, done.stdout
