"""``deepfake scan VIDEO…``: one line per clip (verdict, P(fake), frames scored, faces found,
seconds); with ``--out DIR`` each clip's JSON (every sampled frame) and timeline PNG, and
``scan.json`` with every clip and, when folders name the classes, clip-level ROC AUC and
accuracy."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
from pathlib import Path

from .atomic import write_text
from .cli_checks import check_model, check_out_folder, expand_paths, shown
from .cli_output import provenance_cell, strict_json
from .images import MB, not_regular, readable_name
from .verdicts import verdict_text

# video.VIDEO_EXTENSIONS, written here too: importing video.py loads PyAV (0.1 s a command)
EXTENSIONS = ".mp4 .mov .m4v .webm .mkv .avi"
SUMMARY = "scan"  # --out's scan.json: no clip's outputs may take this stem


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"{value!r}: a number of frames per second above 0")
    return number


def _positive_int(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: a whole number of frames, 1 or more")
    return int(value)


def _stem(file: str, taken: set[str]) -> str:
    """A file name for a clip's outputs: its stem in safe characters, numbered if taken
    (compared without case, as a case-insensitive file system would)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file).stem).strip("._") or "clip"
    stem, n = base, 1
    while stem.casefold() in taken:
        n += 1
        stem = f"{base}-{n}"
    taken.add(stem.casefold())
    return stem


def _probe_out(out: Path) -> None:
    """--out DIR tried before any work: made and removed again, or a file made and removed
    in it when it exists. ``check_out_folder`` asks ``os.access``, which says yes to root
    everywhere (/proc, a read-only mount)."""
    import tempfile

    try:
        if out.is_dir():
            fd, probe = tempfile.mkstemp(prefix=".deepfake-scan-", dir=out)
            os.close(fd)
            os.unlink(probe)
            return
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r}: cannot write in it ({exc.strerror or exc})"
                         ) from None
    made = [out, *out.parents]
    made = made[:next(i for i, p in enumerate(made) if p.exists())]  # the folders to make
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r}: cannot create it ({exc.strerror or exc})"
                         ) from None
    finally:
        for folder in made:  # deepest first: only what this made, and only while empty
            try:
                folder.rmdir()
            except OSError:
                pass


def _rejection(file: str, reason: str, cap: int):
    """``expand_paths``'s reason for a file it would not open, as the ``VideoRejected`` that
    ``VideoReader`` gives the same file (reasons from ``video.REASONS``, with details)."""
    from .video import VideoRejected

    try:
        info = os.stat(file)
    except (OSError, ValueError) as exc:
        return VideoRejected("not_video", f"cannot open: {exc.strerror or exc}")
    if reason == "too_large":
        return VideoRejected("too_large", f"{info.st_size:,} bytes, more than the "
                             f"{cap / MB:g} MB cap (video.max_file_mb)")
    if reason == "not_regular_file":
        return VideoRejected("not_video", not_regular(info.st_mode))
    return VideoRejected("not_video", reason)


def _line(r: dict) -> str:
    from .video_scan import NO_FACES

    if r.get("error"):
        return f"{shown(r['file'])}  rejected: {r['error']}" + (
            f" ({r['detail']})" if r.get("detail") else "")
    faces = "-" if r["faces_found"] is None else str(r["faces_found"])
    if r["reason"] == NO_FACES:
        text = "inconclusive (no face in any sampled frame)"
    else:  # a clip is out of domain when most of its scored frames are
        text = verdict_text(r["p_fake"], r["threshold"], r["verdict"]) + (
            " (most frames unlike the model's training data)" if r["reason"] else "")
    found = r.get("provenance")
    return (f"{shown(r['file'])}  {text}  frames {r['frames_scored']}/{r['frames_sampled']} "
            f"scored  faces {faces}  {r['seconds']:.1f} s"
            + (f"  provenance: {provenance_cell(found)}" if found and found["source"] else "")
            + (f"  warning: {r['warning']}" if r.get("warning") else ""))


def cmd_scan(args) -> int:
    from .cli import _detector, _params
    from .video import VideoLimits, VideoRejected, is_video_path
    from .video_report import labelled_summary, result_json, timeline_png
    from .video_scan import scan

    params, root = _params()
    check_model(args.model)
    out = Path(args.out) if args.out else None
    if out:
        check_out_folder(out)
        _probe_out(out)
    limits = VideoLimits.from_params(params)
    if args.fps is not None:
        limits = dataclasses.replace(limits, fps=args.fps)
    if args.max_frames is not None:
        limits = dataclasses.replace(limits, max_frames=args.max_frames)
    cap = int(params["video"]["max_file_mb"] * MB)
    files = expand_paths(args.paths, cap, is_video_path)
    if not files:
        raise ValueError(f"no video files ({EXTENSIONS}) under the given folders")
    # nothing to scan (every file refused unopened): no need for the model
    detector = None if all(error for _, error in files) else _detector(args, params, root)
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results, taken = [], {SUMMARY}
    for file, error in files:
        name = readable_name(file)  # bytes that are not UTF-8 escaped: JSON, the PNG's title
        try:
            if error:
                raise _rejection(file, error, cap)
            result = scan(detector, file, limits, name=name,
                          face_crop=False if args.no_face_crop else None,
                          top_fraction=params["video"]["top_fraction"])
        except VideoRejected as exc:
            result = {"file": name, "error": exc.reason, "detail": exc.detail}
        if out and not result.get("error"):
            stem = _stem(file, taken)
            write_text(out / f"{stem}.json", strict_json(result_json(result)) + "\n")
            timeline_png(result, out / f"{stem}.timeline.png")
            result["outputs"] = [f"{stem}.json", f"{stem}.timeline.png"]
        results.append(result_json(result) if not result.get("error") else result)
        if not args.json:
            print(_line(result), flush=True)
    summary = labelled_summary(results, params["data"]["class_names"])
    report = {"model_trained_on": detector.trained_on if detector else None, "clips": results,
              "labelled": summary}
    if out:
        write_text(out / f"{SUMMARY}.json", strict_json(report) + "\n")
    if args.json:
        print(strict_json(report))
    elif summary:
        print(f"clips labelled by folder: {summary['clips']} ({summary['fake']} fake): "
              f"ROC AUC {summary['roc_auc']:.3f}, accuracy {summary['accuracy']:.3f}"
              + (f"; {summary['out_of_domain']} of them mostly unlike the model's training "
                 "data (their verdicts are inconclusive)" if summary["out_of_domain"] else ""))
    if out and not args.json:
        print(f"wrote {out}/ (each clip's JSON and timeline PNG, scan.json)", file=sys.stderr)
    return 1 if any(r.get("error") for r in results) else 0


def add_parser(command) -> None:
    """The ``scan`` subcommand, on ``cli.build_parser``'s ``command`` helper."""
    p = command("scan", cmd_scan, "scan video clips: a verdict per clip from its sampled "
                "frames, and a timeline")
    p.add_argument("paths", nargs="+", metavar="VIDEO", help=f"video files ({EXTENSIONS}) "
                   "or folders")
    p.add_argument("--model", help="as for predict")
    p.add_argument("--out", help="folder for each clip's JSON and timeline PNG, and scan.json")
    p.add_argument("--fps", type=_positive_float, help="frames sampled per second "
                   "(default: video.fps)")
    p.add_argument("--max-frames", type=_positive_int, help="at most this many frames per clip "
                   "(default: video.max_frames)")
    p.add_argument("--no-face-crop", action="store_true", help="score whole frames")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
