"""Clip-level evaluation in the evaluate stage, with the clip rule of ``video_scan``:

- the built-in clips (``data/raw/videos/clips.csv``, validation and test clips apart from the
  image splits): the clip threshold chosen on the validation clips, then ROC AUC, accuracy
  and, for clips manipulated over one segment only, whether the top frame falls inside it;
- datasets whose images are video frames (``split.group_regex``): the test frames grouped by
  video, with a threshold chosen on the validation frames grouped the same way.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from .evaluation import choose_threshold
from .video_scan import clip_score, scan

CLIPS_FILE = "clips.csv"


def read_clips(videos_dir: Path) -> list[dict]:
    """The rows of ``clips.csv``: file, split, label, family, kind (whole|segment|""),
    start, end (the manipulated span: ``start <= t < end``)."""
    with open(Path(videos_dir) / CLIPS_FILE, newline="") as fh:
        return [{**row, "label": int(row["label"]),
                 "start": float(row["start"]) if row["start"] != "" else None,
                 "end": float(row["end"]) if row["end"] != "" else None}
                for row in csv.DictReader(fh)]


def _metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    both = len(set(y.tolist())) == 2
    return {"roc_auc": float(roc_auc_score(y, p)) if both else None,
            "accuracy": float(np.mean((p >= threshold) == (y == 1))) if len(y) else None,
            "n": int(len(y))}


def evaluate_clips(detector, videos_dir: Path, params: dict, progress=None) -> tuple[dict, dict]:
    """Scan every clip; returns (the clip rule for the settings: ``top_fraction``,
    ``threshold``, ``chosen_on``; the test metrics: ``video_roc_auc``, ``video_accuracy``,
    ``video_clips``, ``video_segment_top1`` (the share of segment clips called fake whose
    most suspicious frame lies inside the manipulated segment) and ``video_segment_called``).
    """
    from .video import VideoLimits

    limits = VideoLimits.from_params(params)
    top_fraction = float(params["video"]["top_fraction"])
    rows = read_clips(videos_dir)
    results = []
    for row in progress(rows) if progress else rows:
        # the detector's settings hold no clip rule yet (this fits it): the params' share
        result = scan(detector, Path(videos_dir) / row["file"], limits, name=row["file"],
                      top_fraction=top_fraction)
        top_t = result["top"][0]["t"] if result["top"] else None
        results.append((row, result["p_fake"], top_t))
    # a clip with no scored frame has no score: left out of the metrics, counted here
    scored = [(row, p, t) for row, p, t in results if p is not None]
    val = [(row["label"], p) for row, p, _ in scored if row["split"] == "val"]
    test = [(row, p, t) for row, p, t in scored if row["split"] == "test"]
    cfg = params["evaluate"]
    if len({y for y, _ in val}) == 2:
        y_val, p_val = map(np.array, zip(*val))
        threshold = choose_threshold(y_val, p_val, cfg["threshold"], cfg["target_fake_recall"])
        chosen_on = f"{len(val)} validation clips"
    else:
        threshold, chosen_on = detector.threshold, "the image threshold (no validation clips)"
    rule = {"top_fraction": top_fraction, "threshold": float(threshold), "chosen_on": chosen_on,
            "fps": limits.fps, "max_frames": limits.max_frames}  # the sampling it was fitted at
    y = np.array([row["label"] for row, _, _ in test])
    p = np.array([p for _, p, _ in test])
    m = _metrics(y, p, threshold)
    segments = [(row, t) for row, clip_p, t in test
                if row["label"] == 1 and clip_p >= threshold and row["kind"] == "segment"]
    hits = [row["start"] <= t < row["end"] for row, t in segments]
    metrics = {"video_roc_auc": m["roc_auc"], "video_accuracy": m["accuracy"],
               "video_clips": m["n"],
               "video_clips_unscored": sum(p is None and row["split"] == "test"
                                           for row, p, _ in results),
               "video_segment_top1": float(np.mean(hits)) if hits else None,
               "video_segment_called": len(segments), "video_threshold": float(threshold)}
    return rule, metrics


def group_of(path: str, pattern: re.Pattern) -> str:
    """The video id of a frame's path (relative to ``data/raw``, as the split stage reads
    ``split.group_regex``)."""
    m = pattern.search(path)
    if not m:
        return ""
    return m.group(1) if m.groups() else m.group(0)


def grouped_scores(paths, y, p, pattern: re.Pattern, top_fraction: float, raw_prefix: str = ""):
    """(labels, clip scores) of the frames grouped by video id and label (a source video and
    the fakes made from it can share an id); frames with no id are left out."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, path in enumerate(map(str, paths)):
        if gid := group_of(path.removeprefix(raw_prefix), pattern):
            groups.setdefault((gid, int(y[i])), []).append(i)
    labels = np.array([label for _, label in groups], dtype=int)
    scores = np.array([clip_score(p[idx].tolist(), top_fraction) for idx in groups.values()])
    return labels, scores


