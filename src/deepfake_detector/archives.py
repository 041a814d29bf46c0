"""Zip archives for the fetch stage: every entry checked before anything is written
(paths, links, encryption, overlapping entries, names the file system cannot take, sizes and
ratios from the central directory), then extracted within the same bounds counted on the
bytes really written.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .download import is_html
from .errors import SourceError
from .images import readable_name
from .params_check import defaults

_EXTRACT = defaults()["data"]["extract"]  # data.extract's defaults are the dataclass's


@dataclass(frozen=True)
class ExtractLimits:
    """``data.extract``: bounds on an archive's entries, uncompressed bytes and ratio."""
    max_total_bytes: int = _EXTRACT["max_total_bytes"]
    max_ratio: float = float(_EXTRACT["max_ratio"])  # per entry > 1 MiB, and overall
    max_entries: int = _EXTRACT["max_entries"]

def skip_entry(name: str) -> bool:
    """macOS resource forks and Finder files are not data."""
    parts = _parts(name)
    return "__MACOSX" in parts or (bool(parts) and (parts[-1].startswith("._")
                                                    or parts[-1] == ".DS_Store"))


def _parts(name: str) -> list[str]:
    """The parts of the path an entry lands on: "a/./b" and "a//b" are "a/b" there."""
    return [p for p in name.split("/") if p not in ("", ".")]


# Files fetch writes at the top of data/raw itself: a source's own would clash with them.
RESERVED = ("source.json", "masks.npz")


def rejection(name: str, reason: str) -> dict:
    """One row of source.json's "rejected" list (split merges them into rejected.csv)."""
    return {"file": readable_name(name), "reason": reason}


