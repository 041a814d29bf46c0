"""The web service against hostile clients (issue 11, items 9 and 10), over real uvicorn
servers on 127.0.0.1.

The upload limits are checked on a server run as its own process (with a stub detector: a
refused upload never reaches a model), so that its memory, its open files and its temporary
folder can be watched: uploads refused by their declared size before they are read, cut off at
the first byte past a limit when they do not declare it, kept in memory (never in the temporary
folder), bounded in number, abandoned when they stall; a Host header that is not ours (DNS
rebinding) gets 400. The page is checked in Debian's chromium on a server with a small real
model (test_service.make_app): the model card's text never runs as script (strict
Content-Security-Policy; /docs under a policy of its own).

Run as a script (``python test_hostile_service.py PORT``) this file is the stub server."""

import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

CAPS = {"max_upload_mb": 1, "max_request_mb": 3, "max_files": 4, "upload_stall_s": 1.5}
MB = 2**20
XSS = '<img src=x onerror="window.__pwned=1">'
CARD = {"uri": "models/baseline.keras", "name": XSS, "version": None, "alias": [XSS],
        "model": XSS, "data_source": XSS, "synthetic_warning": False, "threshold": 0.5,
        "metrics": {}}
BOUNDARY = "hostile-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    """The app with small caps, a card holding script and a stub detector, as a process with
    its own TMPDIR."""
    from helpers import free_port

    tmp = tmp_path_factory.mktemp("server-tmp")  # the server's tempfile.gettempdir()
    log = tmp_path_factory.mktemp("server-log") / "stderr.txt"
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, __file__, str(port)], cwd=Path(__file__).parent,
                                env=env, stdout=stderr, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield SimpleNamespace(url=url, port=port, pid=proc.pid, tmp=tmp)
    finally:
        proc.terminate()
        proc.wait(20)


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: int(re.search(rf"^{k}:\s+(\d+) kB", status, re.M).group(1)) * 1024
            for k in ("VmRSS", "VmHWM")}


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def temp_files_open(pid: int, tmp: Path) -> list[str]:
    """The server's open files in its temporary folder (deleted ones included)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(tmp)):
            found.append(target)
    return found


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def part(name: str, filename: str | None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()


END = f"\r\n--{BOUNDARY}--\r\n".encode()


def head(port: int, path: str, length: int | None, host: str | None = None) -> bytes:
    size = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (f"POST {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
            f"Content-Type: {MULTIPART}\r\n{size}\r\n\r\n").encode()


def chunked(pieces):
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def raw_post(port: int, request_head: bytes, body, wait: float = 10, during=None):
    """Send ``request_head``, then the byte strings of ``body`` until the server answers (or
    stops reading); ``during()`` runs once the body is sent. Returns (status, headers, detail,
    bytes of body sent, seconds until the answer)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    started = time.monotonic()
    sent = 0
    reply = b""
    try:
        sock.sendall(request_head)
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                break  # an answer (or a close) came: stop sending
            sock.sendall(piece)
            sent += len(piece)
        if during:
            during()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while this was still sending: read the answer
    try:
        while b"\r\n\r\n" not in reply or len(reply) < reply_length(reply):
            got = sock.recv(65536)
            if not got:
                break
            reply += got
    except ConnectionResetError:
        pass
    finally:
        seconds = time.monotonic() - started
        sock.close()
    assert reply, f"the connection broke after {sent} bytes of body, with no answer"
    header, _, content = reply.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(content)["detail"], sent, seconds


def reply_length(reply: bytes) -> int:
    header, _, _ = reply.partition(b"\r\n\r\n")
    found = re.search(rb"(?i)content-length:\s*(\d+)", header)
    return len(header) + 4 + (int(found.group(1)) if found else 0)


def test_declared_size_past_max_request_is_refused_before_the_body_is_read(server):
    tmp_before = folder_bytes(server.tmp)
    gib = 2**30
    status, headers, detail, sent, seconds = raw_post(
        server.port, head(server.port, "/predict", gib), [part("files", "big.jpg"), b"\0" * 1024])
    assert status == 413 and "serve.max_request_mb" in detail and str(gib) in detail
    assert headers["connection"] == "close"  # the rest is never read
    assert sent < 2048 and seconds < 2  # 1 KiB of the 1 GiB declared was sent
    assert folder_bytes(server.tmp) == tmp_before
    print(f"1 GiB declared, {sent} bytes sent: 413 in {seconds:.2f} s")


def test_undeclared_upload_past_max_upload_is_cut_off_in_memory(server):
    """A chunked 256 MiB upload (no Content-Length) against a 1 MiB cap per file."""
    reset_peak(server.pid)
    before = memory(server.pid)
    tmp_before = folder_bytes(server.tmp)
    body = chunked([part("files", "huge.jpg"), *([b"\xff" * 65536] * 4096), END])
    status, headers, detail, sent, seconds = raw_post(
        server.port, head(server.port, "/predict", None), body)
    after = memory(server.pid)
    growth = after["VmHWM"] - before["VmRSS"]
    assert status == 413 and detail == f"huge.jpg: larger than {MB} bytes (serve.max_upload_mb)"
    assert sent < 16 * MB  # the server stopped reading: the client could not send 256 MiB
    assert growth < 8 * MB, growth
    assert folder_bytes(server.tmp) == tmp_before and temp_files_open(server.pid, server.tmp) == []
    print(f"{sent / MB:.1f} MiB sent of 256: 413 in {seconds:.2f} s; server peak "
          f"+{growth / MB:.1f} MiB over {before['VmRSS'] / MB:.0f} MiB")


def test_too_many_files_and_too_many_bytes_in_one_request(server):
    files = [("files", (f"f{i}.jpg", b"\xff\xd8\xff")) for i in range(5)]
    many = httpx.post(f"{server.url}/predict", files=files)
    assert many.status_code == 413 and many.json()["detail"] == \
        "more than 4 files in one request (serve.max_files)"
    # four files under the 1 MiB cap each, 3.6 MiB together, sent without a Content-Length
    reset_peak(server.pid)
    before = memory(server.pid)
    pieces = [piece for i in range(4)
              for piece in (part("files", f"f{i}.jpg"), b"\xff" * (9 * MB // 10), b"\r\n")]
    status, _, detail, sent, _ = raw_post(server.port, head(server.port, "/predict", None),
                                          chunked(pieces + [END]))
    growth = memory(server.pid)["VmHWM"] - before["VmRSS"]
    assert status == 413 and detail == f"request body larger than {3 * MB} bytes " \
                                       "(serve.max_request_mb)"
    assert growth < 3 * MB + 8 * MB, growth
    # within every cap: four files of 0.7 MiB are all held, then answered (not images: 415)
    reset_peak(server.pid)
    before = memory(server.pid)
    ok = httpx.post(f"{server.url}/predict", timeout=30, files=[
        ("files", (f"f{i}.jpg", b"\x00" * (7 * MB // 10))) for i in range(4)])
    held = memory(server.pid)["VmHWM"] - before["VmRSS"]
    assert ok.status_code == 415 and [r["error"] for r in ok.json()["detail"]["results"]] == \
        ["not_image"] * 4
    assert held < 2 * 3 * MB + 8 * MB, held
    print(f"3.6 MiB chunked: 413 after {sent / MB:.1f} MiB sent, peak +{growth / MB:.1f} MiB; "
          f"4 × 0.7 MiB accepted: peak +{held / MB:.1f} MiB")


def test_a_stalled_body_gets_408_and_is_held_in_memory_meanwhile(server):
    stall = CAPS["upload_stall_s"]
    seen = {}

    def during():  # the server holds 0.9 MiB of an unfinished upload: where?
        time.sleep(stall / 3)
        seen["temp"] = temp_files_open(server.pid, server.tmp)
        seen["tmp_bytes"] = folder_bytes(server.tmp)

    tmp_before = folder_bytes(server.tmp)
    status, headers, detail, sent, seconds = raw_post(
        server.port, head(server.port, "/predict", 2 * MB),
        [part("files", "slow.jpg"), b"\xff" * (9 * MB // 10)], wait=stall + 5, during=during)
    assert status == 408 and "serve.upload_stall_s" in detail
    assert headers["connection"] == "close"
    assert stall <= seconds < stall + 3
    assert seen == {"temp": [], "tmp_bytes": tmp_before}
    print(f"0.9 MiB of 2 MiB sent, then nothing: 408 after {seconds:.2f} s")


def test_host_header_must_name_this_server(server):
    port = server.port
    with httpx.Client(base_url=server.url) as client:
        def health(host):
            return client.get("/health", headers={"Host": host}).status_code

        for host in ("evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}",
                     f"127.0.0.1.evil.example:{port}", f"localhost:{port}x", ""):
            assert health(host) == 400, host
        reply = client.get("/model", headers={"Host": f"evil.example:{port}"})
        assert "serve.allowed_hosts" in reply.json()["detail"] and XSS not in reply.text
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST",
                     "127.0.0.1"):
            assert health(host) == 200, host


def test_allowed_hosts_setting():
    from deepfake_detector.service_guard import allowed_hosts, host_allowed

    default = allowed_hosts({"host": "0.0.0.0", "allowed_hosts": None})
    assert default == ["localhost", "127.0.0.1", "::1", "0.0.0.0"]
    listed = allowed_hosts({"host": "127.0.0.1", "allowed_hosts": ["Detector.Lab", "*.lab.org"]})
    assert host_allowed("detector.lab:8000", listed) and host_allowed("a.b.lab.org", listed)
    assert not host_allowed("localhost:8000", listed) and not host_allowed("lab.org", listed)
    assert host_allowed("anything.example:1", allowed_hosts({"allowed_hosts": ["*"]}))


@pytest.fixture(scope="module")
def page_server():
    """The same caps and card over a small real model, in this process."""
    from helpers import start_server
    from test_service import make_app

    server, thread, url = start_server(make_app(card=CARD, **CAPS))
    yield SimpleNamespace(url=url)
    server.should_exit = True
    thread.join(10)


def test_model_card_text_never_runs_as_script_and_the_page_works(page_server, browser,
                                                                    tmp_path):
    from helpers import jpeg_bytes

    from deepfake_detector.service_guard import POLICY

    face = tmp_path / "face.jpg"
    face.write_bytes(jpeg_bytes(3, fake=True))
    violations = []
    page = browser.new_page()
    try:
        page.on("console", lambda m: violations.append(m.text)
                if "Content Security Policy" in m.text else None)
        response = page.goto(page_server.url)
        assert response.headers["content-security-policy"] == POLICY
        page.wait_for_selector("#card:has-text('Trained on')")
        card = page.inner_text("#card")
        assert card.count(XSS) == 4, card  # name, alias, model and training data, as text
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img[src='x']").count() == 0
        page.set_input_files("#files", str(face))
        page.wait_for_selector("#rows .verdict", timeout=30_000)
        verdict = page.inner_text("#rows .verdict")
        assert verdict.startswith("P(fake) ") and verdict.split()[-1] in (
            "real", "fake", "inconclusive")
        page.locator("#rows button").click()
        page.wait_for_selector("#detail figure", timeout=60_000)  # data: images are allowed
        assert page.eval_on_selector_all(
            "#detail img", "imgs => imgs.map(i => i.complete && i.naturalWidth)") == [256] * 4
        assert violations == []
        for path in ("/model", "/static/app.js", "/static/style.css", "/health"):
            assert httpx.get(page_server.url + path).headers["content-security-policy"] == POLICY
    finally:
        page.close()


def test_docs_page_runs_under_its_own_policy(server, browser):
    """Swagger UI works offline: every file /docs loads comes from this server (a request to
    any other host fails the test), it renders the API's operations, and the policy allows
    exactly this server's files and the page's inline start-up script, nothing else."""
    from conftest import ARTIFACTS

    elsewhere, violations = [], []

    def only_this_server(route):
        if route.request.url.startswith(server.url + "/"):
            return route.continue_()
        elsewhere.append(route.request.url)
        return route.abort()

    page = browser.new_page()
    try:
        page.route("**/*", only_this_server)
        page.on("console", lambda m: violations.append(m.text)
                if "Content Security Policy" in m.text else None)
        response = page.goto(f"{server.url}/docs")
        policy = response.headers["content-security-policy"]
        assert "script-src 'self' 'sha256-" in policy and "unsafe-inline' " not in \
            policy.split("style-src")[0]
        assert "http" not in policy  # no other host is allowed anything
        operation = page.locator(".opblock-summary-path[data-path='/predict']")
        operation.wait_for(state="visible", timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "docs_page.png"))
        page.evaluate("() => { const s = document.createElement('script');"
                      " s.textContent = 'window.__pwned = 1'; document.body.append(s); }")
        assert page.evaluate("window.__pwned") is None  # another inline script is refused
        assert len(violations) == 1 and "script" in violations[0], violations
        assert not elsewhere, elsewhere
    finally:
        page.close()
    assert httpx.get(f"{server.url}/docs/assets/swagger-ui.css").status_code == 200
    for name in ("index.html", "..%2F..%2Fservice.py", "swagger-ui.css.map"):  # allow-list only
        assert httpx.get(f"{server.url}/docs/assets/{name}").status_code == 404, name


class StubDetector:
    """Scores nothing: every test on the stub server is refused before a model would run."""

    model, threshold = None, 0.5

    def score(self, datas, names):
        return [{"file": name, "p_fake": None, "label": None, "face_found": None,
                 "error": "not_image"} for name in names]


if __name__ == "__main__":  # the stub server of the fixture above
    import uvicorn
    import yaml
    from conftest import ROOT

    from deepfake_detector import explanation
    from deepfake_detector.service import create_app

    explanation.gradcam_function = lambda model, min_size: None  # no model, no Keras
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["serve"].update(CAPS)
    uvicorn.run(create_app(StubDetector(), CARD, params), host="127.0.0.1",
                port=int(sys.argv[1]), log_level="warning")
