"""The detection page as a working tool, in Debian's chromium over a real server on 127.0.0.1
(a small untrained model: the page's behaviour, not the model's, is under test): many files at
once, the batch report with hashes and the model version, explanations with legends and the
reliability note, a phone-width layout, keyboard reach, readable errors, and no request to any
other host."""

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import ARTIFACTS
from helpers import jpeg_bytes, start_server

CARD = {"uri": "models:/deepfake-detector/3", "name": "deepfake-detector", "version": 3,
        "alias": ["champion"], "model": "baseline", "run_id": "0123456789abcdef",
        "threshold": 0.5, "band": [0.45, 0.55], "trained_on": "synthetic: 2100 images",
        "data_source": "synthetic", "synthetic_warning": True,
        "metrics": {"accuracy": 0.9, "roc_auc": 0.95},
        "explanations": {"lime": {"reliable": False, "pointing_game": 0.0, "random": 0.13,
                                  "n": 4},
                         "gradcam": {"reliable": True, "pointing_game": 0.4, "random": 0.13,
                                     "n": 100}}}
VERDICT = re.compile(r"^P\(fake\) \d\.\d+, threshold 0\.50*: (fake|real|inconclusive)$")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from test_service import make_app

    server, thread, url = start_server(make_app(card=CARD, max_files=3))
    folder = tmp_path_factory.mktemp("faces")
    faces = []
    for i in range(4):
        path = folder / f"face {i}.jpg"
        path.write_bytes(jpeg_bytes(i, fake=bool(i % 2), size=96))
        faces.append(path)
    (folder / "notes.txt").write_text("not a picture")
    yield url, faces, folder / "notes.txt"
    server.should_exit = True
    thread.join(10)


def open_page(browser, url, **context):
    """A page that refuses and records every request to a host other than the server."""
    ctx = browser.new_context(**context)
    outside = []

    def guard(route):
        if route.request.url.startswith((url, "data:", "blob:")):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    ctx.route("**/*", guard)
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_selector("#card:has-text('Trained on')")
    return ctx, page, outside


def test_four_images_at_once_give_four_rows_and_a_report_with_their_hashes(site, browser):
    url, faces, _ = site
    ctx, page, outside = open_page(browser, url, accept_downloads=True)
    try:
        page.set_input_files("#files", [str(f) for f in faces])  # 4 files; max_files 3: 2 batches
        page.wait_for_selector("#status:has-text('Done: 4 of 4 scored')", timeout=60_000)
        verdicts = page.locator("#rows .verdict").all_inner_texts()
        assert len(verdicts) == 4 and all(VERDICT.match(v) for v in verdicts), verdicts
        # the domain flag (or its absence) sits beside each verdict, with the training data
        assert page.locator("#rows .domain").count() == 4
        assert "trained on synthetic: 2100 images" in page.inner_text("#rows")
        assert page.locator("#rows img.thumb").count() == 4

        page.locator("#rows button").first.click()  # explain the first image on request
        page.wait_for_selector("#detail figure img", timeout=120_000)
        assert page.locator("#detail figure img").count() == 4
        assert all(page.locator("#detail img").evaluate_all("imgs => imgs.map(i => i.alt)"))
        assert page.locator("#detail .legend").count() == 2
        assert "Not reliable for this model" in page.inner_text("#detail")  # LIME, per card
        assert page.locator("#detail .unreliable").count() == 2  # both LIME maps, not Grad-CAM

        with page.expect_download() as got:
            page.click("#report-json")
        report = json.loads(Path(got.value.path()).read_text())
        assert report["model"]["version"] == 3 and report["model"]["run_id"] == CARD["run_id"]
        assert report["model"]["threshold"] == 0.5
        assert report["model"]["explanations_reliable"]["lime"]["reliable"] is False
        assert [f["file"] for f in report["files"]] == [f.name for f in faces]
        assert [f["sha256"] for f in report["files"]] == [
            hashlib.sha256(f.read_bytes()).hexdigest() for f in faces]
        assert all(f["verdict"] in ("fake", "real", "inconclusive") for f in report["files"])
        assert report["files"][0]["explanation"]["gradcam"]  # the explanation opened
        assert report["files"][1]["explanation"] is None     # and only that one
        with page.expect_download() as got:
            page.click("#report-html")
        html = Path(got.value.path()).read_text()
        assert all(hashlib.sha256(f.read_bytes()).hexdigest() in html for f in faces)
        assert "version 3" in html and CARD["run_id"] in html and 'charset="utf-8"' in html
        page.screenshot(path=str(ARTIFACTS / "page_desktop.png"), full_page=True)
        assert outside == []
    finally:
        ctx.close()


