"""The fetch stage's library: turn ``data.source`` into image files under ``data/raw``.

Forms: ``synthetic`` (generated here), a local folder, a local ``.zip``, an ``http(s)://``
URL of a zip, ``gdrive://<file id>``.
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from . import synthetic
from .download import download, sha256_file
from .images import is_image_path, is_utf8, readable_name


class SourceError(RuntimeError):
    """A data source that cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)
class ExtractLimits:
    max_total_bytes: int = 20 * 1024**3  # 20 GiB uncompressed
    max_ratio: float = 200.0  # uncompressed / compressed, per entry over 1 MiB and overall
    max_entries: int = 2_000_000


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


def _skip_entry(name: str) -> bool:
    """macOS resource forks and Finder files are not data."""
    parts = PurePosixPath(name).parts
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1] == ".DS_Store"


def check_zip(zf: zipfile.ZipFile, limits: ExtractLimits) -> list[zipfile.ZipInfo]:
    """Every entry to extract, or ``SourceError`` naming the first hostile entry."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise SourceError(f"Archive has {len(infos)} entries, more than "
                          f"data.extract.max_entries={limits.max_entries}.")
    total = compressed = 0
    keep = []
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise SourceError(f"Refusing archive: entry {name!r} has an absolute path.")
        if ".." in parts:
            raise SourceError(f"Refusing archive: entry {name!r} points outside the "
                              "extraction folder ('..').")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise SourceError(f"Refusing archive: entry {name!r} is a symbolic link.")
        if info.is_dir() or _skip_entry(name):
            continue
        total += info.file_size
        compressed += info.compress_size
        if total > limits.max_total_bytes:
            raise SourceError(
                f"Refusing archive: uncompressed size passes data.extract.max_total_bytes="
                f"{limits.max_total_bytes} at entry {name!r}.")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1 << 20 and ratio > limits.max_ratio:
            raise SourceError(f"Refusing archive: entry {name!r} expands {ratio:.0f}x "
                              f"(limit data.extract.max_ratio={limits.max_ratio}).")
        keep.append(info)
    if total > 1 << 20 and total / max(compressed, 1) > limits.max_ratio:
        raise SourceError(f"Refusing archive: it expands {total / max(compressed, 1):.0f}x "
                          f"overall (limit data.extract.max_ratio={limits.max_ratio}).")
    return keep


def _not_a_zip(archive: Path, exc: Exception) -> SourceError:
    with open(archive, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")):
        return SourceError(f"{archive} is an HTML page, not a zip archive: the link points to "
                           "a web page (a sharing, login or error page). Use a direct "
                           "download link, or download it in a browser and set data.source "
                           "to the .zip file.")
    return SourceError(f"{archive} is not a readable zip archive ({exc}); it may be "
                       "truncated: download it again.")


DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError, NotImplementedError)


def extract_zip(archive: Path, out_dir: Path, limits: ExtractLimits) -> int:
    """Check every entry first (nothing is written for a hostile archive), then extract."""
    try:
        zf = zipfile.ZipFile(archive)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{archive}: an entry's name is marked UTF-8 but is not ({exc}); "
                          "re-create the archive.") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise _not_a_zip(archive, exc) from None
    with zf:
        entries = check_zip(zf, limits)
        out_dir.mkdir(parents=True, exist_ok=True)
        root = out_dir.resolve()
        with tqdm(total=sum(i.file_size for i in entries), unit="B", unit_scale=True,
                  desc=f"extract {archive.name}", disable=None) as bar:
            for info in entries:
                target = (root / info.filename).resolve()
                if root not in target.parents:  # belt and braces after check_zip
                    raise SourceError(f"Refusing archive entry {info.filename!r}.")
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                try:
                    with zf.open(info) as src, open(target, "wb") as dst:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            written += len(block)
                            if written > info.file_size:  # the header lied about the size
                                raise SourceError(f"Refusing archive: entry {info.filename!r} "
                                                  "is larger than its header says.")
                            dst.write(block)
                except DAMAGED as exc:
                    raise SourceError(f"{archive} is damaged at entry {info.filename!r} "
                                      f"({exc}); download it again.") from None
                bar.update(written)
    return len(entries)


def copy_folder(folder: Path, out_dir: Path) -> list[str]:
    """Copy the image files of ``folder`` (never link: DVC may make cache files read-only).
    Returns the files left out because their names are not valid UTF-8: manifests, DVC and
    MLflow store names as text, so such a file could not be tracked. Rename them to use them."""
    files, skipped = [], []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if not (p.is_file() and is_image_path(p)) or _skip_entry(rel):
            continue
        if is_utf8(rel):
            files.append(p)
        else:
            skipped.append(readable_name(rel))
    for path in tqdm(files, desc=f"copy {folder.name}", unit="file", disable=None):
        target = out_dir / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return skipped


def fetch(source: str, out_dir: Path, *, root: Path, cache_dir: Path, sha256: str | None = None,
          synthetic_cfg: synthetic.SyntheticConfig | None = None,
          limits: ExtractLimits = ExtractLimits(), gdrive_base: str | None = None) -> dict:
    """Fill ``out_dir`` from ``source``; returns what ``data/raw/source.json`` records.

    Everything lands in a hidden sibling folder first and gets its real name only when the
    whole source is in: a failed or interrupted fetch leaves no half-filled ``out_dir``."""
    partial = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        record = _fill(source, partial, root=root, cache_dir=cache_dir, sha256=sha256,
                       synthetic_cfg=synthetic_cfg, limits=limits, gdrive_base=gdrive_base)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        partial.rename(out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return record


def _fill(source: str, out_dir: Path, *, root, cache_dir, sha256, synthetic_cfg, limits,
          gdrive_base) -> dict:
    kind = source_kind(source)
    record: dict = {"source": source, "kind": kind, "sha256": None}
    if kind == "synthetic":
        cfg = synthetic_cfg or synthetic.SyntheticConfig()
        record["synthetic"] = {**cfg.__dict__, "families": list(cfg.families),
                               "jpeg_quality": list(cfg.jpeg_quality)}
        synthetic.generate(out_dir, cfg, progress=lambda it: tqdm(
            it, desc="generate built-in faces", unit="img", disable=None))
    elif kind == "folder":
        folder = (root / source).resolve()
        if not folder.is_dir():
            raise SourceError(f"data.source {source!r} is not a folder, a .zip, a URL, "
                              "gdrive://ID or 'synthetic'.")
        skipped = copy_folder(folder, out_dir)
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
            archive = download(source, cache_dir, sha256=sha256, gdrive_base=gdrive_base)
            got = sha256_file(archive)
        record["sha256"] = got
        extract_zip(archive, out_dir, limits)
    images = [p for p in out_dir.rglob("*") if p.is_file() and is_image_path(p)]
    record["n_images"] = len(images)
    if not images:
        raise SourceError(f"data.source {source!r} holds no image files "
                          "(.jpg, .png, .bmp, .gif, .webp, .tif).")
    (out_dir / "source.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
