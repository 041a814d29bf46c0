"""Provenance beside the pixels: Content Credentials signed here with a certificate chain
made by ``cryptography`` (valid, changed after signing, signed outside the trust list),
XMP DigitalSourceType, generator text chunks and camera EXIF, and hostile manifest stores;
read in process, over a real server and through the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from c2pa_files import (
    camera_jpeg,
    change_pixels,
    face_jpeg,
    hostile_files,
    make_chain,
    png_with_text,
    sign,
    xmp_jpeg,
)
from conftest import ROOT
from helpers import start_server

from deepfake_detector.provenance import Provenance, has_manifest_store

BIN = Path(sys.executable).parent

# file -> (claim, verified, trusted, source) with the test's trust list (its own root)
EXPECTED = {
    "signed.jpg": ("ai_generated", True, True, "c2pa"),
    "changed_after_signing.jpg": ("ai_generated", False, False, "c2pa"),
    "signed_by_a_stranger.jpg": ("ai_generated", True, False, "c2pa"),
    "camera_signed_then_edited.jpg": ("edited", True, True, "c2pa"),
    "ai_fill_signed.jpg": ("ai_edited", True, True, "c2pa"),
    "xmp_only.jpg": ("ai_generated", False, False, "xmp"),
    "webui.png": ("ai_generated", False, False, "generator"),
    "comfyui.png": ("ai_generated", False, False, "generator"),
    "camera.jpg": ("camera", False, False, "exif"),
    "plain.jpg": ("none", False, False, None),
}
HOSTILE = ("truncated_store.jpg", "lying_lengths.jpg", "nested_deeply.jpg", "huge_store.jpg")


@pytest.fixture(scope="module")
def signed_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("provenance")
    ours, stranger = make_chain("Test Generator"), make_chain("Stranger")
    (folder / "trust.pem").write_bytes(ours.root_pem)
    signed = sign(face_jpeg(1), ours)
    edit = {"action": "c2pa.edited",
            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/"
                                 "compositeWithTrainedAlgorithmicMedia"}
    files = {"signed.jpg": signed, "changed_after_signing.jpg": change_pixels(signed),
             "signed_by_a_stranger.jpg": sign(face_jpeg(2), stranger),
             "camera_signed_then_edited.jpg": sign(
                 face_jpeg(3), ours, "digitalCapture", "Camera App",
                 actions=[{"action": "c2pa.color_adjustments"}]),
             "ai_fill_signed.jpg": sign(face_jpeg(4), ours, "digitalCapture", "Editor",
                                        actions=[edit]),
             "xmp_only.jpg": xmp_jpeg("trainedAlgorithmicMedia"),
             "webui.png": png_with_text({"parameters": "a portrait\nSteps: 20, Sampler: Euler"}),
             "comfyui.png": png_with_text({"prompt": '{"3": {}}', "workflow": '{"nodes": []}'}),
             "camera.jpg": camera_jpeg("Canon", "EOS R5"), "plain.jpg": face_jpeg(5),
             **hostile_files(signed)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def check(name: str, found: dict) -> None:
    """What each file must say (``EXPECTED``; a hostile store: a per-file error or a
    broken signature, never a verified claim)."""
    if name in HOSTILE:
        assert found["error"].startswith("c2pa: ") or (
            found["source"] == "c2pa" and not found["verified"]), (name, found)
        return
    claim, verified, trusted, source = EXPECTED[name]
    assert (found["claim"], found["verified"], found["trusted"], found["source"]) == \
        (claim, verified, trusted, source), (name, found)
    assert found["error"] == "", (name, found)


def test_each_kind_of_provenance_reads_as_what_it_is(signed_files):
    reader = Provenance(str(signed_files / "trust.pem"), timeout_s=20)
    for name in [*EXPECTED, *HOSTILE]:
        check(name, reader.read((signed_files / name).read_bytes()))
    signed = reader.read(signed_files / "signed.jpg")  # by path, as the CLI's videos are
    assert signed["c2pa"]["digital_source_type"] == "trainedAlgorithmicMedia"
    assert signed["c2pa"]["claim_generator"] == "TestGen 1.0"
    assert signed["c2pa"]["signer"] == "Test Generator Signer"
    assert "signer in your trust list" in signed["summary"]
    broken = reader.read((signed_files / "changed_after_signing.jpg").read_bytes())
    assert {"code": "assertion.dataHash.mismatch", "assertion": "c2pa.hash.data"} in [
        {k: f[k] for k in ("code", "assertion")} for f in broken["c2pa"]["failures"]]
    assert "signature broken: assertion.dataHash.mismatch in c2pa.hash.data" in \
        broken["summary"]
    # with no trust list (the default) a good signature is valid but nobody's in particular
    plain = Provenance().read((signed_files / "signed.jpg").read_bytes())
    assert (plain["verified"], plain["trusted"]) == (True, False)
    assert "signature valid; signer not in your trust list" in plain["summary"]
    assert "nothing about whether the file is authentic" in \
        reader.read((signed_files / "plain.jpg").read_bytes())["summary"]
    nested = reader.read((signed_files / "nested_deeply.jpg").read_bytes())
    assert "nesting depth" in nested["error"]


def test_a_slow_manifest_reader_is_stopped_and_named(signed_files):
    data = (signed_files / "signed.jpg").read_bytes()
    assert has_manifest_store(data) and not has_manifest_store(face_jpeg(5))
    found = Provenance(timeout_s=0.001).read(data)
    assert found["error"] == "c2pa: reading the manifest store took over 0.001 s (stopped)"
    assert found["claim"] == "none" and not found["verified"]


def test_the_api_returns_provenance_beside_every_score(signed_files, tmp_path):
    """Over a real server with the test's trust list: every file is scored by the CNN, and
    each carries its provenance; hostile stores cost their own provenance only."""
    from test_service import make_app

    names = [*EXPECTED, *HOSTILE]
    app = make_app(max_upload_mb=64, max_request_mb=256, max_files=len(names),
                   provenance={"trust_anchors": str(signed_files / "trust.pem")})
    server, thread, url = start_server(app)
    try:
        assert httpx.get(f"{url}/model").json()["provenance"] == {"trust_list": 1}
        files = [("files", (n, (signed_files / n).read_bytes())) for n in names]
        reply = httpx.post(f"{url}/predict", files=files, timeout=120)
        assert reply.status_code == 200, reply.text[:500]
        for row in reply.json()["results"]:
            assert row["error"] == "" and 0 <= row["p_fake"] <= 1, row  # the CNN still scores
            check(row["file"], row["provenance"])
        assert httpx.get(f"{url}/health").json()["status"] == "ok"  # the service is still up
        # a clip's Content Credentials (an MP4 manifest) come with its scan
        from test_video_scan import clip

        video = sign(clip(tmp_path / "clip.mp4").read_bytes(), make_chain("Video"),
                     mime="video/mp4")
        scanned = httpx.post(f"{url}/scan", files={"file": ("clip.mp4", video)}, timeout=120)
        assert scanned.status_code == 200, scanned.text[:500]
        found = scanned.json()["provenance"]
        assert (found["claim"], found["verified"], found["trusted"]) == \
            ("ai_generated", True, False), found
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_cli_prints_provenance_alone_with_a_nonzero_exit_for_unreadable_stores(
        signed_files, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    params = (ROOT / "params.yaml").read_text().replace(
        "trust_anchors: null", f"trust_anchors: {signed_files / 'trust.pem'}")
    (project / "params.yaml").write_text(params)
    done = subprocess.run([BIN / "deepfake", "provenance", str(signed_files), "--json",
                           "--out", "found.json"], cwd=project, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # the hostile stores could not be read
    rows = {Path(r["file"]).name: r for r in json.loads(done.stdout)}
    assert rows == {Path(r["file"]).name: r
                    for r in json.loads((project / "found.json").read_text())}
    assert set(rows) == set(EXPECTED) | set(HOSTILE)
    for name, row in rows.items():
        check(name, row["provenance"])
    table = subprocess.run([BIN / "deepfake", "provenance", str(signed_files / "signed.jpg"),
                            str(signed_files / "plain.jpg")], cwd=project,
                           capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    signed_line, plain_line = table.stdout.splitlines()
    assert "ai_generated" in signed_line and "Content Credentials: generated by AI with " \
        "TestGen 1.0, signed by Test Generator Signer" in signed_line
    assert "signature valid, signer in your trust list" in signed_line
    assert "no provenance found" in plain_line
    missing = subprocess.run([BIN / "deepfake", "provenance", "nowhere.jpg"], cwd=project,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 1 and "nowhere.jpg" in missing.stdout


def test_the_split_stage_counts_provenance_per_class_and_audits_it(tmp_path):
    """Fakes saved with an AI statement in their metadata (5 of them also signed), reals
    with camera EXIF, all JPEG at one quality: the counts say so per class, and the
    shortcut audit, which sees these facts, flags that the classes were saved differently."""
    from test_near_duplicates import run

    chain = make_chain()
    for i in range(30):
        (tmp_path / "raw/real").mkdir(parents=True, exist_ok=True)
        (tmp_path / "raw/fake").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"raw/real/r{i}.jpg").write_bytes(camera_jpeg(model=f"EOS R{i % 5}",
                                                                  seed=100 + i))
        fake = xmp_jpeg("trainedAlgorithmicMedia", seed=200 + i)
        (tmp_path / f"raw/fake/f{i}.jpg").write_bytes(sign(fake, chain) if i < 5 else fake)
    audit = run(tmp_path / "raw", tmp_path)[2]["shortcut_audit"]
    real, fake = (audit["per_class"][c]["provenance"] for c in ("real", "fake"))
    assert real == {"files": 30, "c2pa": 0, "metadata": {"camera": 30}}
    assert fake == {"files": 30, "c2pa": 5, "metadata": {"ai_generated": 30}}
    assert audit["auc"] > 0.9
