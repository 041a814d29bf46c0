"""Hostile input, second round (issue 11, items 1, 2, 3 and 6): zip bombs whose entries
overlap, zip entries that used to crash extraction, a failed `dvc repro fetch` that must keep
the last good data/raw, and links or special files in a folder source. The archives are
packed by hand (struct), so each is a few kilobytes."""

import io
import json
import os
import shutil
import stat
import struct
import subprocess
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT
from helpers import jpeg_bytes, make_zip, snapshot, write_faces

from deepfake_detector import archives, sources
from deepfake_detector.config import copy_checkout
from deepfake_detector.sources import ExtractLimits, SourceError, fetch

# ---------------------------------------------------------------- archives packed by hand


def local_header(name: bytes, *, crc: int, csize: int, usize: int, method: int = 0,
                 flags: int = 0) -> bytes:
    return struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0, crc, csize, usize,
                       len(name), 0) + name


def central_entry(name: bytes, *, offset: int, crc: int, csize: int, usize: int,
                  method: int = 0, flags: int = 0) -> bytes:
    return struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20 | (3 << 8), 20, flags, method, 0, 0,
                       crc, csize, usize, len(name), 0, 0, 0, 0,
                       (stat.S_IFREG | 0o644) << 16, offset) + name


def end_of_archive(n: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, cd_size, cd_offset, 0)


def hand_zip(entries: list[tuple[str, bytes, int]], *, claim: dict | None = None) -> bytes:
    """Stored entries ``(name, data, flags)``; ``claim`` maps an entry's index to the
    uncompressed size its central directory states instead of the true one."""
    body, directory = b"", b""
    for i, (name, data, flags) in enumerate(entries):
        raw, crc = name.encode(), zlib.crc32(data)
        usize = (claim or {}).get(i, len(data))
        directory += central_entry(raw, offset=len(body), crc=crc, csize=len(data),
                                   usize=usize, flags=flags)
        body += local_header(raw, crc=crc, csize=len(data), usize=len(data), flags=flags) + data
    return body + directory + end_of_archive(len(entries), len(directory), len(body))


