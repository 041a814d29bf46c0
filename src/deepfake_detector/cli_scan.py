"""``deepfake scan VIDEO…``: one line per clip (verdict, P(fake), frames scored, faces found,
seconds); with ``--out DIR`` each clip's JSON (every sampled frame) and timeline PNG, and
``scan.json`` with every clip and, when folders name the classes, clip-level ROC AUC and
accuracy."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .cli_checks import check_model, check_out_folder, expand_paths, shown
from .cli_output import strict_json
from .images import MB
from .verdicts import verdict_text

EXTENSIONS = ".mp4 .mov .m4v .webm .mkv .avi"


def _stem(file: str, taken: set[str]) -> str:
    """A file name for a clip's outputs: its stem in safe characters, numbered if taken."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file).stem).strip("._") or "clip"
    stem, n = base, 1
    while stem in taken:
        n += 1
        stem = f"{base}-{n}"
    taken.add(stem)
    return stem


def _line(r: dict) -> str:
    if r.get("error"):
        return f"{shown(r['file'])}  rejected: {r['error']}" + (
            f" ({r['detail']})" if r.get("detail") else "")
    faces = "-" if r["faces_found"] is None else str(r["faces_found"])
    text = verdict_text(r["p_fake"], r["threshold"], r["verdict"], r["reason"])
    return (f"{shown(r['file'])}  {text}  frames {r['frames_scored']}/{r['frames_sampled']} "
            f"scored  faces {faces}  {r['seconds']:.1f} s"
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
    limits = VideoLimits.from_params(params)
    if args.fps is not None or args.max_frames is not None:
        limits = VideoLimits(**{**limits.__dict__, **({"fps": args.fps} if args.fps else {}),
                                **({"max_frames": args.max_frames} if args.max_frames else {})})
    files = expand_paths(args.paths, int(params["video"]["max_file_mb"] * MB), is_video_path)
    if not files:
        raise ValueError(f"no video files ({EXTENSIONS}) under the given folders")
    detector = _detector(args, params, root)
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results, taken = [], set()
    for file, error in files:
        try:
            if error:
                raise VideoRejected(error)
            result = scan(detector, file, limits, name=file,
                          face_crop=False if args.no_face_crop else None,
                          top_fraction=params["video"]["top_fraction"])
        except VideoRejected as exc:
            result = {"file": file, "error": exc.reason, "detail": exc.detail}
        if out and not result.get("error"):
            stem = _stem(file, taken)
            (out / f"{stem}.json").write_text(strict_json(result_json(result)) + "\n")
            timeline_png(result, out / f"{stem}.timeline.png")
            result["outputs"] = [f"{stem}.json", f"{stem}.timeline.png"]
        results.append(result_json(result) if not result.get("error") else result)
        if not args.json:
            print(_line(result), flush=True)
    summary = labelled_summary(results, params["data"]["class_names"])
    report = {"model_trained_on": detector.trained_on, "clips": results, "labelled": summary}
    if out:
        (out / "scan.json").write_text(strict_json(report) + "\n")
    if args.json:
        print(strict_json(report))
    elif summary:
        print(f"clips labelled by folder: {summary['clips']} ({summary['fake']} fake): "
              f"ROC AUC {summary['roc_auc']:.3f}, accuracy {summary['accuracy']:.3f}")
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
    p.add_argument("--fps", type=float, help="frames sampled per second (default: video.fps)")
    p.add_argument("--max-frames", type=int, help="at most this many frames per clip "
                   "(default: video.max_frames)")
    p.add_argument("--no-face-crop", action="store_true", help="score whole frames")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
