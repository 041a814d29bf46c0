"""Test data the project makes itself, and a fake web server for downloads."""

from __future__ import annotations

import io
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_detector.synthetic import SyntheticConfig, make_image


def jpeg_bytes(seed: int = 0, fake: bool = False, size: int = 64) -> bytes:
    return make_image(seed, fake, SyntheticConfig(image_size=size, seed=7))[0]


def write_faces(folder: Path, n: int, fake: bool, start: int = 0, ext: str = ".jpg") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"img{i:04d}{ext}"
        data = jpeg_bytes(i, fake)
        if ext != ".jpg":
            buf = io.BytesIO()
            Image.open(io.BytesIO(data)).save(buf, Image.registered_extensions()[ext])
            data = buf.getvalue()
        path.write_bytes(data)
        paths.append(path)
    return paths


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: to prove nothing else was touched."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def rgb_array(seed: int = 0, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


class FakeServer:
    """A tiny HTTP server on 127.0.0.1. ``routes`` maps a path to a function
    ``(handler) -> (status, headers, body)``; every request is recorded."""

    def __init__(self):
        self.routes: dict = {}
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path, _, query = self.path.partition("?")
                server.requests.append({"path": path, "query": query,
                                        "headers": dict(self.headers)})
                route = server.routes.get(path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    self.wfile.write(b"<html>Not Found</html>")
                    return
                status, headers, body, *rest = route(self, query)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = rest[0] if rest else None  # send only this many bytes, then drop
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


SPLIT_NAMES = {  # layout: how it names train/val/test
    "splits_cased": {"train": "Train", "val": "Validation", "test": "Testing"},
    "wrapped": {"train": "Train", "val": "Valid", "test": "Test"},
    "real_vs_fake": {"train": "train", "val": "valid", "test": "test"},
    "prefixed": {"train": "training", "val": "validation", "test": "testing"},
}
LAYOUTS = {
    # name: the folder of a (split, class) pair; the split comes from the file's index
    "flat": lambda split, cls: cls,
    "splits": lambda split, cls: f"{split}/{cls}",
    "splits_cased": lambda split, cls: f"{SPLIT_NAMES['splits_cased'][split]}/{cls.title()}",
    "wrapped": lambda split, cls: f"Deepfake-images V2/{SPLIT_NAMES['wrapped'][split]}/"
                                  f"{cls.upper()}",
    "real_vs_fake": lambda split, cls: f"real_vs_fake/real-vs-fake/"
                                       f"{SPLIT_NAMES['real_vs_fake'][split]}/{cls}",
    "prefixed": lambda split, cls: f"{SPLIT_NAMES['prefixed'][split]}_{cls}",
}


def given_split(i: int) -> str:
    return "train" if i % 10 < 7 else ("val" if i % 10 < 85 // 10 else "test")


def arrange(files: dict[str, list[Path]], dest: Path, layout: str,
            extra: dict[str, bytes] | None = None) -> Path:
    """Copy ``{"real": [...], "fake": [...]}`` into ``dest`` in one of ``LAYOUTS``;
    ``extra`` maps (real|fake)/name to bytes added to the first train folder of that class."""
    place = LAYOUTS[layout]
    for cls, paths in files.items():
        for i, path in enumerate(paths):
            target = dest / place(given_split(i), cls) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    for name, data in (extra or {}).items():
        cls, _, filename = name.partition("/")
        target = dest / place("train", cls) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dest


def bad_files(duplicate_of: bytes, conflict_with: bytes) -> dict[str, bytes]:
    """One of each kind of bad input, a duplicate of a real image, and a real image's bytes
    again under fake (a label conflict)."""
    return {"real/zero.jpg": b"", "real/text.jpg": b"not an image\n" * 20,
            "fake/truncated.jpg": jpeg_bytes(999, True, 128)[:-700],
            "real/zz_duplicate.jpg": duplicate_of, "fake/conflict.jpg": conflict_with}


def mini_project(dest: Path, repo: Path, params_update=None) -> Path:
    """A copy of the stage scripts, the library and params.yaml: runs stages for real."""
    import shutil

    import yaml

    for name in ("stages", "src"):
        shutil.copytree(repo / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in (params_update or {}).items():
        node = params
        *path, last = dotted.split(".")
        for key in path:
            node = node[key]
        node[last] = value
    (dest / "params.yaml").write_text(yaml.safe_dump(params))
    return dest


def run_stage(project: Path, stage: str, *args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, f"stages/{stage}.py", *args], cwd=project,
                          capture_output=True, text=True, timeout=600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app):
    """``app`` served by uvicorn on a free 127.0.0.1 port in a thread: (server, thread, url)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{server.config.port}"


def wait_http(url: str, seconds: float, proc=None) -> None:
    """Wait until ``url`` answers below 500 (a server starting up); fail if ``proc`` exits."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{proc.args[:3]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s")
