"""Resumable, verified downloads over HTTP(S), including Google Drive's large-file flow.

Why our own Drive code and not ``gdown``: the tests must run the whole flow against a fake
Drive on 127.0.0.1, so the base URL has to be injectable (``data.gdrive_base_url`` or the
``DEEPFAKE_GDRIVE_URL`` environment variable), and the download must land in our resumable
``.part`` cache with a checksum. The flow follows gdown's approach: ask ``/uc?export=download``,
and when Drive answers with its "can't scan this file for viruses" page, submit that page's
download form (action + hidden inputs) with the cookies it set.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import requests
from tqdm import tqdm

GDRIVE_DEFAULT_BASE = "https://drive.google.com"
CHUNK = 1 << 16  # small enough that an interrupted download keeps most of its bytes
TIMEOUT = (15, 60)  # connect, read (seconds)


class DownloadError(RuntimeError):
    """A download that cannot succeed; the message says what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def gdrive_base_url(param: str | None = None) -> str:
    return (param or os.environ.get("DEEPFAKE_GDRIVE_URL") or GDRIVE_DEFAULT_BASE).rstrip("/")


def _filename_from_headers(headers, fallback: str) -> str:
    cd = headers.get("Content-Disposition", "")
    match = re.search(r"filename\*\s*=\s*[^']*''([^;]+)", cd) or re.search(
        r'filename\s*=\s*"([^"]+)"', cd) or re.search(r"filename\s*=\s*([^;]+)", cd)
    name = unquote(match.group(1).strip()) if match else fallback
    name = os.path.basename(name.replace("\\", "/")) or fallback  # never a path from a server
    return name


class _FormParser(HTMLParser):
    """Collects the download form (action and hidden inputs) and the page's visible text."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "id": attrs.get("id", ""),
                               "fields": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value", "")

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())


def _explain_drive_page(html: str, file_id: str) -> str:
    parser = _FormParser()
    parser.feed(html)
    text = " ".join(parser.text)
    low = text.lower()
    if "quota" in low or "too many users" in low:
        why = "Drive's download quota for this file is exhausted (too many downloads today)"
    elif "need access" in low or "permission" in low or "sign in" in low:
        why = "the file is not shared publicly (Drive asks to sign in or request access)"
    elif "not exist" in low or "not found" in low:
        why = "Drive says the file does not exist"
    else:
        why = f"Drive answered with a page instead of the file: {text[:200]!r}"
    return (f"Cannot download gdrive://{file_id}: {why}. Download it in a browser, then set "
            f"data.source to the local .zip path (and data.sha256 to its checksum).")


def _drive_response(session: requests.Session, file_id: str, base: str, headers: dict):
    """Follow Drive's flow to the response that carries the file's bytes."""
    url = f"{base}/uc"
    resp = session.get(url, params={"export": "download", "id": file_id}, headers=headers,
                       stream=True, timeout=TIMEOUT)
    for _ in range(3):  # warning page → form → file; never loop forever
        if resp.status_code == 404:
            resp.close()
            raise DownloadError(f"Cannot download gdrive://{file_id}: Drive says the file "
                                "does not exist (HTTP 404). Check the id in data.source.")
        if "text/html" not in resp.headers.get("Content-Type", ""):
            resp.raise_for_status()
            return resp
        html = resp.text
        parser = _FormParser()
        parser.feed(html)
        form = next((f for f in parser.forms if f["action"] and "confirm" in f["fields"]),
                    None) or next((f for f in parser.forms if f["id"] == "download-form"), None)
        token = next((v for k, v in resp.cookies.items() if k.startswith("download_warning")),
                     None)
        if form:
            action = urljoin(resp.url, form["action"])
            resp = session.get(action, params=form["fields"], headers=headers, stream=True,
                               timeout=TIMEOUT)
        elif token:  # the older flow: a cookie carries the confirm token
            resp = session.get(url, params={"export": "download", "id": file_id,
                                            "confirm": token}, headers=headers, stream=True,
                               timeout=TIMEOUT)
        else:
            raise DownloadError(_explain_drive_page(html, file_id))
    raise DownloadError(f"Cannot download gdrive://{file_id}: Drive kept answering with "
                        "pages instead of the file.")


def download(source: str, cache_dir: Path, sha256: str | None = None,
             gdrive_base: str | None = None, session: requests.Session | None = None) -> Path:
    """Download ``source`` (``http(s)://…`` or ``gdrive://ID``) into ``cache_dir``.

    Bytes go to ``<key>.part`` first (resumed with ``Range`` when the server allows), are
    checked against ``sha256`` when given, and only then renamed. A source already in the
    cache with a matching checksum costs no network request.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    meta_path, part = cache_dir / f"{key}.json", cache_dir / f"{key}.part"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        done = cache_dir / meta["file"]
        if done.exists() and sha256 in (None, meta["sha256"]):
            if sha256_file(done) == meta["sha256"]:
                return done
    session = session or requests.Session()
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    if source.startswith("gdrive://"):
        file_id = source[len("gdrive://"):].strip("/")
        resp = _drive_response(session, file_id, gdrive_base_url(gdrive_base), headers)
        fallback = f"{file_id}.zip"
    else:
        resp = session.get(source, headers=headers, stream=True, timeout=TIMEOUT)
        fallback = os.path.basename(urlparse(source).path) or "download.zip"
        if resp.status_code == 416:  # asked past the end: the .part is already whole
            resp.close()
            resp = None
        elif resp.status_code >= 400:
            raise DownloadError(f"Cannot download {source}: HTTP {resp.status_code} "
                                f"{resp.reason}. Check data.source.")
        elif "text/html" in resp.headers.get("Content-Type", ""):
            resp.close()  # nothing is cached: a web page is not the dataset
            raise DownloadError(f"Cannot download {source}: the server sent a web page "
                                "(text/html), not a zip archive. The link is probably a "
                                "sharing or login page: use a direct download link.")
    name = fallback
    if resp is not None:
        name = _filename_from_headers(resp.headers, fallback)
        resumed = resp.status_code == 206 and resp.headers.get(
            "Content-Range", "").startswith(f"bytes {have}-")
        if not resumed:
            have = 0  # the server ignored Range: start over
        total = int(resp.headers.get("Content-Length", 0)) + have or None
        with open(part, "ab" if resumed else "wb") as fh, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=f"download {name}",
                disable=None) as bar:
            for block in resp.iter_content(CHUNK):
                fh.write(block)
                bar.update(len(block))
        resp.close()
    got = sha256_file(part)
    if sha256 and got != sha256.lower():
        part.unlink()
        raise DownloadError(f"Checksum mismatch for {source}: expected {sha256}, got {got}. "
                            "The partial file was deleted; check data.sha256 or the source.")
    final = cache_dir / f"{key}-{name}"
    os.replace(part, final)
    meta_path.write_text(json.dumps({"source": source, "file": final.name, "sha256": got}))
    return final
