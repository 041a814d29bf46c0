"""Resumable, verified, bounded downloads over HTTP(S), including Google Drive's large-file flow.

Google Drive's pages (its large-file flow) are followed in ``gdrive.py``.

Bounds (``data.download``, :class:`DownloadLimits`), each failing with one line that names
its param:

- ``max_bytes``: refused up front when ``Content-Length`` (plus the bytes a resumed ``.part``
  already holds) passes it; otherwise the stream stops at it and the ``.part`` is deleted
  (a ``.part`` never holds more than ``max_bytes``).
- ``stall_s``: the socket read timeout, so no byte for that long ends the download.
- ``deadline_s``: the whole download (Drive pages and response headers included): an alarm
  (SIGALRM, in the main thread) interrupts even a blocked read, and the read loop checks it
  after every socket read, so a server trickling a byte at a time is abandoned too.

A ``.part`` stopped by a stall, the deadline or a dropped connection holds valid bytes and is
kept: the next run resumes it with ``Range``. Nothing enters the cache unverified: a file whose
size disagrees with the server's ``Content-Length``, that is not a zip archive (an HTML page
served as ``application/octet-stream``), or whose checksum is wrong is deleted, so the next run
requests it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import threading
import time
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
import urllib3
from tqdm import tqdm

from .errors import DownloadError
from .params_check import defaults

CHUNK = 1 << 16  # small enough that an interrupted download keeps most of its bytes
CONNECT_S = 15  # seconds to open a connection; reads wait up to data.download.stall_s
MAX_NAME_BYTES = 120  # a server's file name, in UTF-8, after the 17-byte "<key>-" prefix
HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")




@dataclass(frozen=True)
class DownloadLimits:
    """``data.download``: bounds on one download (bytes, seconds without a byte, seconds);
    its defaults are the parameters'."""
    max_bytes: int = defaults()["data"]["download"]["max_bytes"]
    stall_s: float = float(defaults()["data"]["download"]["stall_s"])
    deadline_s: float | None = float(defaults()["data"]["download"]["deadline_s"])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_name(name: str, fallback: str = "download.zip") -> str:
    """A file name from a server or a URL, made safe to create: no folders, no control or
    format characters, at most ``MAX_NAME_BYTES`` bytes of UTF-8 (the suffix is kept)."""
    name = os.path.basename(name.replace("\\", "/"))
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    name = name.strip()
    if name in ("", ".", ".."):
        return fallback
    stem, suffix = os.path.splitext(name)
    if len(suffix.encode()) > 16:  # not a real suffix: shorten the whole name
        stem, suffix = name, ""
    stem = stem.encode()[:MAX_NAME_BYTES - len(suffix.encode())].decode("utf-8", "ignore")
    return (stem.strip() + suffix) or fallback


def _filename_from_headers(headers, fallback: str) -> str:
    cd = headers.get("Content-Disposition", "")
    match = re.search(r"filename\*\s*=\s*[^']*''([^;]+)", cd) or re.search(
        r'filename\s*=\s*"([^"]+)"', cd) or re.search(r"filename\s*=\s*([^;]+)", cd)
    name = unquote(match.group(1).strip()) if match else fallback
    return safe_name(name, fallback)  # never a path, never too long for the file system


class Stop(Exception):
    """Internal: the deadline passed while reading (``reason`` says which bound)."""