def kernel(size: int = 1 << 20) -> bytes:
    """Data that deflates about 167x: under data.extract.max_ratio=200, so every entry of
    the bomb below looks reasonable on its own."""
    pattern = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    return (pattern * (size // 1000 + 1))[:size]


def overlap_bomb(n: int = 16) -> bytes:
    """David Fifield's "better zip bomb": every entry's deflate stream starts with a stored
    block quoting the next entry's local header, then runs on into the next entry's data,
    down to one shared compressed kernel. n names, n local headers, one kernel."""
    plain = kernel()
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    data, out = packer.compress(plain) + packer.flush(), plain  # the last entry's
    names = [f"real/bomb{i:02d}.jpg".encode() for i in range(n)]
    headers: list[bytes] = [b""] * n
    datas: list[bytes] = [b""] * n
    crcs, usizes = [0] * n, [0] * n
    for i in reversed(range(n)):
        if i < n - 1:  # a stored (BTYPE 00, not final) block quoting header i+1
            quoted = headers[i + 1]
            data = struct.pack("<BHH", 0, len(quoted), len(quoted) ^ 0xFFFF) + quoted + data
            out = quoted + out
        datas[i], crcs[i], usizes[i] = data, zlib.crc32(out), len(out)
        headers[i] = local_header(names[i], crc=crcs[i], csize=len(data), usize=len(out),
                                  method=8)
    body = headers[0] + datas[0]  # datas[0] holds every later header, each quoted once
    directory, offset = b"", 0
    for i in range(n):
        directory += central_entry(names[i], offset=offset, crc=crcs[i], csize=len(datas[i]),
                                   usize=usizes[i], method=8)
        offset += len(headers[i]) + 5  # the header, then the 5-byte stored-block header
    return body + directory + end_of_archive(n, len(directory), len(body))


def faces(n: int = 2) -> list[tuple[str, bytes, int]]:
    return [(f"real/r{i}.jpg", jpeg_bytes(i), 0) for i in range(n)] + \
        [(f"fake/f{i}.jpg", jpeg_bytes(i, fake=True), 0) for i in range(n)]


def refused(work, archive: bytes, match: str, **limits):
    """fetch() of ``archive`` fails with ``match`` and leaves every file as it was."""
    (work / "h.zip").write_bytes(archive)
    before = snapshot(work)
    with pytest.raises(SourceError, match=match) as info:
        fetch("h.zip", work / "raw", root=work, cache_dir=work / "cache",
              limits=ExtractLimits(**limits))
    assert "\n" not in str(info.value)
    assert snapshot(work) == before  # no data/raw, no .raw.partial, nothing else
    return str(info.value)


@pytest.fixture
def disk_at_failure(monkeypatch):
    """Bytes in fetch's partial folder at the moment it is thrown away after a failure."""
    seen = []
    real = shutil.rmtree

    def spy(path, *args, **kwargs):
        if os.path.isdir(path):
            seen.append(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sources.shutil, "rmtree", spy)
    return seen


# ---------------------------------------------------------------- item 1: zip bombs


def test_overlapping_entries_are_refused_before_anything_is_written(tmp_path):
    bomb = overlap_bomb()
    with zipfile.ZipFile(io.BytesIO(bomb)) as zf:
        stated = [(i.file_size, i.compress_size) for i in zf.infolist()]
    claimed = sum(size for size, _ in stated)
    assert len(bomb) < 9000 and claimed > 16 << 20  # 8 KB that says it holds 16 MiB, and
    # by the directory's own numbers every entry and the whole expand less than 200x:
    assert max(u / c for u, c in stated) < 200 and claimed / sum(c for _, c in stated) < 200
    refused(tmp_path, bomb, r"entry 'real/bomb00.jpg' overlaps entry 'real/bomb01.jpg' "
                            r"\(a zip bomb's trick", max_total_bytes=claimed)


def test_an_entry_running_into_the_central_directory_is_refused(tmp_path):
    archive = bytearray(hand_zip(faces()))
    cd = archive.rindex(b"PK\x01\x02")  # the last entry's record in the central directory
    csize = struct.unpack_from("<L", archive, cd + 20)[0]
    struct.pack_into("<L", archive, cd + 20, csize + 200)  # its data "runs on" 200 bytes
    refused(tmp_path, bytes(archive), "entry 'fake/f1.jpg' overlaps the archive's central "
                                      "directory")


def test_writing_stops_at_the_limits_when_the_directory_checks_are_fooled(
        tmp_path, monkeypatch, disk_at_failure):
    """The second line of defence: a running count of the bytes really written, against
    data.extract.max_total_bytes and the archive's real size."""
    # With the overlap check gone (as if fooled), the bomb passes check_zip's
    # central-directory arithmetic; writing stops once it has written 200x the archive.
    monkeypatch.setattr(archives, "_refuse_overlaps", lambda zf, infos: None)
    bomb = overlap_bomb()
    refused(tmp_path, bomb, rf"expands past data.extract.max_ratio=200.0 times its own "
                            rf"size \({len(bomb)} bytes\) while extracting entry 'real/bomb0")
    assert disk_at_failure[-1] <= 200 * len(bomb) < 2_000_000  # of the 16 MiB claimed
    # Past max_total_bytes while writing (check_zip fooled outright: it returns everything).
    monkeypatch.setattr(archives, "check_zip", lambda zf, limits, **kw: (zf.infolist(), []))
    refused(tmp_path, make_zip(tmp_path / "z.zip", {"real/zeros.jpg": bytes(8 << 20)})
            .read_bytes(), "expands past data.extract.max_total_bytes=3000000 while "
                           "extracting entry 'real/zeros.jpg'", max_total_bytes=3_000_000,
            max_ratio=1e9)
    assert 0 < disk_at_failure[-1] <= 3_000_000


def test_a_directory_that_understates_a_size_writes_no_more_than_it_states(
        tmp_path, disk_at_failure):
    entries = faces() + [("real/big.jpg", bytes(4 << 20), 0)]
    archive = hand_zip(entries, claim={len(entries) - 1: 1000})  # 4 MiB stated as 1000 B
    refused(tmp_path, archive, "damaged at entry 'real/big.jpg'", max_total_bytes=1_000_000)
    # Python stops each entry at its stated size: the 4 MiB never reach the disk.
    assert disk_at_failure[-1] <= sum(len(d) for _, d, _ in faces()) + 1000


# ---------------------------------------------------------------- item 2: entries that crashed


@pytest.mark.parametrize("case,message", [
    ("encrypted", "entry 'real/secret.jpg' is encrypted; re-create the archive without a "
                  "password"),
    ("dot", r"entry '\.' names no file"),
    ("file_and_folder", "entry 'real/sub' is a file, but entry 'real/sub/x.jpg' needs it to "
                        "be a folder"),
    ("long_name", "has a name part of 304 bytes, longer than this file system allows"),
    ("long_path", "has a path longer than this file system allows"),
])
def test_entries_that_crashed_extraction_get_one_error_naming_them(tmp_path, case, message):
    extra = {"encrypted": [("real/secret.jpg", jpeg_bytes(9), 0x1)],
             "dot": [(".", b"x", 0)],
             "file_and_folder": [("real/sub", b"x", 0), ("real/sub/x.jpg", jpeg_bytes(9), 0)],
             "long_name": [("real/" + "a" * 300 + ".jpg", jpeg_bytes(9), 0)],
             "long_path": [("real/" + "/".join(["d" * 200] * 21) + ".jpg", b"x", 0)],
             }[case]
    assert 304 > os.pathconf(tmp_path, "PC_NAME_MAX")
    text = refused(tmp_path, hand_zip(faces() + extra), message)
    assert text.startswith("Refusing archive: ")


def test_a_dot_folder_entry_is_harmless(tmp_path):
    (tmp_path / "d.zip").write_bytes(hand_zip([("./", b"", 0)] + faces()))
    assert fetch("d.zip", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "c",
                 )["n_images"] == 4


def test_duplicate_entries_keep_the_first_and_are_listed(tmp_path, capsys):
    first, second = jpeg_bytes(1), jpeg_bytes(2)
    entries = faces() + [("real/same.jpg", first, 0), ("real/same.jpg", second, 0),
                         ("real/./same.jpg", second, 0), ("source.json", b"{}", 0)]
    (tmp_path / "d.zip").write_bytes(hand_zip(entries))
    record = fetch("d.zip", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "c")
    assert (tmp_path / "raw/real/same.jpg").read_bytes() == first  # the last no longer wins
    assert record["n_images"] == 5
    listed = json.loads((tmp_path / "raw/source.json").read_text())
    assert listed["rejected"] == [
        {"file": "real/same.jpg", "reason": "duplicate_entry"},
        {"file": "real/./same.jpg", "reason": "duplicate_entry"},
        {"file": "source.json", "reason": "reserved_name"}]
    assert listed["source"] == "d.zip"  # the archive's source.json did not replace fetch's
    warning = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert len(warning) == 1 and "left out 3 entries" in warning[0]


# ---------------------------------------------------------------- item 6: links in a folder


def test_links_and_special_files_in_a_folder_are_listed_never_opened(tmp_path):
    src = tmp_path / "src"
    write_faces(src / "real", 2, False)
    write_faces(src / "fake", 2, True)
    (src / "real/passwd.jpg").symlink_to("/etc/passwd")
    (src / "real/etc").symlink_to("/etc")  # a folder outside
    (src / "real/escape.jpg").symlink_to("../../outside.jpg")  # relative, leaving src
    (tmp_path / "outside.jpg").write_bytes(jpeg_bytes(7))
    os.mkfifo(src / "real/pipe.jpg")  # opening it would block for ever
    (src / "real/loop.jpg").symlink_to("loop.jpg")
    (src / "real/nothing.jpg").symlink_to("gone.jpg")
    (src / "real/inside.jpg").symlink_to("../fake/img0000.jpg")  # stays inside: copied
    (src / "real/again").symlink_to("..")  # a folder loop: not followed
    before = snapshot(src / "fake")
    result = {}
    worker = threading.Thread(target=lambda: result.update(fetch(
        "src", tmp_path / "raw", root=tmp_path, cache_dir=tmp_path / "c")), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(20)
    seconds = time.monotonic() - started
    if worker.is_alive():  # unblock a FIFO opened by mistake, then fail
        os.close(os.open(src / "real/pipe.jpg", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("fetch hung on the folder")
    assert seconds < 5 and result["n_images"] == 5
    raw = tmp_path / "raw"
    assert sorted(snapshot(raw)) == ["fake/img0000.jpg", "fake/img0001.jpg",
                                     "real/img0000.jpg", "real/img0001.jpg",
                                     "real/inside.jpg", "source.json"]
    assert (raw / "real/inside.jpg").read_bytes() == (src / "fake/img0000.jpg").read_bytes()
    assert not any(p.is_symlink() for p in raw.rglob("*"))
    secret = open("/etc/passwd", "rb").read()[:64]
    assert not any(secret in data for data in snapshot(raw).values())
    assert json.loads((raw / "source.json").read_text())["rejected"] == [
        {"file": "real/escape.jpg", "reason": "link_outside_source"},
        {"file": "real/etc", "reason": "link_outside_source"},
        {"file": "real/loop.jpg", "reason": "not_regular_file"},
        {"file": "real/nothing.jpg", "reason": "not_regular_file"},
        {"file": "real/passwd.jpg", "reason": "link_outside_source"},
        {"file": "real/pipe.jpg", "reason": "not_regular_file"}]
    assert snapshot(src / "fake") == before


# ---------------------------------------------------------------- item 3: through dvc repro


def test_a_failed_dvc_repro_fetch_keeps_the_last_good_data(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["source"] = "faces"
    repo = copy_checkout(ROOT, tmp_path / "repo", params)
    write_faces(repo / "faces/real", 3, False)
    write_faces(repo / "faces/fake", 3, True)
    env = {**os.environ, "PATH": f"{ROOT / '.venv/bin'}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "DEEPFAKE_CACHE_DIR": str(tmp_path / "cache")}

    def dvc(*args):
        return subprocess.run([str(ROOT / ".venv/bin/dvc"), *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=120)

    first = dvc("repro", "fetch")
    assert first.returncode == 0, first.stdout + first.stderr
    good = snapshot(repo / "data/raw")
    assert json.loads(good["source.json"])["n_images"] == 6

    (repo / "bomb.zip").write_bytes(overlap_bomb())
    params["data"]["source"] = "bomb.zip"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    started = time.monotonic()
    failed = dvc("repro", "fetch")
    seconds = time.monotonic() - started
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert errors == ["error: Refusing archive: entry 'real/bomb00.jpg' overlaps entry "
                      "'real/bomb01.jpg' (a zip bomb's trick: several names sharing the same "
                      "bytes); re-create the archive."]
    assert snapshot(repo / "data/raw") == good  # DVC did not delete it first (persist)
    assert not (repo / "data/.raw.partial").exists() and seconds < 30
    status = dvc("status", "fetch")
    assert "changed deps" in status.stdout and "deleted" not in status.stdout
