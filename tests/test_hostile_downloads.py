"""Hostile download servers (issue 11, items 4 and 5): endless bodies, trickles, stalls, lies
about Content-Length, HTML served as a zip, absurd file names, redirect loops. Every case
ends in one clear error within its bound, and nothing unverified is left in the cache."""

import hashlib
import io
import socket
import threading
import time
import zipfile
from urllib.parse import quote

import pytest
import requests
from helpers import FakeServer, jpeg_bytes, make_zip

from deepfake_detector.download import DownloadError, DownloadLimits, download
from deepfake_detector.sources import SourceError, fetch

MiB = 1 << 20
SMALL = DownloadLimits(max_bytes=MiB, stall_s=1, deadline_s=2)


class RawServer:
    """A server on 127.0.0.1 whose routes write raw bytes to the socket, so a response can
    break HTTP the way http.server never would. ``routes`` maps a path to
    ``route(conn, request, server)``; every request is recorded."""

    def __init__(self):
        self.routes: dict = {}
        self.requests: list[dict] = []
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self):
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.sock.close()

    def count(self, path):
        return sum(r["path"] == path for r in self.requests)

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            first, *lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            path = first.split(" ")[1].partition("?")[0]
            request = {"path": path, "headers": dict(
                line.split(": ", 1) for line in lines if ": " in line)}
            self.requests.append(request)
            route = self.routes.get(path)
            try:
                if route is None:
                    conn.sendall(head(404, "Not Found", {"Content-Length": "0"}))
                else:
                    route(conn, request, self)
            except OSError:  # the client hung up: what most of these routes wait for
                pass


def head(status, reason, headers):
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def images_zip(tmp_path, n=3):
    files = {f"real/r{i}.jpg": jpeg_bytes(i) for i in range(n)}
    files |= {f"fake/f{i}.jpg": jpeg_bytes(i, fake=True) for i in range(n)}
    return make_zip(tmp_path / "d.zip", files).read_bytes()


def on_disk(folder):
    """{name: size} of every file in the cache folder."""
    return {p.name: p.stat().st_size for p in folder.iterdir()} if folder.exists() else {}


# --- item 4: bounds ----------------------------------------------------------------------

def endless(conn, request, server):
    conn.sendall(head(200, "OK", {"Content-Type": "application/zip"}))  # no length: to EOF
    block = b"\0" * (1 << 16)
    while not server.stop.is_set():
        conn.sendall(block)


def test_endless_body_stops_at_max_bytes_and_deletes_the_part(tmp_path):
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/d.zip"] = endless
        t0 = time.monotonic()
        with pytest.raises(DownloadError) as info:
            download(server.url + "/d.zip", cache, limits=SMALL)
        seconds = time.monotonic() - t0
    message = str(info.value)
    assert "more than data.download.max_bytes=1048576 bytes" in message
    assert "partial file was deleted" in message and "\n" not in message
    assert on_disk(cache) == {}  # the .part that broke the cap is gone
    assert seconds < 2


def trickle(conn, request, server):
    conn.sendall(head(200, "OK", {"Content-Type": "application/zip", "Content-Length": "1000"}))
    for _ in range(1000):
        conn.sendall(b"x")
        if server.stop.wait(0.5):
            return


def test_trickle_is_abandoned_at_the_deadline_and_its_part_kept(tmp_path):
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/d.zip"] = trickle
        t0 = time.monotonic()
        with pytest.raises(DownloadError) as info:
            download(server.url + "/d.zip", cache, limits=SMALL)
        seconds = time.monotonic() - t0
    message = str(info.value)
    assert "not finished after data.download.deadline_s=2 s" in message
    assert "the next run resumes" in message and "\n" not in message
    sizes = on_disk(cache)
    assert list(sizes) == [next(iter(sizes))] and next(iter(sizes)).endswith(".part")
    assert 2 <= next(iter(sizes.values())) <= 8  # a byte per 0.5 s for ~2 s: valid, kept
    assert 2 <= seconds < 4  # the deadline, plus at most one 0.5-s gap and a loaded CI


def header_trickle(conn, request, server):
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not server.stop.wait(0.5):  # a header byte every 0.5 s: never a 1-s stall
        conn.sendall(b"x")


