"""Provenance beside the pixels: Content Credentials signed here with a certificate chain
made by ``cryptography`` (valid, changed after signing, signed outside the trust list),
XMP DigitalSourceType, generator text chunks and camera EXIF, and hostile manifest stores;
read in process, over a real server and through the CLI."""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from c2pa_files import (
    add_png_comment,
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
    "ai_image_retouched.jpg": ("ai_generated", True, True, "c2pa"),  # via its ingredient
    "signed.png": ("ai_generated", True, True, "c2pa"),
    "xmp_only.jpg": ("ai_generated", False, False, "xmp"),
    "xmp_with_a_decoy_comment.jpg": ("camera", False, False, "xmp"),
    "webui.png": ("ai_generated", False, False, "generator"),
    "comfyui.png": ("ai_generated", False, False, "generator"),
    "camera.jpg": ("camera", False, False, "exif"),
    "phone_with_firmware.jpg": ("camera", False, False, "exif"),  # Software: its firmware
    "photoshop_only.jpg": ("edited", False, False, "exif"),
    "webui_under_a_broken_camera_manifest.png": ("ai_generated", False, False, "generator"),
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
             "ai_image_retouched.jpg": sign(
                 face_jpeg(6), ours, generator="Editor", parent=signed,
                 actions=[{"action": "c2pa.color_adjustments"}]),
             "signed.png": sign(png_with_text({}), ours, mime="image/png"),
             "xmp_only.jpg": xmp_jpeg("trainedAlgorithmicMedia"),
             "xmp_with_a_decoy_comment.jpg": xmp_jpeg(
                 "digitalCapture", comment="<!-- Iptc4xmpExt:DigitalSourceType=\"http://cv.iptc"
                 ".org/newscodes/digitalsourcetype/trainedAlgorithmicMedia\" -->"),
             "webui.png": png_with_text({"parameters": "a portrait\nSteps: 20, Sampler: Euler"}),
             "comfyui.png": png_with_text({"prompt": '{"3": {}}', "workflow": '{"nodes": []}'}),
             "camera.jpg": camera_jpeg("Canon", "EOS R5"), "plain.jpg": face_jpeg(5),
             "phone_with_firmware.jpg": camera_jpeg("Apple", "iPhone 15", software="17.1.2"),
             "photoshop_only.jpg": camera_jpeg("", "", software="Adobe Photoshop 25.0"),
             "webui_under_a_broken_camera_manifest.png": add_png_comment(sign(
                 png_with_text({"parameters": "a face, Steps: 20"}), ours, "digitalCapture",
                 mime="image/png")),
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
    manifests = []  # seconds to read each file that has a manifest (the child process)
    for name in [*EXPECTED, *HOSTILE]:
        data = (signed_files / name).read_bytes()
        started = time.perf_counter()
        check(name, reader.read(data))
        if has_manifest_store(data):
            manifests.append(time.perf_counter() - started)
    manifests.sort()
    print(f"read with a manifest (child process): {len(manifests)} files, median "
          f"{statistics.median(manifests) * 1000:.0f} ms, {manifests[0] * 1000:.0f}-"
          f"{manifests[-1] * 1000:.0f} ms")
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


def test_a_slow_manifest_reader_is_stopped_named_and_reaped(signed_files):
    import psutil

    data = (signed_files / "huge_store.jpg").read_bytes()  # ~0.5 s to read whole
    assert has_manifest_store(data) and not has_manifest_store(face_jpeg(5))
    assert not has_manifest_store(png_with_text({"parameters": "jumb c2pa jumd"}))
    found = Provenance(timeout_s=0.2).read(data)
    assert found["error"] == "c2pa: reading the manifest store took over 0.2 s (stopped)"
    assert found["claim"] == "none" and not found["verified"]
    readers = [c for c in psutil.Process().children(recursive=True)
               if "provenance_worker" in " ".join(c.cmdline())]
    assert readers == []  # the reader was killed and reaped (other tests' browser aside)


def test_metadata_is_read_from_headers_without_decoding(capfd):
    """A PNG declaring 30,000² pixels, a 1.1 MB compressed text chunk beside a generator's
    chunk, and EXIF with odd values: read from the headers in milliseconds, the generator
    still found, nothing printed."""
    import struct
    import time
    import zlib

    from PIL import Image

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    png = png_with_text({"parameters": "a face, Steps: 20"})
    at = png.index(b"IHDR") - 4
    huge = png[:at] + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)) \
        + chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * 1_100_000)) + png[at + 25:]
    started = time.perf_counter()
    found = Provenance().read(huge)
    assert time.perf_counter() - started < 0.5
    assert (found["claim"], found["source"]) == ("ai_generated", "generator"), found
    # 300 compressed chunks of 1.1 MB each (other keywords) and 64 KB of unclosed comments
    # in the XMP: skipped and scanned in one pass, not inflated or searched from each "<!--"
    many = b"".join(chunk(b"zTXt", b"k%d\0\0" % i + zlib.compress(b"A" * 1_100_000))
                    for i in range(300))
    started = time.perf_counter()
    found = Provenance().read(png[:-12] + many + png[-12:])
    unclosed = Provenance().read(face_jpeg(1, xmp=b"<!--" * 16_000))
    assert time.perf_counter() - started < 0.5
    assert found["claim"] == "ai_generated" and unclosed["claim"] == "none"
    exif = Image.Exif()
    exif[0x010F], exif[0x0131] = (1, 2, 3), "x" * 30_000
    odd = Provenance().read(face_jpeg(3, exif=exif.tobytes()))
    assert len(odd["metadata"].get("software", "")) == 100
    assert capfd.readouterr().err == ""


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
    from test_video_scan import clip  # an MP4's manifest, read by path

    video = tmp_path / "signed.mp4"
    video.write_bytes(sign(clip(tmp_path / "plain.mp4").read_bytes(), make_chain("Video"),
                           mime="video/mp4"))
    clips = subprocess.run([BIN / "deepfake", "provenance", str(video), str(tmp_path /
                            "plain.mp4"), "--json"], cwd=project, capture_output=True,
                           text=True, timeout=300)
    assert clips.returncode == 0, clips.stderr
    signed_clip, plain_clip = (r["provenance"] for r in json.loads(clips.stdout))
    assert (signed_clip["claim"], signed_clip["verified"]) == ("ai_generated", True)
    assert plain_clip["claim"] == "none" and plain_clip["error"] == ""


