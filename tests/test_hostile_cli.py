"""Hostile input, second round (issue 11 items 7, 8, 11, 12), fed through the real entry
points: the ``deepfake`` command as a subprocess, the stages as ``python stages/<stage>.py``
in a mini project. Each asserts the one-line error (or the listed rejection), the exit code,
the time and memory it took, and that nothing else changed.

Memory is the child's own peak RSS: each command runs under a tiny ``python -S`` wrapper that
forks and execs it and reads ``RUSAGE_CHILDREN`` when it ends. ``ru_maxrss`` survives exec,
so a child forked straight from pytest (hundreds of MB) would report pytest's size; forked
from the wrapper it carries at most the wrapper's ~6 MB.

Nothing here imports TensorFlow: every refusal happens before the model is loaded, which is
what keeps each command under a second or two (loading TensorFlow takes 5-15 s).
"""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from helpers import jpeg_bytes, mini_project, snapshot, write_faces
from PIL import Image, ImageOps

BIN = Path(sys.executable).parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "DVC_NO_ANALYTICS": "1",
       "MLFLOW_DISABLE_TELEMETRY": "true"}
HANG = 60  # a command still running after this long counts as hung
FAST = 10  # seconds: refusals take ~0.5-2 s; loading TensorFlow alone would take 5-15 s
HUGE_MB = 1024  # a file no stage may read whole
SMALL_MB = 300  # peak RSS of a refusal: ~35 MB for the CLI, ~120 MB for a stage
ODD = 'odd\r\nname, "quoted".jpg'  # a carriage return, a newline, a comma and quotes

MEASURE = r'''
import os, resource, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a regression fails, alone
    os.execvp(argv[0], argv)
status = os.waitpid(pid, 0)[1]
with open(out, "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
'''


class Run:
    def __init__(self, returncode, stdout, stderr, seconds, peak_mb):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.seconds, self.peak_mb = seconds, peak_mb

    def one_error_line(self) -> str:
        """stderr's only line, which starts with ``error:`` (no traceback, no usage)."""
        lines = [x for x in self.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), self.stderr[-3000:]
        return lines[0]


def measured(cmd: list[str], cwd: Path, tmp_path: Path) -> Run:
    """``cmd`` run to its end (killed, with its children, after HANG s): exit code, output,
    wall seconds and its own peak RSS in MB."""
    peak = tmp_path.parent / f"peak-{tmp_path.name}-{time.monotonic_ns()}"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-S", "-c", MEASURE, str(peak), *map(str, cmd)],
                            cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{cmd} still running after {HANG} s: it hangs") from None
    seconds = time.perf_counter() - started
    peak_mb = int(peak.read_text()) / 1024
    peak.unlink()
    print(f"{' '.join(map(str, cmd))[-90:]!r}: exit {proc.returncode}, {seconds:.2f} s, "
          f"{peak_mb:.0f} MB")
    return Run(proc.returncode, out, err, seconds, peak_mb)


def state(folder: Path) -> dict:
    """Every entry under ``folder`` (FIFOs and sparse giants included, never opened): its
    type, size and modification time, and the bytes of regular files up to 1 MB."""
    out = {}
    for p in sorted(folder.rglob("*")):
        info = p.lstat()
        small = p.is_file() and not p.is_symlink() and info.st_size <= 1 << 20
        out[p.relative_to(folder).as_posix()] = (info.st_mode, info.st_size, info.st_mtime_ns,
                                                  p.read_bytes() if small else None)
    return out


def deepfake(*args, cwd: Path, tmp_path: Path) -> Run:
    return measured([BIN / "deepfake", *args], cwd, tmp_path)


@pytest.fixture
def project(tmp_path):
    """A folder with the project's params.yaml: the CLI finds its settings there, and any
    MLflow store it might open lands there, not in the checkout."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())
    return folder


def keras_lookalike(path: Path) -> Path:
    """A file that passes the --model check (a zip with config.json and weights) without
    being loadable: a command that reached Keras would fail, so these tests prove that every
    refusal came first."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Functional", "config": {}}))
        zf.writestr("metadata.json", "{}")
        zf.writestr("model.weights.h5", b"")
    return path


# --- item 11: the CLI reads only regular files, checks --model and --out first ------------