def _refuse_overlaps(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse entries whose bytes overlap. A "better zip bomb" points many names at one
    compressed stream, so the central directory's sizes add up to far more than the archive
    holds. In a sound archive each entry's local header, name, extra field and data end at or
    before the next entry's local header, and the last before the central directory."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for info, following in zip(ordered, [*ordered[1:], None]):
        header = b""
        if info.header_offset >= 0:
            zf.fp.seek(info.header_offset)
            header = zf.fp.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise SourceError(f"The archive is damaged at entry {info.filename!r} (its "
                              "directory points where no entry starts); download it again.")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        end = info.header_offset + 30 + name_len + extra_len + info.compress_size
        limit = zf.start_dir if following is None else following.header_offset
        if end > limit:
            other = ("the archive's central directory" if following is None
                     else f"entry {following.filename!r}")
            raise SourceError(f"Refusing archive: entry {info.filename!r} overlaps {other} "
                              "(a zip bomb's trick: several names sharing the same bytes); "
                              "re-create the archive.")


def _writable_parts(name: str, name_max: int, path_room: int) -> list[str]:
    """The parts of the path a file entry lands on, or ``SourceError`` when the file system
    cannot hold it (it would fail half way through extraction)."""
    parts = _parts(name)
    if not parts:
        raise SourceError(f"Refusing archive: entry {name!r} names no file (it would "
                          "replace the extraction folder); re-create the archive.")
    if len(os.fsencode(name)) > name_max:  # only then can a part be too long
        for part in parts:
            if len(os.fsencode(part)) > name_max:
                raise SourceError(f"Refusing archive: entry {name!r} has a name part of "
                                  f"{len(os.fsencode(part))} bytes, longer than this file "
                                  f"system allows ({name_max}); shorten it and re-create "
                                  "the archive.")
    if len(os.fsencode("/".join(parts))) > path_room:
        raise SourceError(f"Refusing archive: entry {name!r} has a path longer than this "
                          "file system allows under the data folder; shorten it and "
                          "re-create the archive.")
    return parts


def check_zip(zf: zipfile.ZipFile, limits: ExtractLimits, *, name_max: int = 255,
              path_room: int = 4000) -> tuple[list[zipfile.ZipInfo], list[dict]]:
    """The entries to extract and the ones left out (``rejection`` rows), or ``SourceError``
    naming the first hostile entry. ``name_max``: the longest name part the target file
    system takes, in bytes; ``path_room``: the bytes left for an entry's path under it."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise SourceError(f"Archive has {len(infos)} entries, more than "
                          f"data.extract.max_entries={limits.max_entries}.")
    _refuse_overlaps(zf, infos)
    total = compressed = 0
    keep, rejected, paths, folders = [], [], set(), set()
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
        if info.is_dir() or skip_entry(name):
            continue  # folders are made as their files need them
        if info.flag_bits & 0x1:
            raise SourceError(f"Refusing archive: entry {name!r} is encrypted; re-create the "
                              "archive without a password.")
        parts = _writable_parts(name, name_max, path_room)
        path = "/".join(parts)
        if parts[0] in RESERVED:
            rejected.append(rejection(name, "reserved_name"))
            continue
        if path in paths:  # keep the first: the last would silently replace it
            rejected.append(rejection(name, "duplicate_entry"))
            continue
        paths.add(path)
        folder = path.rpartition("/")[0]
        while folder and folder not in folders:  # the folders extraction will make
            folders.add(folder)
            folder = folder.rpartition("/")[0]
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
    clash = paths & folders  # "real/sub" and "real/sub/x.jpg": one must be a folder
    if clash:
        file = min(clash)
        inner = next(i.filename for i in keep if "/".join(_parts(i.filename)).startswith(
            file + "/"))
        raise SourceError(f"Refusing archive: entry {file!r} is a file, but entry {inner!r} "
                          "needs it to be a folder; re-create the archive.")
    return keep, rejected


def _not_a_zip(archive: Path, exc: Exception) -> SourceError:
    if is_html(archive):
        return SourceError(f"{archive} is an HTML page, not a zip archive: the link points to "
                           "a web page (a sharing, login or error page). Use a direct "
                           "download link, or download it in a browser and set data.source "
                           "to the .zip file.")
    return SourceError(f"{archive} is not a readable zip archive ({exc}); it may be "
                       "truncated: download it again.")


DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError, NotImplementedError)


def _fs_limits(out_dir: Path) -> tuple[int, int]:
    """The longest name part and path (bytes) the file system under ``out_dir`` takes."""
    probe = out_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def extract_zip(archive: Path, out_dir: Path, limits: ExtractLimits) -> list[dict]:
    """Check every entry first (nothing is written for a hostile archive), then extract.
    Returns the entries left out (``rejection`` rows)."""
    try:
        zf = zipfile.ZipFile(archive)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{archive}: an entry's name is marked UTF-8 but is not ({exc}); "
                          "re-create the archive.") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise _not_a_zip(archive, exc) from None
    root = out_dir.resolve()
    name_max, path_max = _fs_limits(root)
    with zf:
        entries, rejected = check_zip(zf, limits, name_max=name_max,
                                      path_room=path_max - len(os.fsencode(str(root))) - 2)
        out_dir.mkdir(parents=True, exist_ok=True)
        # Bound what is written too, against the archive's real size: the checks above
        # trust the central directory, this does not.
        size, total = max(archive.stat().st_size, 1), 0
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
                            total += len(block)
                            if written > info.file_size:  # the header lied about the size
                                raise SourceError(f"Refusing archive: entry {info.filename!r} "
                                                  "is larger than its header says.")
                            _check_written(total, size, limits, info.filename)
                            dst.write(block)
                except DAMAGED as exc:
                    raise SourceError(f"{archive} is damaged at entry {info.filename!r} "
                                      f"({exc}); download it again.") from None
                bar.update(written)
    return rejected


def _check_written(total: int, size: int, limits: ExtractLimits, name: str) -> None:
    if total > limits.max_total_bytes:
        raise SourceError(f"Refusing archive: it expands past data.extract.max_total_bytes="
                          f"{limits.max_total_bytes} while extracting entry {name!r}, more "
                          "than its headers claim; re-create the archive.")
    if total > 1 << 20 and total / size > limits.max_ratio:
        raise SourceError(f"Refusing archive: it expands past data.extract.max_ratio="
                          f"{limits.max_ratio} times its own size ({size} bytes) while "
                          f"extracting entry {name!r}, more than its headers claim; "
                          "re-create the archive.")
