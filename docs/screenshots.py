"""Redraw the README's screenshots from a checkout where `make repro` and `deepfake promote`
have run: the detection page on desktop and phone with a batch of images scored and one
explained, and the MLflow UI's runs view. Debian's chromium, driven by Playwright.

    .venv/bin/python docs/screenshots.py [IMAGE ...]   (default: four built-in test faces)
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
OUT = ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def page_shots(browser, url: str, images: list[Path]) -> None:
    for name, viewport in (("page_desktop.png", {"width": 1100, "height": 900}),
                           ("page_phone.png", {"width": 390, "height": 844})):
        page = browser.new_page(viewport=viewport)
        page.goto(url)
        page.wait_for_selector("#card:has-text('Trained on')")
        page.set_input_files("#files", [str(p) for p in images])
        page.wait_for_selector("#status:has-text('Done')", timeout=120_000)
        page.locator("#rows button").first.click()
        page.wait_for_selector("#detail figure img", timeout=180_000)
        page.screenshot(path=str(OUT / name), full_page=True)
        page.close()
        print("wrote", OUT / name)


def mlflow_shot(browser) -> None:
    from helpers import free_port, wait_http

    from deepfake_detector.tracking import ui_url

    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"  # beside this Python: the project's venv
    proc = subprocess.Popen([str(mlflow), "ui", "--backend-store-uri",
                             f"sqlite:///{ROOT / 'mlflow.db'}", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(ui_url(ROOT, f"http://127.0.0.1:{port}"))  # what `make ui` prints
        page.get_by_text("tuned", exact=True).first.wait_for(timeout=60_000)
        try:  # MLflow's assistant panel opens on a first visit; closed, the table has room
            page.get_by_role("button", name=re.compile("close", re.I)).last.click(timeout=3000)
        except Exception:  # noqa: BLE001 - no panel, or another UI version: keep it
            pass
        time.sleep(2)  # the table's columns settle
        page.screenshot(path=str(OUT / "mlflow_runs.png"))
        print("wrote", OUT / "mlflow_runs.png")
    finally:
        proc.terminate()
        proc.wait(20)


def main(argv: list[str]) -> None:
    from helpers import start_server
    from playwright.sync_api import sync_playwright

    from deepfake_detector.config import load_params
    from deepfake_detector.inference import load_detector
    from deepfake_detector.service import create_app, model_card

    images = [Path(a) for a in argv] or sorted((ROOT / "data/raw/fake").glob("*.jpg"))[:2] + \
        sorted((ROOT / "data/raw/real").glob("*.jpg"))[:2]
    params = load_params(ROOT)
    detector, uri = load_detector(None, ROOT, params)
    server, thread, url = start_server(create_app(
        detector, model_card(uri, detector, ROOT, params), params))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page_shots(browser, url, images)
            mlflow_shot(browser)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    main(sys.argv[1:])