def test_predict_and_explain_refuse_devices_and_fifos_without_opening_them(tmp_path, project):
    fifo = tmp_path / "face.jpg"
    os.mkfifo(fifo)  # no writer: opening it for reading would block for ever
    before = state(tmp_path)
    runs = {"predict /dev/zero": deepfake("predict", "/dev/zero", cwd=project, tmp_path=tmp_path),
            "predict FIFO": deepfake("predict", fifo, cwd=project, tmp_path=tmp_path),
            "explain FIFO": deepfake("explain", fifo, cwd=project, tmp_path=tmp_path)}
    said = {name: run.one_error_line() for name, run in runs.items()}
    assert said["predict /dev/zero"] == ("error: /dev/zero: a character device, not a regular "
                                         "file; only regular files are read")
    assert said["predict FIFO"].endswith("face.jpg: a FIFO, not a regular file; only regular "
                                         "files are read")
    assert said["explain FIFO"].endswith("face.jpg: a FIFO, not a regular file")
    for run in runs.values():
        assert run.returncode == 2 and run.seconds < FAST and run.peak_mb < SMALL_MB
    assert state(tmp_path) == before and sorted(os.listdir(project)) == ["params.yaml"]


def test_predict_lists_fifos_and_huge_files_in_a_folder_unread(tmp_path, project):
    photos = tmp_path / "photos"
    photos.mkdir()
    os.mkfifo(photos / "pipe.jpg")
    os.mkfifo(photos / ODD)
    with open(photos / "huge.jpg", "wb") as fh:  # sparse: 4 GiB on paper, no disk used
        fh.truncate(4 << 30)
    model = keras_lookalike(tmp_path / "model.keras")
    before = state(tmp_path)
    run = deepfake("predict", photos, "--model", model, "--out", tmp_path / "scores.csv",
                   cwd=project, tmp_path=tmp_path)
    assert run.returncode == 1, run.stderr[-2000:]  # some files could not be scored
    assert run.stderr == "" and run.seconds < FAST and run.peak_mb < SMALL_MB
    rows = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    assert rows[["file", "error"]].to_dict("records") == [
        {"file": str(photos / "huge.jpg"), "error": "too_large"},
        {"file": str(photos / ODD), "error": "not_regular_file"},
        {"file": str(photos / "pipe.jpg"), "error": "not_regular_file"}]
    assert "odd\\r\\nname" in run.stdout  # the table shows the name on one line
    after = state(tmp_path)
    assert after.pop("scores.csv") and after == before  # only the --out file was written


@pytest.mark.parametrize("case", ["text file", "folder", "renamed zip", "bad config",
                                  "fifo", "device", "missing"])
def test_bad_model_arguments_are_one_line_before_anything_loads(tmp_path, project, case):
    image = tmp_path / "face.jpg"
    image.write_bytes(jpeg_bytes(1))
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    with zipfile.ZipFile(tmp_path / "x.keras", "w") as zf:
        zf.writestr("photo.jpg", jpeg_bytes(2))
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as zf:
        zf.writestr("config.json", "{not json")
        zf.writestr("model.weights.h5", b"")
    os.mkfifo(tmp_path / "pipe.keras")  # opening it would block: it is never opened
    model, message = {
        "text file": (tmp_path / "passwd", "passwd: not a .keras file; expected models:/"),
        "folder": (folder, "not_a_model: a folder that is not an MLflow model (no MLmodel"),
        "renamed zip": (tmp_path / "x.keras", "x.keras is not a Keras model this project can "
                        "load: a zip archive without config.json"),
        "bad config": (tmp_path / "bad.keras", "its config.json is not JSON"),
        "fifo": (tmp_path / "pipe.keras", "pipe.keras: a FIFO, not a regular file"),
        "device": ("/dev/zero", "--model /dev/zero: a character device, not a regular file"),
        "missing": (tmp_path / "gone", "--model " + str(tmp_path / "gone") + ": no such file"),
    }[case]
    before = state(tmp_path)
    run = deepfake("predict", image, "--model", model, cwd=project, tmp_path=tmp_path)
    assert run.returncode == 2 and message in run.one_error_line(), run.stderr[-2000:]
    assert run.seconds < FAST and run.peak_mb < SMALL_MB
    assert state(tmp_path) == before and sorted(os.listdir(project)) == ["params.yaml"]


