"""The web service over a real HTTP server on 127.0.0.1: the JSON API, its limits and errors,
and the OpenAPI schema."""


import httpx
import pytest
import yaml
from conftest import ROOT
from helpers import jpeg_bytes, start_server

from deepfake_detector.inference import Detector
from deepfake_detector.service import create_app


def make_app(explain_concurrency=1, max_upload_mb=1, card=None, face_crop=True,
             provenance=None, explain_samples=100, **serve):
    """An app over an untrained baseline model (no pipeline); ``serve`` overrides more of
    ``serve.*``, ``provenance`` of ``provenance.*``, ``card`` replaces the model card;
    ``face_crop`` False: the model frames whole images (procedural faces in clips have no
    face Haar finds)."""
    import keras

    from deepfake_detector.models import build_model
    from deepfake_detector.params_check import complete_model

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["serve"].update(explain_concurrency=explain_concurrency, max_upload_mb=max_upload_mb,
                           **serve)
    params["explain"]["num_samples"] = explain_samples
    params["provenance"].update(provenance or {})
    keras.utils.set_random_seed(0)
    settings = {"model": "baseline", "image_size": 64, "max_pixels": 50_000_000,
                "temperature": 1.0, "threshold": 0.5,
                "face_crop": {"enabled": face_crop, "margin": 0.25},
                "trained_on": {"source": "synthetic", "images": 2100}}
    detector = Detector(build_model("baseline", 64, complete_model("baseline")), settings)
    card = card or {"uri": "models/baseline.keras", "name": "deepfake-detector", "version": None,
                    "data_source": "synthetic", "synthetic_warning": True, "metrics": {}}
    return create_app(detector, card, params)


@pytest.fixture(scope="module")
def service():
    server, thread, url = start_server(make_app())
    yield url
    server.should_exit = True
    thread.join(10)


def test_health_model_and_page(service):
    assert httpx.get(f"{service}/health").json()["status"] == "ok"
    assert httpx.get(f"{service}/model").json()["synthetic_warning"] is True
    page = httpx.get(f"{service}/").text
    assert "Deepfake detector" in page and "http://" not in page and "https://" not in page
    schema = httpx.get(f"{service}/openapi.json").json()
    assert {"/predict", "/explain", "/health", "/model"} <= set(schema["paths"])


def test_predict_scores_good_files_and_reports_bad_ones(service):
    files = [("files", ("a.jpg", jpeg_bytes(1), "image/jpeg")),
             ("files", ("b.jpg", jpeg_bytes(2, fake=True), "image/jpeg")),
             ("files", ("notes.jpg", b"just text", "image/jpeg")),
             ("files", ("empty.png", b"", "image/png"))]
    reply = httpx.post(f"{service}/predict", files=files)
    assert reply.status_code == 200
    results = reply.json()["results"]
    assert [r["file"] for r in results] == ["a.jpg", "b.jpg", "notes.jpg", "empty.png"]
    assert all(0 <= r["p_fake"] <= 1 and r["label"] in ("real", "fake") for r in results[:2])
    assert [r["error"] for r in results] == ["", "", "not_image", "zero_bytes"]
    single = httpx.post(f"{service}/predict", files={"file": ("a.jpg", jpeg_bytes(1))})
    assert single.json()["results"][0]["p_fake"] == results[0]["p_fake"]


def test_bad_requests_get_clear_json_errors(service):
    only_bad = httpx.post(f"{service}/predict", files={"files": ("x.png", b"<html>", "image/png")})
    assert only_bad.status_code == 415 and "no usable image" in only_bad.text
    assert httpx.post(f"{service}/predict").status_code == 400
    big = httpx.post(f"{service}/predict", files={"files": ("big.jpg", b"\xff\xd8\xff" +
                                                             b"0" * (2**20 + 10))})
    assert big.status_code == 413 and "max_upload_mb" in big.json()["detail"]
    bomb = httpx.post(f"{service}/predict", files={"files": ("bomb.png", png_header(100_000))})
    assert bomb.status_code == 415 and bomb.json()["detail"]["results"][0]["error"] == \
        "too_many_pixels"
    assert httpx.post(f"{service}/explain", files={"file": ("t.txt", b"text")}).status_code == 415


def png_header(side: int) -> bytes:
    """A PNG whose header claims side × side pixels (no pixel data follows)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


def test_explain_returns_overlays(service):
    reply = httpx.post(f"{service}/explain", files={"file": ("f.jpg", jpeg_bytes(3, fake=True))},
                       timeout=60)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body["images"]) == {"input", "lime_positive", "lime_both", "gradcam"}
    import base64
    import io

    from PIL import Image

    for b64 in body["images"].values():
        assert Image.open(io.BytesIO(base64.b64decode(b64))).size == (256, 256)


def test_explain_beyond_capacity_answers_503_with_retry_after():
    """explain_concurrency 1 (the smallest the params allow): while one explanation runs, a
    second gets 503 with Retry-After; once it is done, the next is served."""
    import threading
    import time

    server, thread, url = start_server(make_app(explain_concurrency=1, explain_samples=3000))
    first, finished = {}, threading.Event()

    def explain_first():
        first["reply"] = httpx.post(f"{url}/explain", files={"file": ("f.jpg", jpeg_bytes(3))},
                                    timeout=300)
        finished.set()

    try:
        holder = threading.Thread(target=explain_first)
        holder.start()
        time.sleep(1.0)  # the first has its slot: its 3,000 LIME samples take seconds
        second = httpx.post(f"{url}/explain", files={"file": ("g.jpg", jpeg_bytes(4))},
                            timeout=60)
        assert not finished.is_set(), "the first explanation ended before the second came"
        assert second.status_code == 503 and second.headers["retry-after"] == "5"
        holder.join(300)
        assert first["reply"].status_code == 200
        third = httpx.post(f"{url}/explain", files={"file": ("g.jpg", jpeg_bytes(4))},
                           timeout=300)
        assert third.status_code == 200  # the slot came back
    finally:
        server.should_exit = True
        thread.join(10)


def test_uploads_are_not_stored():
    """A 1.5 MB upload (past Starlette's 1 MB spool limit, where a form parser would write
    it to an unnamed temporary file), sent slowly: while it arrives and after the reply,
    the server process (this one: the server runs in a thread) holds no new open file."""
    import io
    import os
    import time

    import numpy as np
    from PIL import Image

    def open_files() -> set[str]:
        found = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # closed meanwhile
                continue
            if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
                found.add(target)
        return found

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (720, 720, 3), np.uint8)).save(buf, "PNG")
    image = buf.getvalue()
    assert len(image) > 1.4 * 2**20
    boundary = "testboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + image + \
        f"\r\n--{boundary}--\r\n".encode()
    server, thread, url = start_server(make_app(max_upload_mb=4))
    before, during = open_files(), set()

    def slowly():
        for start in range(0, len(body), 256 * 1024):
            yield body[start:start + 256 * 1024]
            time.sleep(0.1)
            during.update(open_files())

    try:
        reply = httpx.post(f"{url}/predict", content=slowly(), timeout=60, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert reply.status_code == 200 and reply.json()["results"][0]["error"] == "", reply.text
        after = open_files()
    finally:
        server.should_exit = True
        thread.join(10)
    assert during - before == set() and after - before == set(), (during | after) - before


