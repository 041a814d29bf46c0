"""The fetch stage's library: turn ``data.source`` into image files under ``data/raw``.

Forms: ``synthetic`` (generated here), a local folder, a local ``.zip``, an ``http(s)://``
URL of a zip, ``gdrive://<file id>``. Zip archives are checked and extracted in
``archives.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from tqdm import tqdm

from . import synthetic, synthetic_video
from .archives import RESERVED, ExtractLimits, extract_zip, rejection, skip_entry
from .download import DownloadLimits, download, forget, sha256_file
from .errors import SourceError
from .images import is_image_path, is_utf8, readable_name

__all__ = ["ExtractLimits", "SourceError", "fetch", "source_kind"]


def source_kind(source: str) -> str:
    if source == "synthetic":
        return "synthetic"
    if source.startswith("gdrive://"):
        return "gdrive"
    if source.startswith(("http://", "https://")):
        return "url"
    if source.lower().endswith(".zip"):
        return "zip"
    return "folder"

def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _classify(entry: os.DirEntry, folder: str) -> tuple[str, str | None]:
    """What a folder entry is, looked at without opening it (opening a FIFO blocks):
    ("dir" | "file" | "link_dir" | a rejection reason, the real path of a file)."""
    mode = entry.stat(follow_symlinks=False).st_mode
    if stat.S_ISDIR(mode):
        return "dir", None
    if stat.S_ISREG(mode):
        return "file", entry.path
    if not stat.S_ISLNK(mode):
        return "not_regular_file", None  # FIFO, socket, device
    real = os.path.realpath(entry.path)
    if not _inside(real, folder):
        return "link_outside_source", None
    try:
        mode = os.stat(real).st_mode
    except OSError:  # a loop of links, or a link to nothing
        return "not_regular_file", None
    if stat.S_ISDIR(mode):
        return "link_dir", None
    return ("file", real) if stat.S_ISREG(mode) else ("not_regular_file", None)


def _scan_folder(folder: Path) -> tuple[list[tuple[str, str]], list[str], list[dict]]:
    """Walk ``folder`` without following links: (image files as (name, real path), names
    that are not UTF-8, rejections). A link to a folder inside the source is not followed:
    its files are copied from where they really are (and a link to an ancestor loops)."""
    top = str(folder.resolve())
    files, skipped, rejected = [], [], []
    stack = [(top, "")]
    while stack:
        here, prefix = stack.pop()
        try:
            with os.scandir(here) as listing:
                entries = list(listing)
        except OSError as exc:
            raise SourceError(f"Cannot read the folder {readable_name(here)!r} "
                              f"({exc.strerror}); check its permissions.") from None
        for entry in entries:
            rel = prefix + entry.name
            if skip_entry(rel):
                continue
            kind, real = _classify(entry, top)
            if kind in ("dir", "link_dir") and rel in RESERVED:
                rejected.append(rejection(rel, "reserved_name"))
            elif kind == "dir":
                stack.append((entry.path, rel + "/"))
            elif kind == "file":
                if not is_image_path(rel):
                    continue  # notes, CSVs, ...: not data
                if is_utf8(rel):
                    files.append((rel, real))
                else:
                    skipped.append(readable_name(rel))
            elif kind != "link_dir":
                rejected.append(rejection(rel, kind))
    return sorted(files), sorted(skipped), sorted(rejected, key=lambda r: r["file"])


def copy_folder(folder: Path, out_dir: Path) -> tuple[list[str], list[dict]]:
    """Copy the image files of ``folder`` (never link: DVC may make cache files read-only).
    Returns the names left out because they are not valid UTF-8 (manifests, DVC and MLflow
    store names as text: rename them to use them), and the entries rejected: links leaving
    the folder (``link_outside_source``), FIFOs, sockets, devices, link loops and dangling
    links (``not_regular_file``), folders named like fetch's own files (``reserved_name``)."""
    files, skipped, rejected = _scan_folder(folder)
    for rel, real in tqdm(files, desc=f"copy {folder.name}", unit="file", disable=None):
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_NONBLOCK: a file swapped for a FIFO since the scan must not hang the open.
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as exc:
            raise SourceError(f"Cannot read {readable_name(rel)!r} in {folder} "
                              f"({exc.strerror}); check its permissions.") from None
        with open(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                rejected.append(rejection(rel, "not_regular_file"))
                continue
            with open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return skipped, rejected


def fetch(source: str, out_dir: Path, *, root: Path, cache_dir: Path, sha256: str | None = None,
          synthetic_cfg: synthetic.SyntheticConfig | None = None,
          clips_cfg: synthetic_video.ClipsConfig | None = None,
          limits: ExtractLimits = ExtractLimits(), gdrive_base: str | None = None,
          download_limits: DownloadLimits = DownloadLimits()) -> dict:
    """Fill ``out_dir`` from ``source``; returns what ``data/raw/source.json`` records.

    Everything lands in a hidden sibling folder first and gets its real name only when the
    whole source is in: a failed or interrupted fetch leaves no half-filled ``out_dir``.
    ``clips_cfg`` adds the built-in video clips to a synthetic source (None: no clips)."""
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        record = _fill(source, partial, root=root, cache_dir=cache_dir, sha256=sha256,
                       synthetic_cfg=synthetic_cfg, clips_cfg=clips_cfg, limits=limits,
                       gdrive_base=gdrive_base, download_limits=download_limits)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        partial.rename(out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return record


def _fill(source: str, out_dir: Path, *, root, cache_dir, sha256, synthetic_cfg, clips_cfg,
          limits, gdrive_base, download_limits) -> dict:
    kind = source_kind(source)
    record: dict = {"source": source, "kind": kind, "sha256": None}
    rejected: list[dict] = []  # entries left out, listed in source.json for the split stage
    if kind == "synthetic":
        cfg = synthetic_cfg or synthetic.SyntheticConfig()
        record["synthetic"] = {**cfg.__dict__, "families": list(cfg.families),
                               "jpeg_quality": list(cfg.jpeg_quality)}
        synthetic.generate(out_dir, cfg, progress=lambda it: tqdm(
            it, desc="generate built-in faces", unit="img", disable=None))
        if clips_cfg and clips_cfg.clips > 0:  # apart from the images: no split lists .mp4
            rows = synthetic_video.generate_clips(out_dir / "videos", clips_cfg, progress=(
                lambda it: tqdm(it, desc="generate built-in clips", unit="clip", disable=None)))
            record["videos"] = {"clips": len(rows), "folder": "videos"}
    elif kind == "folder":
        folder = (root / source).resolve()
        if not folder.is_dir():
            raise SourceError(f"data.source {source!r} is not a folder, a .zip, a URL, "
                              "gdrive://ID or 'synthetic'.")
        skipped, rejected = copy_folder(folder, out_dir)
        if skipped:
            record["skipped_non_utf8_names"] = skipped
            print(f"warning: left out {len(skipped)} file(s) whose names are not valid UTF-8 "
                  f"(listed in source.json; rename them to use them): {skipped[:3]}")
    else:
        if kind == "zip":
            archive = (root / source).resolve()
            if not archive.is_file():
                raise SourceError(f"data.source {source!r}: no such file.")
            got = sha256_file(archive)
            if sha256 and got != sha256.lower():
                raise SourceError(f"Checksum mismatch for {archive}: expected {sha256}, "
                                  f"got {got}. Check data.sha256.")
        else:
            archive = download(source, cache_dir, sha256=sha256, gdrive_base=gdrive_base,
                               limits=download_limits)
            got = sha256_file(archive)
        record["sha256"] = got
        try:
            rejected = extract_zip(archive, out_dir, limits)
        except SourceError as exc:
            # A refused download must not stay in the cache, where every later run would
            # fail on it without a request, even after the server's file is fixed.
            if kind == "zip":
                raise
            forget(source, cache_dir)
            raise SourceError(f"{exc} It was removed from the download cache ({cache_dir}): "
                              "the next run downloads it again.") from None
    images = [p for p in out_dir.rglob("*") if p.is_file() and is_image_path(p)]
    record["n_images"] = len(images)
    if not images:
        raise SourceError(f"data.source {source!r} holds no image files "
                          "(.jpg, .png, .bmp, .gif, .webp, .tif).")
    if rejected:  # absent when none: source.json (and data/raw's hash) stay as they were
        record["rejected"] = rejected
        reasons = sorted({r["reason"] for r in rejected})
        print(f"warning: left out {len(rejected)} entr{'y' if len(rejected) == 1 else 'ies'} "
              f"of the source ({', '.join(reasons)}; listed under \"rejected\" in "
              f"source.json): {[r['file'] for r in rejected[:3]]}")
    (out_dir / "source.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
