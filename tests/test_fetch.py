"""fetch: every data.source form, safe extraction, resumable verified downloads, fake Drive."""

import hashlib
import io
import json
import stat
import zipfile

import pytest
import requests
from helpers import FakeServer, jpeg_bytes, make_zip, snapshot, write_faces

from deepfake_detector.download import DownloadError, download
from deepfake_detector.sources import ExtractLimits, SourceError, fetch, source_kind


def images_zip(path, n=3):
    files = {f"data/train/real/r{i}.jpg": jpeg_bytes(i) for i in range(n)}
    files |= {f"data/train/fake/f{i}.jpg": jpeg_bytes(i, fake=True) for i in range(n)}
    return make_zip(path, files)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_source_kinds():
    assert [source_kind(s) for s in ("synthetic", "gdrive://abc", "https://x/y.zip",
                                     "data.ZIP", "some/folder")] == [
        "synthetic", "gdrive", "url", "zip", "folder"]


def test_synthetic_source(tmp_path):
    from deepfake_detector.synthetic import SyntheticConfig

    rec = fetch("synthetic", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "cache",
                synthetic_cfg=SyntheticConfig(n_images=10))
    assert rec["n_images"] == 10 and (tmp_path / "raw" / "masks.npz").exists()
    assert json.loads((tmp_path / "raw" / "source.json").read_text())["kind"] == "synthetic"


def test_folder_source_copies_images_only_and_leaves_source_alone(tmp_path):
    src = tmp_path / "src"
    write_faces(src / "Real", 2, False)
    write_faces(src / "Fake", 2, True)
    (src / "notes.txt").write_text("not copied")
    before = snapshot(src)
    rec = fetch("src", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "cache")
    assert rec["n_images"] == 4
    assert (tmp_path / "raw" / "Real" / "img0000.jpg").exists()
    assert not (tmp_path / "raw" / "notes.txt").exists()
    assert snapshot(src) == before