def test_out_paths_are_checked_before_any_work(tmp_path, project):
    image = tmp_path / "face.jpg"
    image.write_bytes(jpeg_bytes(1))
    model = keras_lookalike(tmp_path / "model.keras")
    (tmp_path / "scores.csv").mkdir()  # existing folders named like the output files
    (tmp_path / "metrics.json").mkdir()
    (tmp_path / "report.txt").write_text("keep me")  # an existing file where a folder goes
    os.mkfifo(tmp_path / "pipe.csv")  # writing to it would block
    before = state(tmp_path)
    cases = [(["predict", image, "--out", tmp_path / "scores.csv"], "scores.csv': is a folder"),
             (["predict", image, "--out", tmp_path / "pipe.csv"], "a FIFO, not a regular file"),
             (["explain", image, "--out", tmp_path / "report.txt"], "exists and is not a folder"),
             (["evaluate", "--data", tmp_path, "--out", tmp_path / "metrics.json"], "is a folder")]
    for args, message in cases:
        run = deepfake(*args, "--model", model, cwd=project, tmp_path=tmp_path)
        assert run.returncode == 2 and message in run.one_error_line(), run.stderr[-2000:]
        assert run.seconds < FAST and run.peak_mb < SMALL_MB
    assert state(tmp_path) == before and sorted(os.listdir(project)) == ["params.yaml"]


# --- item 12: YAML alias bombs in params.yaml ---------------------------------------------

