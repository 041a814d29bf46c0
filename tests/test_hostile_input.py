"""Rows of the README's bad-input table not covered elsewhere (test_fetch, test_images,
test_images_fuzz, test_split, test_params_check, test_service, test_service_fuzz): damaged
and disguised archives, odd file names, one-class data, animated and WebP images, CLI
arguments, request bodies and unsafe model files. Each gets a clear error or a listed
rejection and writes nothing it should not."""

import io
import os
import subprocess
import sys
import zipfile

import httpx
import numpy as np
import pytest
from conftest import ROOT
from helpers import FakeServer, jpeg_bytes, make_zip, snapshot, start_server, write_faces
from PIL import Image

from deepfake_detector.download import DownloadError
from deepfake_detector.images import load_image
from deepfake_detector.sources import SourceError, fetch
from deepfake_detector.splitting import split_dataset

CLASSES = {"real": ["real"], "fake": ["fake"]}
FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def faces_zip(path, n=4):
    files = {f"real/r{i}.jpg": jpeg_bytes(i) for i in range(n)}
    return make_zip(path, files | {f"fake/f{i}.jpg": jpeg_bytes(i, fake=True) for i in range(n)})


def refused(tmp_path, source, match, **kw):
    """``source`` is refused with an error matching ``match``, and leaves every file under
    ``tmp_path`` as it was: no data/raw, no partial extraction, nothing cached."""
    before = snapshot(tmp_path)
    with pytest.raises((SourceError, DownloadError), match=match):
        fetch(source, tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "cache", **kw)
    after = snapshot(tmp_path)
    assert not (tmp_path / "raw").exists() and not (tmp_path / ".raw.partial").exists()
    assert after == before, sorted(set(after) ^ set(before))