def test_missing_folder_and_empty_source_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="not a folder"):
        fetch("nowhere", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no image files"):
        fetch("empty", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "c")


def test_local_zip_with_checksum(tmp_path):
    archive = images_zip(tmp_path / "d.zip")
    good = sha(archive.read_bytes())
    rec = fetch("d.zip", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "c", sha256=good)
    assert rec["sha256"] == good and rec["n_images"] == 6
    with pytest.raises(SourceError, match="Checksum mismatch"):
        fetch("d.zip", tmp_path / "raw2", root=tmp_path, cache_dir=tmp_path / "c",
              sha256="0" * 64)
    assert not (tmp_path / "raw2").exists()


def hostile_zip(path, kind):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok/real/a.jpg", jpeg_bytes(1))
        if kind == "absolute":
            info = zipfile.ZipInfo("x")
            info.filename = "/etc/evil.jpg"  # ZipInfo() strips a leading slash; force it
            zf.writestr(info, b"x")
        elif kind == "dotdot":
            zf.writestr("ok/../../evil.jpg", b"x")
        elif kind == "symlink":
            info = zipfile.ZipInfo("ok/real/link.jpg")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        elif kind == "ratio":
            zf.writestr("ok/real/bomb.jpg", b"\0" * (8 << 20))
        elif kind == "size":
            zf.writestr("ok/real/big.jpg", bytes(range(256)) * 8192)
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("kind,message", [
    ("absolute", "'/etc/evil.jpg' has an absolute path"),
    ("dotdot", "'ok/../../evil.jpg' points outside"),
    ("symlink", "'ok/real/link.jpg' is a symbolic link"),
    ("ratio", "'ok/real/bomb.jpg' expands"),
    ("size", "max_total_bytes=1000000 at entry 'ok/real/big.jpg'"),
])
def test_hostile_archives_are_refused_and_nothing_is_written(tmp_path, kind, message):
    limits = ExtractLimits(max_total_bytes=1_000_000 if kind == "size" else 100_000_000,
                           max_ratio=1e9 if kind == "size" else 100)
    work = tmp_path / "work"
    work.mkdir()
    hostile_zip(work / "h.zip", kind)
    before = snapshot(tmp_path)
    with pytest.raises(SourceError) as info:
        fetch("h.zip", work / "raw", root=work, cache_dir=work / "cache", limits=limits)
    assert message in str(info.value)
    assert snapshot(tmp_path) == before  # no file written anywhere, not even the target


def test_not_a_zip_is_a_clear_error(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK but not really")
    with pytest.raises(SourceError, match="not a readable zip"):
        fetch("bad.zip", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "c")


def zip_route(body, *, ranges=True, name="dataset.zip", cut=None):
    def route(handler, query):
        headers = {"Content-Type": "application/zip",
                   "Content-Disposition": f'attachment; filename="{name}"'}
        rng = handler.headers.get("Range")
        if rng and ranges:
            start = int(rng.split("=")[1].split("-")[0])
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            return 206, headers, body[start:]
        if cut is not None and not route.cut_done:
            route.cut_done = True
            headers["Content-Length"] = str(len(body))
            return 200, headers, body, cut
        return 200, headers, body
    route.cut_done = False
    return route


def test_url_download_resumes_verifies_and_is_not_repeated(tmp_path):
    body = images_zip(tmp_path / "d.zip", n=60).read_bytes()
    cache = tmp_path / "cache"
    with FakeServer() as server:
        server.routes["/d.zip"] = zip_route(body, cut=len(body) // 2)
        url = server.url + "/d.zip"
        with pytest.raises(requests.RequestException):  # the connection drops half way
            download(url, cache, sha256=sha(body))
        part = next(cache.glob("*.part"))
        held = part.stat().st_size  # what arrived before the drop, kept
        assert held == len(body) // 2
        path = download(url, cache, sha256=sha(body))
        assert path.read_bytes() == body and path.name.endswith("dataset.zip")
        # the second request asked for the rest only, from the first byte the .part lacked
        assert server.requests[-1]["headers"]["Range"] == f"bytes={held}-"
        n = len(server.requests)
        rec = fetch(url, tmp_path / "raw", root=tmp_path, cache_dir=cache, sha256=sha(body))
        assert rec["n_images"] == 120
        assert len(server.requests) == n  # same source and checksum: no network at all
        assert not list(cache.glob("*.part"))


def test_server_without_range_restarts_cleanly(tmp_path):
    body = images_zip(tmp_path / "d.zip").read_bytes()
    cache = tmp_path / "cache"
    cache.mkdir()
    with FakeServer() as server:
        server.routes["/d.zip"] = zip_route(body, ranges=False)
        url = server.url + "/d.zip"
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        (cache / f"{key}.part").write_bytes(b"stale half download")
        assert download(url, cache).read_bytes() == body


def test_checksum_mismatch_deletes_the_download(tmp_path):
    body = images_zip(tmp_path / "d.zip").read_bytes()
    with FakeServer() as server:
        server.routes["/d.zip"] = zip_route(body)
        with pytest.raises(DownloadError, match="Checksum mismatch"):
            download(server.url + "/d.zip", tmp_path / "c", sha256="ab" * 32)
    assert not [p for p in (tmp_path / "c").iterdir() if p.suffix in (".part", ".zip")]


def test_http_error_is_clear(tmp_path):
    with FakeServer() as server, pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url + "/missing.zip", tmp_path / "c")


# --- Google Drive ------------------------------------------------------------------------

WARNING_PAGE = """<html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="{action}" method="get">
<input type="submit" value="Download anyway"/>
<input type="hidden" name="id" value="{fid}"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-123">
</form></body></html>"""


def html(body, status=200, headers=None):
    return lambda handler, query: (status, {"Content-Type": "text/html; charset=utf-8",
                                            **(headers or {})}, body.encode())


def drive_fetch(tmp_path, server, fid="FILEID"):
    return fetch(f"gdrive://{fid}", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "c",
                 gdrive_base=server.url)


def test_gdrive_direct_file(tmp_path):
    body = images_zip(tmp_path / "d.zip").read_bytes()
    with FakeServer() as server:
        server.routes["/uc"] = zip_route(body, name="Deepfake-images.zip")
        rec = drive_fetch(tmp_path, server)
        assert rec["n_images"] == 6
        assert "id=FILEID" in server.requests[0]["query"]
        assert list((tmp_path / "c").glob("*-Deepfake-images.zip"))


def test_gdrive_warning_page_then_file_with_cookie(tmp_path, monkeypatch):
    body = images_zip(tmp_path / "d.zip").read_bytes()
    with FakeServer() as server:
        page = WARNING_PAGE.format(action=server.url + "/download", fid="FILEID")
        server.routes["/uc"] = html(page, headers={"Set-Cookie": "NID=abc; Path=/"})
        server.routes["/download"] = zip_route(body)
        monkeypatch.setenv("DEEPFAKE_GDRIVE_URL", server.url)  # the documented override
        rec = fetch("gdrive://FILEID", tmp_path / "raw", root=tmp_path,
                    cache_dir=tmp_path / "c")
        assert rec["n_images"] == 6
        second = server.requests[1]
        assert second["path"] == "/download"
        assert all(f in second["query"] for f in ("id=FILEID", "confirm=t", "uuid=u-123"))
        assert "NID=abc" in second["headers"].get("Cookie", "")


def test_gdrive_old_cookie_flow(tmp_path):
    body = images_zip(tmp_path / "d.zip").read_bytes()

    def uc(handler, query):
        if "confirm=TOKEN" in query:
            return zip_route(body)(handler, query)
        return (200, {"Content-Type": "text/html",
                      "Set-Cookie": "download_warning_123=TOKEN; Path=/"}, b"<html>warn</html>")

    with FakeServer() as server:
        server.routes["/uc"] = uc
        assert drive_fetch(tmp_path, server)["n_images"] == 6


@pytest.mark.parametrize("page,message", [
    ("<html><body><p>Sorry, you can't view or download this file at this time.</p>"
     "<p>Too many users have viewed or downloaded this file recently.</p></body></html>",
     "quota"),
    ("<html><body><h1>You need access</h1><p>Request access, or switch to an account "
     "with access.</p></body></html>", "not shared publicly"),
    ("<html><body><p>Something odd happened</p></body></html>", "instead of the file"),
])
def test_gdrive_pages_without_a_form_are_explained(tmp_path, page, message):
    with FakeServer() as server:
        server.routes["/uc"] = html(page)
        before = snapshot(tmp_path)
        with pytest.raises(DownloadError) as info:
            drive_fetch(tmp_path, server)
    assert message in str(info.value) and "gdrive://FILEID" in str(info.value)
    assert "data.source" in str(info.value)  # says what to do instead
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("c/")} == before


def test_gdrive_error_page_404(tmp_path):
    with FakeServer() as server:  # no /uc route: the fake answers 404 with an HTML page
        with pytest.raises(DownloadError, match="does not exist"):
            drive_fetch(tmp_path, server)


def test_fetch_stage_killed_by_a_dropped_connection_resumes_on_the_next_run(tmp_path):
    """The stage as `dvc repro` runs it: the first run fails with a clear line and keeps its
    .part; the second asks only for the missing bytes, verifies them and extracts."""
    from conftest import ROOT
    from helpers import mini_project, run_stage

    body = images_zip(tmp_path / "d.zip", n=60).read_bytes()
    with FakeServer() as server:
        server.routes["/d.zip"] = zip_route(body, cut=len(body) // 2)
        project = mini_project(tmp_path / "p", ROOT, {"data.source": server.url + "/d.zip",
                                                      "data.sha256": sha(body)})
        first = run_stage(project, "fetch")
        assert first.returncode == 1 and "resumes from its .part file" in first.stderr
        assert "Traceback" not in first.stderr and not (project / "data/raw").exists()
        second = run_stage(project, "fetch")
        assert second.returncode == 0, second.stderr[-2000:]
        held = int(server.requests[-1]["headers"]["Range"].split("=")[1].rstrip("-"))
        assert 0 < held < len(body)  # the second run fetched only len(body) - held bytes
    assert json.loads((project / "data/raw/source.json").read_text())["n_images"] == 120