def billion_laughs(levels: int = 9) -> str:
    """9**9 (387 million) strings in 700 bytes; base.seed's value gets printed by the check."""
    lines = ['anchors:', '  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"  {name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + f"\nbase:\n  seed: *{chr(ord('a') + levels - 1)}\n"


def test_params_alias_bombs_are_refused_by_stages_cli_service_and_make(tmp_path):
    project = mini_project(tmp_path / "p", ROOT)
    bomb = billion_laughs()
    (project / "params.yaml").write_text(bomb)
    before = snapshot(project)
    expected = (f"error: {project / 'params.yaml'}: its aliases expand to more than 100,000 "
                "values (a YAML alias bomb); refused before reading its values")
    runs = [(measured([sys.executable, "stages/split.py"], project, tmp_path), 1),
            (deepfake("models", cwd=project, tmp_path=tmp_path), 2),
            (deepfake("serve", "--port", "0", cwd=project, tmp_path=tmp_path), 2),
            (measured([sys.executable, "-m", "deepfake_detector.params_check"], project,
                      tmp_path), 2)]
    for run, code in runs:
        assert run.returncode == code and run.one_error_line() == expected
        assert run.seconds < FAST and run.peak_mb < SMALL_MB
    (project / "params.yaml").write_text("base: &loop\n  seed: [*loop]\n")
    run = measured([sys.executable, "stages/preprocess.py"], project, tmp_path)
    assert run.returncode == 1 and "an alias refers to a value that contains it" in (
        run.one_error_line())
    (project / "params.yaml").write_text(bomb)
    assert snapshot(project) == before


def test_make_repro_checks_params_before_dvc_reads_them():
    done = subprocess.run(["make", "-n", "repro"], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG, env=ENV)
    lines = done.stdout.splitlines()
    check = next(i for i, x in enumerate(lines) if "-m deepfake_detector.params_check" in x)
    assert check < next(i for i, x in enumerate(lines) if x.startswith("dvc repro"))


# --- item 7: every CSV round-trips any file name ------------------------------------------

def test_odd_names_round_trip_from_fetch_through_split_to_preprocess(tmp_path):
    project = mini_project(tmp_path / "p", ROOT, {"preprocess.max_file_mb": 1})
    raw = project / "data" / "raw"
    write_faces(raw / "real", 16, False)
    write_faces(raw / "fake", 16, True)
    kept = 'real/comma, "quoted" name.jpg'  # printable: kept, and listed in a manifest
    (raw / kept).write_bytes(jpeg_bytes(40))
    (raw / "fake" / "carriage\rreturn.jpg").write_bytes(jpeg_bytes(41, fake=True))  # bad_name
    os.mkfifo(raw / "real" / "pipe.jpg")  # listed by split, never opened
    with open(raw / "fake" / "huge.jpg", "wb") as fh:  # sparse: no disk is used
        fh.truncate(HUGE_MB << 20)  # past preprocess.max_file_mb: too_large, never read
    fetched = [{"file": "real/" + ODD, "reason": "not_regular_file"},
               {"file": "real/passwd.jpg", "reason": "link_outside_source"}]
    (raw / "source.json").write_text(json.dumps({"source": "folder", "rejected": fetched}))
    split = measured([sys.executable, "stages/split.py"], project, tmp_path)
    assert split.returncode == 0, split.stderr[-3000:]
    # split's own imports (pandas, scikit-learn for the shortcut audit) peak at 270-330 MB
    # depending on the machine's cores, so "not read" is judged against the file's size
    assert split.peak_mb < HUGE_MB / 2  # the 1 GiB file was not read (nor hashed)
    before = snapshot(project / "data" / "split")
    pre = measured([sys.executable, "stages/preprocess.py"], project, tmp_path)
    assert pre.returncode == 0, pre.stderr[-3000:]
    assert pre.peak_mb < SMALL_MB  # the 1 GiB file was not read
    expected = [{"file": r["file"], "stage": "fetch", "reason": r["reason"]} for r in fetched]
    expected += [{"file": "data/raw/fake/carriage\rreturn.jpg", "stage": "split",
                  "reason": "bad_name"},
                 {"file": "data/raw/fake/huge.jpg", "stage": "split", "reason": "too_large"},
                 {"file": "data/raw/real/pipe.jpg", "stage": "split",
                  "reason": "not_regular_file"}]
    for folder in ("split", "processed"):
        path = project / "data" / folder / "rejected.csv"
        with open(path, newline="", encoding="utf-8") as fh:  # the csv module agrees
            assert list(csv.DictReader(fh)) == expected
        assert pd.read_csv(path, keep_default_na=False).to_dict("records") == expected
    manifests = pd.concat(pd.read_csv(project / "data" / "split" / f"{s}.csv",
                                      keep_default_na=False) for s in ("train", "val", "test"))
    assert "data/raw/" + kept in set(manifests["path"]) and len(manifests) == 33
    paths = set()
    for s in ("train", "val", "test"):
        with np.load(project / "data" / "processed" / f"{s}.npz") as z:
            paths |= set(z["paths"].tolist())
    assert "data/raw/" + kept in paths and len(paths) == 33
    assert snapshot(project / "data" / "split") == before  # preprocess only read it


# --- item 8: EXIF orientation wherever the JPEG's markers put it --------------------------

def exif_jpeg(hide_exif: bool) -> bytes:
    """A 96×64 JPEG whose EXIF says "rotate 90° clockwise"; ``hide_exif`` puts two 60 KB
    APP2 segments (as a large ICC profile would) between the start and the EXIF block."""
    arr = np.zeros((64, 96, 3), np.uint8)
    arr[:, :32] = (250, 30, 30)  # left third red, a green bar at the top
    arr[:8, :, 1] = 220
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    data = buf.getvalue()
    if not hide_exif:
        return data
    filler = b"".join(b"\xff\xe2" + (60_002).to_bytes(2, "big") + b"XTRA" + bytes(59_996)
                      for _ in range(2))
    return data[:2] + filler + data[2:]


@pytest.mark.parametrize("hide_exif", [False, True], ids=["exif_first", "exif_after_120kb"])
def test_pipeline_and_service_turn_a_photo_the_same_way(tmp_path, hide_exif):
    from deepfake_detector.inference import prepare_image
    from deepfake_detector.preprocess import decode_files

    data = exif_jpeg(hide_exif)
    assert (data.find(b"Exif\x00\x00") > 120_000) == hide_exif
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    x, keep, *_ = decode_files([str(path)], 64, 50_000_000)  # what the preprocess stage runs
    service, face = prepare_image(data, 64, face_crop={"enabled": True})  # serve's default
    assert keep.all() and face is False
    upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB")  # Pillow's own answer
    reference = np.asarray(upright.resize((64, 64), Image.Resampling.BILINEAR,
                                          box=(0, 16, 64, 80), reducing_gap=None))
    assert upright.size == (64, 96)  # turned: taller than wide
    assert np.array_equal(x[0], service) and np.array_equal(x[0], reference)
    assert x[0][:, -8:, 1].mean() > 150  # the green bar ends on the right, as displayed