def test_the_split_stage_counts_provenance_per_class_and_audits_it(tmp_path):
    """Fakes saved with an AI statement in their metadata (5 of them also signed), reals
    with camera EXIF, all JPEG at one quality: the counts say so per class, and the
    shortcut audit, which sees these facts, flags that the classes were saved differently."""
    import numpy as np
    from test_near_duplicates import run

    from deepfake_detector.file_audit import inspect_files, shortcut_audit

    chain, sizes = make_chain(), np.random.default_rng(0).integers(64, 160, 60)
    for i in range(30):  # both classes drawn from one size distribution
        (tmp_path / "raw/real").mkdir(parents=True, exist_ok=True)
        (tmp_path / "raw/fake").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"raw/real/r{i}.jpg").write_bytes(camera_jpeg(
            model=f"EOS R{i % 5}", seed=100 + i, size=int(sizes[i])))
        fake = xmp_jpeg("trainedAlgorithmicMedia", seed=200 + i, size=int(sizes[30 + i]))
        (tmp_path / f"raw/fake/f{i}.jpg").write_bytes(sign(fake, chain) if i < 5 else fake)
    audit = run(tmp_path / "raw", tmp_path)[2]["shortcut_audit"]
    real, fake = (audit["per_class"][c]["provenance"] for c in ("real", "fake"))
    assert real == {"files": 30, "c2pa": 0, "metadata": {"camera": 30}}
    assert fake == {"files": 30, "c2pa": 5, "metadata": {"ai_generated": 30}}
    assert audit["auc"] > 0.9
    # the same files' other facts alone (provenance blanked) do not give the class away
    paths = sorted((tmp_path / "raw").rglob("*.jpg"))
    facts = inspect_files([str(p) for p in paths]).assign(c2pa=None, metadata_claim=None)
    labels = [int(p.parent.name == "fake") for p in paths]
    assert shortcut_audit(facts, labels, seed=1)["auc"] < 0.7


def test_text_a_file_supplies_is_one_printable_line():
    """Generator text with terminal escapes, control characters and 100 KB reaches the
    table, the page and the report as one printable line of at most 200 characters."""
    hostile = "\x1b[2J\x1b[31mfake\r\nSteps: 20\x00\x07" + "x" * 100_000
    found = Provenance().read(png_with_text({"parameters": hostile}))
    text = found["metadata"]["generator_text"]
    assert text.startswith("[2J[31mfake Steps: 20x") and len(text) == 200
    assert text.isprintable() and found["summary"].isprintable()


def test_claims_follow_ingredients_once_and_ignore_non_editorial_actions():
    """A store whose manifests name each other as parents (six times each) is judged in
    one pass; a capture that was only transcoded and published is still a capture."""
    import time

    from deepfake_detector.provenance_claims import manifest_claim

    def manifest(parent, actions):
        return {"assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}],
                "ingredients": [{"relationship": "parentOf", "active_manifest": parent}] * 6}

    created = {"action": "c2pa.created", "digitalSourceType": "http://cv.iptc.org/newscodes/"
               "digitalsourcetype/digitalCapture"}
    store = {"manifests": {"a": manifest("b", [created, {"action": "c2pa.transcoded"},
                                               {"action": "c2pa.published"}]),
                           "b": manifest("a", [{"action": "c2pa.opened"}])}}
    started = time.perf_counter()
    assert manifest_claim(store, "a") == "camera" and manifest_claim(store, "b") == "camera"
    assert time.perf_counter() - started < 0.1
    store["manifests"]["b"] = manifest("a", [{"action": "c2pa.opened"},
                                             {"action": "c2pa.cropped"}])
    assert manifest_claim(store, "b") == "edited"
