"""``deepfake provenance FILE…``: where each file says it came from (Content Credentials,
generator metadata, EXIF), without loading a model (``provenance.py``)."""

from __future__ import annotations


def add_parser(command) -> None:
    p = command("provenance", cmd_provenance, "Content Credentials (C2PA) and generator "
                "metadata of images and videos, without a model; 'none found' says nothing "
                "about authenticity")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image or video files or folders")
    p.add_argument("--out", help="also write the results to FILE.json")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def cmd_provenance(args) -> int:
    from pathlib import Path

    from .cli import _params
    from .cli_checks import check_out_file, expand_paths, shown
    from .cli_output import strict_json
    from .errors import ImageRejected
    from .images import MB, is_image_path, read_bytes
    from .provenance import Provenance
    from .video import is_video_path

    params, root = _params()
    check_out_file(args.out, ".json")
    reader = Provenance.from_params(params, root)
    image_cap = int(params["preprocess"]["max_file_mb"] * MB)
    video_cap = int(params["video"]["max_file_mb"] * MB)
    files = expand_paths(args.paths, video_cap,
                         wanted=lambda f: is_image_path(f) or is_video_path(f))
    if not files:
        raise ValueError("no image or video files under the given folders")
    rows = []
    for name, error in files:
        row = {"file": name, "error": error, "provenance": None}
        if not error:
            try:  # an image is read within the image cap, a video by path in the reader
                source = name if is_video_path(name) else read_bytes(name, image_cap)
                row["provenance"] = reader.read(source)
            except ImageRejected as exc:
                row["error"] = exc.reason
        rows.append(row)
    if args.out:
        Path(args.out).write_text(strict_json(rows) + "\n")
    if args.json:
        print(strict_json(rows))
    else:
        width = max(len(shown(r["file"])) for r in rows)
        for r in rows:
            found = r["provenance"]
            text = r["error"] or found["summary"] + (
                f" [{found['error']}]" if found["error"] and found["source"] else "")
            print(f"{shown(r['file']):{width}s}  {found['claim'] if found else '-':12s}  {text}")
    return 1 if any(r["error"] or (r["provenance"] or {}).get("error") for r in rows) else 0
