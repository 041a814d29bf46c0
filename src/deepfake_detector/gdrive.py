"""Google Drive's large-file flow, as far as the file's bytes (``download.py`` streams them).

Why our own Drive code and not ``gdown``: the tests must run the whole flow against a fake
Drive on 127.0.0.1, so the base URL has to be injectable (``data.gdrive_base_url`` or the
``DEEPFAKE_GDRIVE_URL`` environment variable), and the download must land in our resumable
``.part`` cache with a checksum. The flow follows gdown's approach: ask ``/uc?export=download``,
and when Drive answers with its "can't scan this file for viruses" page, submit that page's
download form (action + hidden inputs) with the cookies it set.
"""

from __future__ import annotations

import os
import time
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests
import urllib3

from .download import CONNECT_S, Stop, body_reader
from .errors import DownloadError

DEFAULT_BASE = "https://drive.google.com"
MAX_PAGE = 1 << 20  # an HTML page from Drive is read up to this many bytes, never more


def base_url(param: str | None = None) -> str:
    return (param or os.environ.get("DEEPFAKE_GDRIVE_URL") or DEFAULT_BASE).rstrip("/")


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


def _read_page(resp, deadline: float | None) -> str:
    """An HTML page's text, at most ``MAX_PAGE`` bytes, within the deadline."""
    read, data = body_reader(resp), bytearray()
    try:
        while len(data) < MAX_PAGE:
            block = read()
            if not block:
                break
            data += block
            if deadline is not None and time.monotonic() > deadline:
                raise Stop("deadline")
    except urllib3.exceptions.ReadTimeoutError as exc:  # as requests would raise them
        raise requests.ReadTimeout(exc) from None
    except urllib3.exceptions.HTTPError as exc:
        raise requests.ConnectionError(exc) from None
    finally:
        resp.close()
    return bytes(data[:MAX_PAGE]).decode(resp.encoding or "utf-8", "replace")


def drive_response(session: requests.Session, file_id: str, base: str, headers: dict,
                    timeout=(CONNECT_S, 60.0), deadline: float | None = None):
    """Follow Drive's flow to the response that carries the file's bytes."""
    url = f"{base}/uc"
    resp = session.get(url, params={"export": "download", "id": file_id}, headers=headers,
                       stream=True, timeout=timeout)
    for _ in range(3):  # warning page → form → file; never loop forever
        if resp.status_code == 404:
            resp.close()
            raise DownloadError(f"Cannot download gdrive://{file_id}: Drive says the file "
                                "does not exist (HTTP 404). Check the id in data.source.")
        if "text/html" not in resp.headers.get("Content-Type", ""):
            if resp.status_code != 416:  # 416: asked past the end, the .part is whole
                resp.raise_for_status()
            return resp
        html = _read_page(resp, deadline)
        parser = _FormParser()
        parser.feed(html)
        form = next((f for f in parser.forms if f["action"] and "confirm" in f["fields"]),
                    None) or next((f for f in parser.forms if f["id"] == "download-form"), None)
        token = next((v for k, v in resp.cookies.items() if k.startswith("download_warning")),
                     None)
        if form:
            action = urljoin(resp.url, form["action"])
            resp = session.get(action, params=form["fields"], headers=headers, stream=True,
                               timeout=timeout)
        elif token:  # the older flow: a cookie carries the confirm token
            resp = session.get(url, params={"export": "download", "id": file_id,
                                            "confirm": token}, headers=headers, stream=True,
                               timeout=timeout)
        else:
            raise DownloadError(_explain_drive_page(html, file_id))
    raise DownloadError(f"Cannot download gdrive://{file_id}: Drive kept answering with "
                        "pages instead of the file.")