def test_phone_width_keyboard_and_a_text_file(site, browser):
    url, faces, notes = site
    ctx, page, outside = open_page(browser, url, viewport={"width": 390, "height": 844})
    try:
        for _ in range(10):  # Tab from the top of the page reaches the file control
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "files":
                break
        assert page.evaluate("document.activeElement.id") == "files"
        page.set_input_files("#files", [str(faces[0]), str(notes)])
        page.wait_for_selector("#status:has-text('Done: 1 of 2 scored')", timeout=60_000)
        rows = page.inner_text("#rows")
        assert "Could not score: not an image file" in rows  # words, not an error code
        page.locator("#rows button").first.click()  # the detail view, its sha256 and maps
        page.wait_for_selector("#detail figure img", timeout=120_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(ARTIFACTS / "page_phone.png"), full_page=True)

        page.set_input_files("#files", [str(notes)])  # every file unusable: the service's 415
        page.wait_for_selector("#status:has-text('Done: 0 of 1 scored')", timeout=60_000)
        assert "no usable image" in page.inner_text("#error")
        assert "{" not in page.inner_text("#error")  # the message, not raw JSON
        assert "not an image file" in page.inner_text("#rows")
        assert outside == []
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 s at 8 fps of 64×64 frames: a face for 1 s, a frame the face detector finds nothing in
    for 1 s, a manipulated face for 1 s; and a .mp4 that is not a video."""
    import io

    import numpy as np
    from PIL import Image

    from deepfake_detector.synthetic_video import encode_clip

    stills = [np.asarray(Image.open(io.BytesIO(jpeg_bytes(seed, fake=fake, size=64)))
                         .convert("RGB")) for seed, fake in ((2, False), (0, False), (3, True))]
    folder = tmp_path_factory.mktemp("video")
    encode_clip(folder / "clip.mp4", [still for still in stills for _ in range(8)], 8)
    (folder / "notes.mp4").write_text("not a video")
    return folder / "clip.mp4", folder / "notes.mp4"


def test_a_video_gives_its_verdict_a_timeline_and_frames_explained_on_request(site, browser, clip):
    url = site[0]
    video, not_video = clip
    ctx, page, outside = open_page(browser, url, viewport={"width": 1000, "height": 900})
    broken = []  # script errors, and anything the page's policy blocks
    page.on("pageerror", lambda exc: broken.append(str(exc)))
    page.on("console", lambda m: broken.append(m.text)
            if "Content Security Policy" in m.text else None)
    try:
        with page.expect_response(lambda r: r.url.endswith("/scan"), timeout=60_000) as got:
            page.set_input_files("#files", str(video))
        scan = got.value.json()
        page.wait_for_selector("#video .verdict", timeout=30_000)
        assert VERDICT.match(page.inner_text("#video .verdict"))  # the image rows' wording
        scored = [f for f in scan["frames"] if f["p_fake"] is not None]
        assert scored and len(scored) == scan["frames_scored"], scan["frames"]
        assert (f"{len(scored)} of {scan['frames_sampled']} sampled frames scored"
                in page.inner_text("#video"))
        points = page.locator("#timeline svg .point")
        assert points.count() == len(scored)  # frames with no face: grey ticks, not points
        assert page.locator("#timeline svg .noface").count() == len(scan["frames"]) - len(scored)
        assert page.locator("#timeline svg line.threshold").count() == 1
        assert page.locator("#top-frames img").count() == len(scan["top"]) > 0

        points.last.focus()  # the keyboard reaches a point; Enter shows its frame
        page.keyboard.press("Enter")
        page.wait_for_selector("#detail img.crop")
        assert page.get_attribute("#detail img.crop", "src") == scored[-1]["crop"]
        assert f"{scored[-1]['t']:.2f} s" in page.inner_text("#detail .frame-time")
        points.first.click()  # and a click
        assert page.get_attribute("#detail img.crop", "src") == scored[0]["crop"]
        assert f"{scored[0]['t']:.2f} s" in page.inner_text("#detail .frame-time")
        assert f"P(fake) {scored[0]['p_fake']:.3f}" in page.inner_text("#detail")

        page.get_by_role("button", name="Explain this frame").click()
        page.wait_for_selector("#detail figure img", timeout=120_000)
        assert page.locator("#detail figure img").count() == 4  # the image explanation's maps
        assert page.locator("#detail .legend").count() == 2
        page.screenshot(path=str(ARTIFACTS / "page_video.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(ARTIFACTS / "page_video_phone.png"), full_page=True)

        page.set_input_files("#files", str(not_video))  # the service's 415, in words
        page.wait_for_selector("#error:has-text('Could not scan')", timeout=30_000)
        assert "not a video file" in page.inner_text("#error")
        assert "{" not in page.inner_text("#error")
        assert outside == [] and broken == []
    finally:
        ctx.close()


def test_the_provenance_line_sits_beside_the_verdict_and_in_the_report(site, browser,
                                                                       tmp_path):
    """A file signed with Content Credentials (a chain made in the test; the service's
    trust list is empty) and one with none: each row says what its file states, apart from
    the verdict; the page explains the difference and the report keeps it."""
    from c2pa_files import face_jpeg, make_chain, sign

    url = site[0]
    signed, plain = tmp_path / "signed.jpg", tmp_path / "plain.jpg"
    signed.write_bytes(sign(face_jpeg(1), make_chain()))
    plain.write_bytes(face_jpeg(2))
    ctx, page, outside = open_page(browser, url, accept_downloads=True)
    try:
        page.set_input_files("#files", [str(signed), str(plain)])
        page.wait_for_selector("#status:has-text('Done: 2 of 2 scored')", timeout=60_000)
        lines = page.locator("#rows .provenance").all_inner_texts()
        assert lines == [
            "Provenance: Content Credentials: generated by AI with TestGen 1.0, signed by "
            "Test Generator Signer (Test Generator Org) (signature valid; signer not in your "
            "trust list)",
            "Provenance: no provenance found (this says nothing about whether the file is "
            "authentic)"], lines
        assert all(VERDICT.match(v) for v in page.locator("#rows .verdict").all_inner_texts())
        assert "its trust list, provenance.trust_anchors, is empty" in page.inner_text(
            "#provenance-note")
        with page.expect_download() as got:
            page.click("#report-json")
        report = json.loads(Path(got.value.path()).read_text())
        assert [f["provenance"]["claim"] for f in report["files"]] == ["ai_generated", "none"]
        with page.expect_download() as got:
            page.click("#report-html")
        assert "signature valid; signer not in your trust list" in Path(
            got.value.path()).read_text()
        page.screenshot(path=str(ARTIFACTS / "page_provenance.png"), full_page=True)
        assert outside == []
    finally:
        ctx.close()
