"""What the ``deepfake`` commands print and write: the predict table for people, CSV/JSON for
scripts, a progress bar over many files, and a start-up without library chatter."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from .cli_checks import shown
from .errors import DeepfakeError
from .images import readable_name
from .verdicts import verdict_text

# The contract's four first and the domain's two where they were, then the verdict's.
PREDICT_COLUMNS = ["file", "p_fake", "label", "error", "domain", "domain_score", "verdict",
                   "reason", "face_found", "trained_on", "provenance", "provenance_verified",
                   "provenance_trusted", "provenance_summary"]


def quiet_libraries(verbose: bool) -> None:
    """No TensorFlow/CUDA start-up lines and no MLflow download bars unless ``-v``. Set before
    either library is imported; a value the user exported wins."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # MLflow resets its logger on import
    import logging

    for name in ("tensorflow", "absl", "mlflow", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_hidden(enabled: bool):
    """TensorFlow's native start-up lines (CUDA probes, absl's preamble) bypass Python's
    logging and ``TF_CPP_MIN_LOG_LEVEL``: while loading, file descriptor 2 goes to a temporary
    file, replayed only when loading fails unexpectedly (so no error is lost). An expected
    failure (a bad model file: the one-line errors ``main`` prints) replays nothing."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except Exception as exc:  # not on Ctrl-C: that needs no TensorFlow chatter
            os.dup2(saved, 2)
            if not isinstance(exc, (DeepfakeError, FileNotFoundError, ValueError)):
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def progress_bar(total: int, what: str, enabled: bool):
    """A ``tqdm`` bar on stderr when there are more than a few files: yields its ``update``
    (what ``Detector.score`` takes as ``progress``), or None without a bar."""
    if not enabled or total <= 64:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="file", desc=what, file=sys.stderr, leave=False) as bar:
        yield bar.update


def strict_json(value) -> str:
    """JSON that strict parsers accept: a NaN or infinite number becomes null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=2, allow_nan=False)


def write_rows(rows: list[dict], out: str | None) -> None:
    """``--out``: JSON (``.json``) or CSV with ``PREDICT_COLUMNS``."""
    if out and out.lower().endswith(".json"):
        Path(out).write_text(strict_json(rows) + "\n")
    elif out:
        # The csv module's default dialect quotes any field holding a comma, a quote, "\r"
        # or "\n", so every name reads back as written (names that are not UTF-8 are
        # written with escapes, as in rejected.csv).
        with open(out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=PREDICT_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({**r, **_provenance_columns(r.get("provenance")),
                              "file": readable_name(r["file"])} for r in rows)


def _provenance_columns(found: dict | None) -> dict:
    """The provenance object as CSV columns: the claim, whether it is verified and trusted,
    the line."""
    if not found:
        return dict.fromkeys(("provenance", "provenance_verified", "provenance_trusted",
                              "provenance_summary"))
    return {"provenance": found["claim"], "provenance_verified": found["verified"],
            "provenance_trusted": found["trusted"], "provenance_summary": found["summary"]}


def print_table(rows: list[dict], threshold: float, trained_on: str) -> None:
    """The table for people: each file's verdict in words with P(fake) and the threshold,
    beside the face found and the domain flag; the training data above it."""
    if any(r["verdict"] for r in rows):
        print(f"model trained on {trained_on}; domain 'out': the image is unlike that data, "
              "so the verdict is inconclusive")
    names = [shown(r["file"]) for r in rows]
    texts = [verdict_text(r["p_fake"], threshold, r["verdict"]) for r in rows]
    width, text_width = max(len(n) for n in names), max(len(t) for t in texts)
    print(f"{'file':{width}s}  {'verdict':{text_width}s}  {'face':5s}  {'domain':6s}  "
          f"{'provenance':22s}  note")
    for name, text, r in zip(names, texts, rows):
        face = {True: "yes", False: "no", None: "-"}[r["face_found"]]
        print(f"{name:{width}s}  {text:{text_width}s}  {face:5s}  {r['domain'] or '-':6s}  "
              f"{provenance_cell(r.get('provenance')):22s}  "
              f"{r['error'] or (r['reason'] and r['reason'].replace('_', ' '))}")
    if any((r.get("provenance") or {}).get("source") for r in rows):
        print("provenance: what the file states about its origin (verified: a valid C2PA "
              "signature); `deepfake provenance FILE` shows the details")


def provenance_cell(found: dict | None) -> str:
    """``ai_generated (C2PA valid)``, ``camera (unsigned)``, ``none found``: the claim and how
    far it can be believed."""
    if not found:
        return "-"
    if found["source"] is None:
        return "none found" + (" (error)" if found["error"] else "")
    how = {"c2pa": "C2PA " + (found["c2pa"] or {}).get("state", "?")}.get(
        found["source"], "unsigned")
    return f"{found['claim']} ({how})"