def test_headers_trickled_past_the_deadline_are_abandoned(tmp_path):
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/d.zip"] = header_trickle
        t0 = time.monotonic()
        with pytest.raises(DownloadError) as info:
            download(server.url + "/d.zip", cache, limits=SMALL)
        seconds = time.monotonic() - t0
    message = str(info.value)
    assert "not finished after data.download.deadline_s=2 s" in message and "\n" not in message
    assert on_disk(cache) == {}  # no body arrived: nothing kept
    assert 2 <= seconds < 4  # the read timeout (stall_s=1) alone would never end it


def stall_then_resume(body):
    def route(conn, request, server):
        rng = request["headers"].get("Range")
        if rng is None:  # the first time: 100 bytes, then silence
            conn.sendall(head(200, "OK", {"Content-Type": "application/zip",
                                          "Content-Length": str(len(body))}) + body[:100])
            server.stop.wait(30)
            return
        start = int(rng.split("=")[1].rstrip("-"))
        conn.sendall(head(206, "Partial Content", {
            "Content-Type": "application/zip", "Content-Length": str(len(body) - start),
            "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}) + body[start:])
    return route


def test_stalled_server_is_abandoned_after_stall_s_and_the_next_run_resumes(tmp_path):
    body = images_zip(tmp_path)
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/d.zip"] = stall_then_resume(body)
        url = server.url + "/d.zip"
        t0 = time.monotonic()
        with pytest.raises(DownloadError) as info:
            download(url, cache, limits=DownloadLimits(max_bytes=MiB, stall_s=1,
                                                       deadline_s=30))
        seconds = time.monotonic() - t0
        assert "no data for data.download.stall_s=1 s" in str(info.value)
        assert "the 100 bytes received are kept" in str(info.value)
        assert [(n.endswith(".part"), s) for n, s in on_disk(cache).items()] == [(True, 100)]
        assert 1 <= seconds < 3
        path = download(url, cache, limits=SMALL)
        assert server.requests[-1]["headers"]["Range"] == "bytes=100-"
    assert path.read_bytes() == body and not list(cache.glob("*.part"))


def huge_length(conn, request, server):
    conn.sendall(head(200, "OK", {"Content-Type": "application/zip",
                                  "Content-Length": str(10 << 30)}) + b"PK" * 1000)
    server.stop.wait(30)


def resumed_past_the_cap(conn, request, server):
    start = int(request["headers"]["Range"].split("=")[1].rstrip("-"))
    rest = 600 * 1024
    conn.sendall(head(206, "Partial Content", {
        "Content-Type": "application/zip", "Content-Length": str(rest),
        "Content-Range": f"bytes {start}-{start + rest - 1}/{start + rest}"}) + b"x" * 100)
    server.stop.wait(30)


@pytest.mark.parametrize("route,held,said", [(huge_length, 0, 10 << 30),
                                             (resumed_past_the_cap, 600 * 1024, 1200 * 1024)],
                         ids=["10_GiB_length", "resumed_part_plus_length"])
def test_content_length_past_max_bytes_is_refused_before_reading(tmp_path, route, held, said):
    cache = tmp_path / "cache"
    url = None
    with RawServer() as server:
        server.routes["/d.zip"] = route
        url = server.url + "/d.zip"
        if held:  # a .part from an earlier run: its bytes count towards the cap
            cache.mkdir()
            key = hashlib.sha256(url.encode()).hexdigest()[:16]
            (cache / f"{key}.part").write_bytes(b"x" * held)
        t0 = time.monotonic()
        with pytest.raises(DownloadError) as info:
            download(url, cache, limits=SMALL)
        seconds = time.monotonic() - t0
    assert (f"the server says it is {said} bytes, more than data.download.max_bytes=1048576"
            in str(info.value))
    assert sum(on_disk(cache).values()) == held  # nothing written; a valid .part untouched
    assert seconds < 2  # refused on the headers: the 10-GiB body is never read


# --- item 5: nothing unverified in the cache ---------------------------------------------

HTML_PAGE = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"


def html_as_octet_stream(conn, request, server):
    conn.sendall(head(200, "OK", {"Content-Type": "application/octet-stream",
                                  "Content-Length": str(len(HTML_PAGE))}) + HTML_PAGE)


def test_html_served_as_octet_stream_is_not_cached_and_is_requested_again(tmp_path):
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/d.zip"] = html_as_octet_stream
        for attempt in (1, 2):
            with pytest.raises(DownloadError) as info:
                download(server.url + "/d.zip", cache, limits=SMALL)
            assert "sent an HTML page (as application/octet-stream)" in str(info.value)
            assert "Nothing was kept" in str(info.value)
            assert on_disk(cache) == {}
            assert server.count("/d.zip") == attempt  # never answered from the cache


def longer_than_length(body):
    def route(conn, request, server):  # the length covers all but the zip's last 200 bytes
        conn.sendall(head(200, "OK", {"Content-Type": "application/zip",
                                      "Content-Length": str(len(body) - 200)}) + body)
    return route


def shorter_than_length(body):
    def route(conn, request, server):
        if server.count("/d.zip") == 1:  # promises 1000 bytes more than it sends, hangs up
            conn.sendall(head(200, "OK", {"Content-Type": "application/zip",
                                          "Content-Length": str(len(body) + 1000)}) + body)
        else:  # then serves it whole (ignoring Range)
            conn.sendall(head(200, "OK", {"Content-Type": "application/zip",
                                          "Content-Length": str(len(body))}) + body)
    return route


def test_body_longer_than_content_length_is_not_cached(tmp_path):
    body = images_zip(tmp_path)
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/d.zip"] = longer_than_length(body)
        for attempt in (1, 2):
            with pytest.raises(DownloadError) as info:
                download(server.url + "/d.zip", cache, limits=SMALL)
            assert f"the {len(body) - 200} bytes the server sent are not a readable zip" in str(
                info.value)
            assert on_disk(cache) == {} and server.count("/d.zip") == attempt


def test_body_shorter_than_content_length_is_resumable_never_cached(tmp_path):
    body = images_zip(tmp_path)
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/d.zip"] = shorter_than_length(body)
        url = server.url + "/d.zip"
        with pytest.raises(requests.ConnectionError, match=f"dropped after {len(body)} of "
                                                           f"{len(body) + 1000} bytes"):
            download(url, cache, limits=SMALL)
        assert [(n.endswith(".part"), s) for n, s in on_disk(cache).items()] == [
            (True, len(body))]  # a .part to resume, never a finished file or a record
        path = download(url, cache, limits=SMALL)
        assert server.requests[-1]["headers"]["Range"] == f"bytes={len(body)}-"
    assert path.read_bytes() == body and server.count("/d.zip") == 2


def test_checksum_mismatch_is_requested_again(tmp_path):
    body = images_zip(tmp_path)
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/d.zip"] = named("attachment", body)  # the whole file, every time
        for attempt in (1, 2):
            with pytest.raises(DownloadError, match="Checksum mismatch"):
                download(server.url + "/d.zip", cache, sha256="ab" * 32, limits=SMALL)
            assert on_disk(cache) == {} and server.count("/d.zip") == attempt


def damaged_zip(tmp_path):
    """A zip whose central directory is fine but whose first entry's data fails its CRC."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("real/a.jpg", jpeg_bytes(1))
        zf.writestr("fake/b.jpg", jpeg_bytes(2, fake=True))
    data = bytearray(buf.getvalue())
    data[200] ^= 0xFF  # inside real/a.jpg's stored bytes
    assert zipfile.is_zipfile(io.BytesIO(bytes(data)))
    return bytes(data)


def test_damaged_download_is_removed_from_the_cache_and_fetched_again(tmp_path):
    body = damaged_zip(tmp_path)
    cache = tmp_path / "cache"

    def route(handler, query):
        return 200, {"Content-Type": "application/zip"}, body

    with FakeServer() as server:
        server.routes["/d.zip"] = route
        url = server.url + "/d.zip"
        for attempt in (1, 2):
            with pytest.raises(SourceError) as info:
                fetch(url, tmp_path / "raw", root=tmp_path, cache_dir=cache,
                      download_limits=SMALL)
            message = str(info.value)
            assert "damaged at entry 'real/a.jpg'" in message
            assert "removed from the download cache" in message
            assert on_disk(cache) == {} and len(server.requests) == attempt
    assert not (tmp_path / "raw").exists()


def named(name_header, body):
    def route(conn, request, server):
        conn.sendall(head(200, "OK", {"Content-Type": "application/zip",
                                      "Content-Length": str(len(body)),
                                      "Content-Disposition": name_header}) + body)
    return route


@pytest.mark.parametrize("header,starts", [
    ('attachment; filename="' + "n" * 296 + '.zip"', "n" * 100),
    ("attachment; filename*=UTF-8''" + quote("\x1b[31m\u00e9" + "\u00e9" * 299 + "\x00.zip"),
     "[31m\u00e9\u00e9"),
    ('attachment; filename="../../../../etc/cron.d/x\x7f.zip"', "x.zip"),
], ids=["300_chars", "control_chars_and_300_utf8_chars", "path_and_delete_char"])
def test_server_file_names_are_shortened_and_cleaned(tmp_path, header, starts):
    body = images_zip(tmp_path)
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/d.zip"] = named(header, body)
        path = download(server.url + "/d.zip", cache, limits=SMALL)
    name = path.name.partition("-")[2]
    assert path.parent == cache and path.read_bytes() == body
    assert name.startswith(starts) and name.endswith(".zip")
    assert len(path.name.encode()) <= 17 + 120  # "<key>-" + at most 120 bytes, NAME_MAX 255
    assert all(ch.isprintable() for ch in path.name)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".zip"]  # no .part left


def redirect_loop(conn, request, server):
    conn.sendall(head(302, "Found", {"Location": "/loop", "Content-Length": "0"}))


def test_redirect_loop_is_one_clear_line_without_resume_advice(tmp_path):
    cache = tmp_path / "cache"
    with RawServer() as server:
        server.routes["/loop"] = redirect_loop
        t0 = time.monotonic()
        with pytest.raises(DownloadError) as info:
            download(server.url + "/loop", cache, limits=SMALL)
        seconds = time.monotonic() - t0
        assert server.count("/loop") == 31  # requests' limit of 30 redirects, then stop
    message = str(info.value)
    assert "redirects in a loop" in message and "resum" not in message and "\n" not in message
    assert on_disk(cache) == {} and seconds < 2


def test_connection_refused_is_one_clear_line(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        download(f"http://127.0.0.1:{port}/d.zip", tmp_path / "cache", limits=SMALL)
    assert str(info.value) == (f"Cannot download http://127.0.0.1:{port}/d.zip: cannot connect "
                               f"to 127.0.0.1:{port} (Connection refused). Check the network "
                               "and data.source, then run again.")


# --- through the fetch stage, as `dvc repro` runs it -------------------------------------

def test_fetch_stage_stops_an_endless_download_and_an_html_page_with_one_line(tmp_path):
    from conftest import ROOT
    from helpers import mini_project, run_stage

    with RawServer() as server:
        server.routes["/endless.zip"] = endless
        server.routes["/page.zip"] = html_as_octet_stream
        project = mini_project(tmp_path / "p", ROOT, {
            "data.source": server.url + "/endless.zip", "data.download.max_bytes": MiB,
            "data.download.stall_s": 1, "data.download.deadline_s": 2})
        cache = project / ".cache" / "downloads"
        t0 = time.monotonic()
        run = run_stage(project, "fetch")
        seconds = time.monotonic() - t0
        assert run.returncode == 1 and "Traceback" not in run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: Cannot download")
        assert "more than data.download.max_bytes=1048576 bytes" in lines[0]
        assert on_disk(cache) == {} and not (project / "data" / "raw").exists()
        assert seconds < 10

        params = (project / "params.yaml").read_text()
        (project / "params.yaml").write_text(params.replace("/endless.zip", "/page.zip"))
        for attempt in (1, 2):
            run = run_stage(project, "fetch")
            assert run.returncode == 1 and "Traceback" not in run.stderr
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1 and "sent an HTML page" in lines[0]
            assert on_disk(cache) == {} and server.count("/page.zip") == attempt
