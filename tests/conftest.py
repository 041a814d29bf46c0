import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

SHARED_DATA = ROOT.parent / "shared" / "datasets" / "ffhq-stylegan-dev"
ARTIFACTS = ROOT / "test-artifacts"  # screenshots; CI keeps this folder
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (benchmark data lives beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright: one browser for every browser test."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (.ci/run does)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def scan_service():
    """POST /scan over a real server on 127.0.0.1: an untrained model scoring whole frames,
    serve.max_video_mb 1 (test_video_scan, test_hostile_video)."""
    from helpers import start_server
    from test_service import make_app

    server, thread, url = start_server(make_app(face_crop=False, max_video_mb=1))
    yield url
    server.should_exit = True
    thread.join(10)


from pipeline_fixture import pipeline  # noqa: E402,F401  (one session fixture for every module)