def grouped_metrics(val: tuple, test: tuple, regex: str, top_fraction: float, cfg: dict,
                    image_threshold: float, raw_prefix: str = "") -> tuple[dict, dict]:
    """The test frames grouped by video (``val`` and ``test`` are (paths, labels, calibrated
    P(fake)) each): (the clip rule, fitted on the validation frames grouped the same way,
    else the image threshold; the ``group_*`` metrics)."""
    pattern = re.compile(regex)
    y_val, s_val = grouped_scores(*val, pattern, top_fraction, raw_prefix)
    y_test, s_test = grouped_scores(*test, pattern, top_fraction, raw_prefix)
    if len(set(y_val.tolist())) == 2:
        threshold = choose_threshold(y_val, s_val, cfg["threshold"], cfg["target_fake_recall"])
        chosen_on = f"{len(y_val)} validation videos (frames grouped by split.group_regex)"
    else:
        threshold, chosen_on = image_threshold, "the image threshold (no validation videos)"
    rule = {"top_fraction": top_fraction, "threshold": float(threshold), "chosen_on": chosen_on}
    m = _metrics(y_test, s_test, threshold)
    return rule, {"group_roc_auc": m["roc_auc"], "group_accuracy": m["accuracy"],
                  "group_videos": m["n"], "group_threshold": float(threshold)}


def add_clip_metrics(name: str, params: dict, workspace, result: dict, val: dict,
                     test: dict) -> bool:
    """The evaluate stage's clip-level part: adds to ``result``'s metrics (and to the files
    evaluate wrote) the ``group_*`` metrics when ``split.group_regex`` is set and the
    ``video_*`` metrics and the clip rule (settings ``video``) when the fetched data has
    clips. Returns whether it added anything."""
    import json

    from tqdm import tqdm

    from .atomic import write_text
    from .detector import Detector

    settings, report = result["settings"], result["metrics"]
    top_fraction = float(params["video"]["top_fraction"])
    regex = params["split"]["group_regex"]
    if regex:  # frames of videos: their clip rule, until built-in clips fit one below
        raw = workspace.raw.relative_to(workspace.root).as_posix() + "/"
        settings["video"], grouped = grouped_metrics(
            (val["paths"], val["y"], result["p_val"]), (test["paths"], test["y"],
                                                        result["p_test"]),
            regex, top_fraction, params["evaluate"], settings["threshold"], raw)
        report.update(grouped)
    clips = workspace.raw / "videos"
    if (clips / CLIPS_FILE).is_file():
        detector = Detector.load(workspace.model(name), settings)
        settings["video"], video_metrics = evaluate_clips(
            detector, clips, params,
            progress=lambda rows: tqdm(rows, desc=f"scan clips ({name})", unit="clip",
                                       disable=None))
        report.update(video_metrics)
    if "video" not in settings:
        return False
    write_text(workspace.settings(name), json.dumps(settings, indent=2) + "\n")
    write_text(workspace.metrics(name), json.dumps(report, indent=2) + "\n")
    return True