def test_truncated_zip(tmp_path):
    data = faces_zip(tmp_path / "whole.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    refused(tmp_path, "cut.zip", "not a readable zip archive .* may be truncated")


def test_zip_with_damaged_data_is_refused_mid_extraction_and_leaves_nothing(tmp_path):
    data = bytearray(faces_zip(tmp_path / "d.zip").read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.infolist()[-1]
    at = info.header_offset + 30 + len(info.filename) + 5  # inside the compressed bytes
    data[at] ^= 0xFF
    (tmp_path / "d.zip").write_bytes(bytes(data))
    refused(tmp_path, "d.zip", "is damaged at entry")


def test_html_saved_as_zip(tmp_path):
    (tmp_path / "page.zip").write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    refused(tmp_path, "page.zip", "is an HTML page, not a zip archive")


def test_html_where_a_zip_download_was_expected_is_not_cached(tmp_path):
    with FakeServer() as server:
        server.routes["/data.zip"] = lambda h, q: (200, {"Content-Type": "text/html"},
                                                   b"<html>Please sign in</html>")
        refused(tmp_path, server.url + "/data.zip", "sent a web page")
    assert not list((tmp_path / "cache").glob("*"))  # nothing kept to be mistaken later


def test_zip_entry_name_flagged_utf8_but_not(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("real/caf\u00e9.jpg", jpeg_bytes(1))  # flagged UTF-8: b"caf\xc3\xa9"
    (tmp_path / "bad.zip").write_bytes(buf.getvalue().replace(b"caf\xc3\xa9", b"caf\xe9A"))
    refused(tmp_path, "bad.zip", "marked UTF-8 but is not")


def test_non_utf8_file_names_are_left_out_and_listed(tmp_path):
    write_faces(tmp_path / "src" / "real", 4, False)
    write_faces(tmp_path / "src" / "fake", 4, True)
    os.rename(tmp_path / "src" / "fake" / "img0001.jpg",
              os.fsdecode(os.fsencode(tmp_path / "src" / "fake") + b"/caf\xe9.jpg"))
    rec = fetch("src", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "c")
    assert rec["n_images"] == 7 and rec["skipped_non_utf8_names"] == ["fake/caf\\xe9.jpg"]
    frames, rejected, summary = split_dataset(tmp_path / "raw", tmp_path, class_names=CLASSES,
                                              fractions=FRACTIONS, seed=0, keep_existing=True,
                                              group_regex=None)
    assert summary["total"]["total"] == 7
    for frame in frames.values():
        frame.to_csv(tmp_path / "m.csv")  # every kept name is writable text


def test_odd_names_already_in_raw_data_are_rejected_by_split(tmp_path):
    raw = tmp_path / "raw"
    write_faces(raw / "real", 3, False)
    write_faces(raw / "fake", 3, True)
    (raw / "fake" / "line\nbreak.jpg").write_bytes(jpeg_bytes(9, fake=True))
    with open(os.fsencode(raw / "real") + b"/caf\xe9.jpg", "wb") as fh:
        fh.write(jpeg_bytes(8))
    _, rejected, _ = split_dataset(raw, tmp_path, class_names=CLASSES, fractions=FRACTIONS,
                                   seed=0, keep_existing=True, group_regex=None)
    assert sorted(r["file"] for r in rejected if r["reason"] == "bad_name") == [
        "raw/fake/line\nbreak.jpg", "raw/real/caf\\xe9.jpg"]


@pytest.mark.parametrize("empty", ["fake", "both_present_one_empty"])
def test_one_class_only_and_an_empty_class_folder(tmp_path, empty):
    raw = tmp_path / "raw"
    write_faces(raw / "real", 5, False)
    (raw / "fake").mkdir()
    if empty == "both_present_one_empty":
        write_faces(raw / "train" / "real", 2, False, start=10)
    with pytest.raises(ValueError, match="Only one class found: .* real images and no fake"):
        split_dataset(raw, tmp_path, class_names=CLASSES, fractions=FRACTIONS, seed=0,
                      keep_existing=True, group_regex=None)


def encode_frames(fmt: str, frames: list[np.ndarray], **kw) -> bytes:
    buf = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(buf, fmt, save_all=len(images) > 1, append_images=images[1:], **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,n_frames,kw", [
    ("GIF", 3, {"duration": 100, "loop": 0}),
    ("WEBP", 1, {"quality": 90}),
    ("WEBP", 1, {"lossless": True}),
    ("WEBP", 3, {"duration": 100, "lossless": True}),
    ("PNG", 3, {"duration": 100}),  # APNG
])
def test_animated_and_webp_images_are_scored_by_their_first_frame(fmt, n_frames, kw):
    frames = [np.full((30, 40, 3), v, np.uint8) for v in (20, 200, 120)[:n_frames]]
    out = load_image(encode_frames(fmt, frames, **kw), 16)
    assert out.shape == (16, 16, 3) and abs(out.mean() - 20) < 3


def deepfake(*args, cwd):
    return subprocess.run([sys.executable, "-m", "deepfake_detector.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import keras

    from deepfake_detector.models import build_model
    from deepfake_detector.params_check import complete_model

    folder = tmp_path_factory.mktemp("model")
    build_model("baseline", 64, complete_model("baseline")).save(folder / "m.keras")
    (folder / "garbage.keras").write_bytes(b"not a model at all")
    inputs = keras.Input((64, 64, 3))
    outputs = keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=(1, 2, 3))[:, None])(inputs)
    keras.Model(inputs, outputs).save(folder / "lambda.keras")
    return folder


@pytest.mark.parametrize("args,code,message", [
    (["predict", "docs", "--model", "{m}/missing.keras"], 2, "no model file"),
    (["predict", "docs", "--model", "{m}/garbage.keras"], 2, "not a Keras model this project"),
    (["predict", "docs", "--model", "{m}/lambda.keras"], 2, "not a Keras model this project"),
    (["predict", "docs", "--model", "{m}/m.keras", "--out", "{m}/x.txt"], 2, "must end in .csv"),
    (["predict", "docs", "--model", "{m}/m.keras", "--out", "/no/such/x.csv"], 2, "no folder"),
    (["evaluate", "--data", "/no/such/folder", "--model", "{m}/m.keras"], 2, "no folder"),
    (["evaluate", "--data", "docs", "--model", "{m}/m.keras"], 2, "needs images under both"),
    (["serve", "--port", "99999"], 2, "a port is a number from 0 to 65535"),
    (["models", "--lineage", "abc"], 2, "invalid int value"),
    (["frobnicate"], 2, "invalid choice"),
    (["predict"], 2, "the following arguments are required: PATH"),
])
def test_bad_cli_arguments_get_one_clear_line(tiny_model, args, code, message):
    """A usage error, argparse's included, is one line on stderr starting ``error:``, with
    exit 2 and nothing on stdout or on disk."""
    args = [a.format(m=tiny_model) for a in args]
    done = deepfake(*args, cwd=ROOT)
    assert done.returncode == code, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert done.stdout == ""
    assert not (tiny_model / "x.txt").exists()


def test_a_file_that_cannot_be_scored_is_a_row_and_exit_1(tiny_model):
    done = deepfake("predict", f"{tiny_model}/nothing.jpg", "--model", f"{tiny_model}/m.keras",
                    cwd=ROOT)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "unreadable" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_keras_safe_mode_refuses_a_lambda_layer(tiny_model):
    import keras

    with pytest.raises(ValueError, match="safe_mode"):
        keras.models.load_model(tiny_model / "lambda.keras", compile=False)
    assert "safe_mode=False" not in "".join(
        p.read_text() for p in (ROOT / "src").rglob("*.py"))


def test_request_bodies_that_are_not_multipart_get_400():
    from test_service import make_app

    server, thread, url = start_server(make_app())
    try:
        as_json = httpx.post(f"{url}/predict", json={"files": ["a.jpg"]})
        form = httpx.post(f"{url}/explain", data={"file": "not an upload"})
        empty = httpx.post(f"{url}/explain")
    finally:
        server.should_exit = True
        thread.join(10)
    for reply in (as_json, form, empty):
        assert reply.status_code == 400, reply.text
        assert "multipart" in str(reply.json()["detail"]), reply.text


def listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) with a socket listening on port."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in open(table).read().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
                    found.append(address)
    return found


def test_serve_binds_to_this_machine_only_by_default(tiny_model):
    from helpers import free_port, wait_http

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "deepfake_detector.cli", "serve", "--model",
                             str(tiny_model / "m.keras"), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1, not 0.0.0.0
    finally:
        proc.terminate()
        proc.wait(30)