def body_reader(resp):
    """A function returning the next bytes of ``resp``'s body as soon as a socket read gives
    any (``b""`` at the end): a 64 KiB read must not wait for 64 KiB from a trickling server."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is not None:  # urllib3 >= 2.3
        return lambda: read1(CHUNK, decode_content=True) or b""
    blocks = resp.iter_content(CHUNK)  # older urllib3: the deadline is checked per 64 KiB
    return lambda: next(blocks, b"")


def _cached(cache_dir: Path, meta_path: Path, sha256: str | None) -> Path | None:
    """The finished download recorded in ``meta_path``, if it is still there and intact."""
    try:
        meta = json.loads(meta_path.read_text())
        done = cache_dir / Path(meta["file"]).name
        if done.is_file() and sha256 in (None, meta["sha256"]):
            if sha256_file(done) == meta["sha256"]:
                return done
    except (OSError, ValueError, KeyError, TypeError):  # absent or unreadable: download
        pass
    return None


def _recorded(cache_dir: Path, meta_path: Path) -> Path | None:
    """The file ``meta_path`` names, unchecked (None when there is no readable record)."""
    try:
        return cache_dir / Path(json.loads(meta_path.read_text())["file"]).name
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget(source: str, cache_dir: Path) -> None:
    """Remove ``source``'s finished download and its record from the cache (the ``.part``
    is left alone): the next run downloads it again."""
    meta_path = cache_dir / f"{_key(source)}.json"
    recorded = _recorded(cache_dir, meta_path)
    if recorded is not None:
        recorded.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)


def _key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _int_header(headers, name: str) -> int | None:
    value = headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _network_error(source: str, exc: Exception, limits: DownloadLimits) -> DownloadError:
    """One line for a request that failed before any byte of the file arrived."""
    host = urlparse(source).netloc or source
    if isinstance(exc, requests.TooManyRedirects):
        return DownloadError(f"Cannot download {source}: the server redirects in a loop "
                             "(too many redirects). "
                             "The link is broken or leads to a login: use a direct download "
                             "link in data.source.")
    if isinstance(exc, requests.ConnectTimeout):
        return DownloadError(f"Cannot download {source}: no connection to {host} within "
                             f"{CONNECT_S} s. Check the network and data.source, then run "
                             "again.")
    if isinstance(exc, requests.ReadTimeout):
        return DownloadError(f"Cannot download {source}: {host} sent no answer for "
                             f"data.download.stall_s={limits.stall_s:g} s. Run again later, or "
                             "raise data.download.stall_s for a slow server.")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return DownloadError(f"Cannot download {source}: HTTP {exc.response.status_code} "
                             f"{exc.response.reason}. Check data.source.")
    if isinstance(exc, requests.ConnectionError):
        reason = str(exc)
        why = next((w for w in ("Connection refused", "Name or service not known",
                                "Temporary failure in name resolution", "No route to host",
                                "Network is unreachable", "Connection reset",
                                "certificate verify failed", "SSL") if w in reason), None)
        return DownloadError(f"Cannot download {source}: cannot connect to {host}"
                             f"{f' ({why})' if why else ''}. Check the network and "
                             "data.source, then run again.")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return DownloadError(f"Cannot download {source}: not a valid URL "
                             f"({type(exc).__name__}). Check data.source.")
    return DownloadError(f"Cannot download {source}: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}. Check data.source.")


def is_html(path: Path) -> bool:
    """Whether the file starts like a web page (a sharing, login or error page)."""
    with open(path, "rb") as fh:
        return fh.read(512).lstrip().lower().startswith(HTML_STARTS)


def _not_a_zip(source: str, part: Path, content_type: str) -> DownloadError:
    """The message for a finished download that is not a zip archive (``part`` is read)."""
    size = part.stat().st_size
    if is_html(part):
        return DownloadError(f"Cannot download {source}: the server sent an HTML page "
                             f"(as {content_type or 'no Content-Type'}), not a zip archive: the "
                             "link points to a web page (a sharing, login or error page). Use "
                             "a direct download link, or download it in a browser and set "
                             "data.source to the .zip file. Nothing was kept.")
    return DownloadError(f"Cannot download {source}: the {size} bytes the server sent are not "
                         "a readable zip archive (truncated or damaged). Nothing was kept: "
                         "the next run downloads it again.")


def download(source: str, cache_dir: Path, sha256: str | None = None,
             gdrive_base: str | None = None, session: requests.Session | None = None,
             limits: DownloadLimits = DownloadLimits()) -> Path:
    """Download ``source`` (``http(s)://…`` or ``gdrive://ID``) into ``cache_dir``.

    Bytes go to ``<key>.part`` first (resumed with ``Range`` when the server allows), within
    ``limits`` (see the module's docstring), are checked (size against ``Content-Length``, a
    zip archive, ``sha256`` when given), and only then renamed into the cache. A source
    already in the cache with a matching checksum costs no network request.

    Errors: ``DownloadError`` (one line, names the param to change); a connection that drops
    part way raises ``requests.ConnectionError`` with the ``.part`` kept for resuming.
    """
    started = time.monotonic()
    deadline = None if limits.deadline_s is None else started + limits.deadline_s
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _key(source)
    meta_path, part = cache_dir / f"{key}.json", cache_dir / f"{key}.part"
    done = _cached(cache_dir, meta_path, sha256)
    if done is not None:
        return done
    session = session or requests.Session()
    have = part.stat().st_size if part.exists() else 0
    if have > limits.max_bytes:  # left by a run with a larger cap
        part.unlink()
        have = 0
    # identity: bytes on disk are the bytes Content-Length and Range count
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    timeout = (CONNECT_S, limits.stall_s)
    try:
        with _deadline_alarm(deadline):
            name, content_type = _fetch(session, source, gdrive_base, headers, timeout,
                                        deadline, part, have, limits)
    except Stop:
        kept = (f"; the {part.stat().st_size} bytes received are kept in {part.name}: the next "
                "run resumes from there") if part.exists() else ""
        raise DownloadError(f"Cannot download {source}: not finished after "
                            f"data.download.deadline_s={limits.deadline_s:g} s{kept}. Raise "
                            "data.download.deadline_s for a slow connection.") from None
    got = _verify(source, part, content_type, sha256)
    final = cache_dir / f"{key}-{name}"
    old = _recorded(cache_dir, meta_path)
    if old is not None and old != final:
        old.unlink(missing_ok=True)  # an earlier download of this source under another name
    os.replace(part, final)
    tmp = meta_path.with_name(f"{key}.json.tmp")
    tmp.write_text(json.dumps({"source": source, "file": final.name, "sha256": got}))
    os.replace(tmp, meta_path)
    return final


def _fetch(session, source: str, gdrive_base, headers: dict, timeout, deadline,
           part: Path, have: int, limits: DownloadLimits) -> tuple[str, str]:
    """Ask for ``source`` and stream its body into ``part``; returns the file's name and
    Content-Type (both empty of meaning when the ``.part`` was already whole)."""
    try:
        if source.startswith("gdrive://"):
            from . import gdrive  # imported here: gdrive uses this module's body reader

            file_id = source[len("gdrive://"):].strip("/")
            resp = gdrive.drive_response(session, file_id, gdrive.base_url(gdrive_base),
                                         headers, timeout, deadline)
            fallback = safe_name(f"{file_id}.zip")
        else:
            resp = session.get(source, headers=headers, stream=True, timeout=timeout)
            fallback = safe_name(os.path.basename(urlparse(source).path) or "download.zip")
    except requests.RequestException as exc:
        raise _network_error(source, exc, limits) from None
    if resp.status_code == 416:  # asked past the end: the .part is already whole
        resp.close()
        resp = None
    elif resp.status_code >= 400:
        resp.close()
        raise DownloadError(f"Cannot download {source}: HTTP {resp.status_code} "
                            f"{resp.reason}. Check data.source.")
    elif "text/html" in resp.headers.get("Content-Type", ""):
        resp.close()  # nothing is cached: a web page is not the dataset
        raise DownloadError(f"Cannot download {source}: the server sent a web page "
                            "(text/html), not a zip archive. The link is probably a "
                            "sharing or login page: use a direct download link.")
    name, content_type = fallback, ""
    if resp is not None:
        name = _filename_from_headers(resp.headers, fallback)
        content_type = resp.headers.get("Content-Type", "")
        _receive(resp, source, part, have, limits, deadline)
    return name, content_type


@contextlib.contextmanager
def _deadline_alarm(deadline: float | None):
    """Raise ``Stop`` at the deadline even inside a blocked socket read (a server trickling
    its headers a byte at a time never trips the read timeout). Signals reach only the main
    thread; elsewhere the read loop's own check after every read is the bound."""
    if deadline is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise Stop("deadline")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _receive(resp, source: str, part: Path, have: int, limits: DownloadLimits,
             deadline: float | None) -> None:
    """Stream ``resp``'s body into ``part`` within ``limits``; raises on every bound."""
    resumed = resp.status_code == 206 and resp.headers.get(
        "Content-Range", "").startswith(f"bytes {have}-")
    if not resumed:
        have = 0  # the server ignored Range: start over
    length = _int_header(resp.headers, "Content-Length")
    encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if length is not None and not encoded and have + length > limits.max_bytes:
        resp.close()
        raise DownloadError(f"Cannot download {source}: the server says it is "
                            f"{have + length} bytes, more than data.download.max_bytes="
                            f"{limits.max_bytes}. Nothing was downloaded; raise "
                            "data.download.max_bytes if the dataset really is that large.")
    got, stop = have, None
    read = body_reader(resp)
    try:
        with open(part, "ab" if resumed else "wb") as fh, tqdm(
                total=have + length if length is not None else None, initial=have, unit="B",
                unit_scale=True, desc=f"download {part.name}", disable=None) as bar:
            while True:
                block = read()
                if not block:
                    break
                if got + len(block) > limits.max_bytes:
                    stop = "max_bytes"
                    break
                fh.write(block)
                got += len(block)
                bar.update(len(block))
                if deadline is not None and time.monotonic() > deadline:
                    stop = "deadline"
                    break
    except (urllib3.exceptions.HTTPError, requests.RequestException, ConnectionError,
            TimeoutError) as exc:
        stalled = isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)) or (
            exc.args and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError))
        stop = "stall" if stalled else "dropped"
    finally:
        resp.close()
    kept = (f"the {got} bytes received are kept in {part.name}: the next run resumes from "
            "there")
    if stop == "max_bytes":
        part.unlink(missing_ok=True)
        raise DownloadError(f"Cannot download {source}: the server sent more than "
                            f"data.download.max_bytes={limits.max_bytes} bytes"
                            f"{'' if length is None else f' (it said {have + length})'}; the "
                            "partial file was deleted. Raise data.download.max_bytes if the "
                            "dataset really is that large.")
    if stop == "deadline":
        raise DownloadError(f"Cannot download {source}: not finished after "
                            f"data.download.deadline_s={limits.deadline_s:g} s; {kept}. Raise "
                            "data.download.deadline_s for a slow connection.")
    if stop == "stall":
        raise DownloadError(f"Cannot download {source}: no data for "
                            f"data.download.stall_s={limits.stall_s:g} s; {kept}. Run again "
                            "later, or raise data.download.stall_s for a slow server.")
    if stop == "dropped" or (length is not None and not encoded and got < have + length):
        # requests' type: callers (and the stage's message) treat it as resumable
        raise requests.ConnectionError(
            f"the connection to {urlparse(resp.url or source).netloc} dropped after {got} of "
            f"{'?' if length is None else have + length} bytes of {source}")
    if length is not None and not encoded and got > have + length:
        part.unlink(missing_ok=True)
        raise DownloadError(f"Cannot download {source}: the server sent {got - have} bytes "
                            f"where its Content-Length says {length}. Nothing was kept: the "
                            "next run downloads it again.")


def _verify(source: str, part: Path, content_type: str, sha256: str | None) -> str:
    """Only a zip archive with the expected checksum may enter the cache; else it is deleted.
    Returns the file's SHA-256."""
    if not part.is_file():
        raise DownloadError(f"Cannot download {source}: the server says the file is complete "
                            "but nothing was received. Run again.")
    if not zipfile.is_zipfile(part):
        error = _not_a_zip(source, part, content_type)
        part.unlink()
        raise error
    got = sha256_file(part)
    if sha256 and got != sha256.lower():
        part.unlink()
        raise DownloadError(f"Checksum mismatch for {source}: expected {sha256}, got {got}. "
                            "The partial file was deleted; check data.sha256 or the source.")
    return got
