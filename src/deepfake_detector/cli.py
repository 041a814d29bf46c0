"""The ``deepfake`` command line: score, evaluate and explain images (and scan video clips,
``cli_scan``) with a registered model or a model file; list, promote and roll back
registered versions; serve the web page and API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_checks import (
    OneLineParser,
    check_model,
    check_out_file,
    check_out_folder,
    expand_paths,
    shown,
)
from .cli_output import (
    PREDICT_COLUMNS,
    native_stderr_hidden,
    print_table,
    progress_bar,
    quiet_libraries,
    strict_json,
    write_rows,
)
from .cli_provenance import add_parser as add_provenance_parser
from .cli_scan import add_parser as add_scan_parser
from .config import load_params, project_root
from .errors import DeepfakeError, ImageRejected
from .images import MB, check_file
from .params_check import defaults
from .verdicts import verdict_text

MODEL_HELP = ("models:/NAME@ALIAS, models:/NAME/VERSION, FILE.keras or an MLflow model "
              "folder (checked before anything is loaded)")


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def _params() -> tuple[dict, Path]:
    root = project_root()
    return load_params(root), root


def _cap(params: dict) -> int:
    """preprocess.max_file_mb in bytes: no larger image file is read."""
    return int(params["preprocess"]["max_file_mb"] * MB)


def _detector(args, params: dict, root: Path, provenance: bool = True):
    """The model of ``--model``, loaded (TensorFlow is imported here, after every check);
    ``provenance``: each file's provenance read beside its score (``provenance.*``)."""
    from .inference import load_detector
    from .provenance import Provenance

    reader = Provenance.from_params(params, root) if provenance else None  # checked first

    warnings: list[str] = []  # said after the native chatter is hidden, not hidden with it
    with native_stderr_hidden(not args.verbose):  # TensorFlow's devices start in the load
        detector, source = load_detector(args.model, root, params, warn=warnings.append)
    for warning in warnings:  # about the model loaded; a failed load says only its error
        _warn(warning)
    detector.settings["max_file_mb"] = params["preprocess"]["max_file_mb"]
    detector.provenance = reader
    _warn(f"model: {source}")
    return detector


def cmd_predict(args) -> int:
    params, root = _params()
    check_out_file(args.out, ".csv", ".json")
    check_model(args.model)
    files = expand_paths(args.paths, _cap(params))
    if not files:
        raise ValueError("no image files under the given folders")
    if all(error for _, error in files):  # nothing to score: no need for the model
        rows = [{**dict.fromkeys(PREDICT_COLUMNS), "file": f, "error": e, "reason": ""}
                for f, e in files]
        threshold, trained_on = 0.5, "unknown"  # no model loaded: nothing to score
    else:
        detector = _detector(args, params, root)
        with progress_bar(len(files), "scoring", not args.json) as progress:
            rows = detector.score([f for f, _ in files],
                                  face_crop=False if args.no_face_crop else None,
                                  progress=progress)
        threshold, trained_on = detector.threshold, detector.trained_on
    write_rows(rows, args.out)
    if args.json:
        print(strict_json(rows))
    else:
        print_table(rows, threshold, trained_on)
    return 1 if any(r["error"] for r in rows) else 0


def cmd_evaluate(args) -> int:
    params, root = _params()
    check_out_file(args.out, ".json")
    check_model(args.model)
    folder = Path(args.data)

    from .external import labelled_files, score_folder
    from .verdicts import report_lines

    files, labels, rejected = labelled_files(folder, params["data"]["class_names"], _cap(params))
    detector = _detector(args, params, root, provenance=False)
    ways = {"as_served": None} if not detector.settings["face_crop"].get("enabled") else {
        "as_served": True, "without_face_crop": False}
    report = {"data": str(folder), "model": detector.settings.get("model"),
              "trained_on": detector.trained_on, "rejected": rejected}
    for way, face in ways.items():
        with progress_bar(len(files), way.replace("_", " "), not args.json) as progress:
            report[way] = score_folder(detector, files, labels, face_crop=face,
                                       bootstrap=params["evaluate"]["bootstrap"],
                                       progress=progress)
    if args.out:
        Path(args.out).write_text(strict_json(report) + "\n")
    if args.json:
        print(strict_json(report))
        return 0
    print(f"model trained on {detector.trained_on}; threshold {detector.threshold:.4f}")
    for way in ways:
        m = report[way]
        print(f"{way}: accuracy {m['accuracy']:.4f}"
              + (f", faces found {m['faces_found']}" if "faces_found" in m else ""))
        for line in report_lines(m):
            print("  " + line)
    return 0


def cmd_explain(args) -> int:
    params, root = _params()
    out = Path(args.out or f"{Path(args.image).stem}_explained")
    check_out_folder(out)
    check_model(args.model)
    try:
        check_file(args.image, _cap(params))
    except ImageRejected as exc:
        raise ValueError(f"{shown(args.image)}: {exc.detail or exc.reason}") from None

    from . import explain_report, explainer, explanation

    detector = _detector(args, params, root, provenance=False)  # maps, not provenance
    try:
        image, face = detector.prepare(args.image)
    except ImageRejected as exc:
        raise ValueError(f"{args.image}: {exc.reason}") from None
    cfg = params["explain"]
    cam = explanation.gradcam_function(detector.model, cfg["gradcam_min_size"])
    explained = explainer.explain_image(detector, image, cfg, params["base"]["seed"], cam)
    p = explained["p_fake"]
    judged = detector.judgement(image, p)
    text = verdict_text(p, detector.threshold, judged["verdict"], judged["reason"])
    out.mkdir(parents=True, exist_ok=True)
    figure = explain_report.example_figure(
        out / "explanation.png", image, f"{Path(args.image).name}: {text}",
        [("LIME: top regions for fake", explained["positive"]),
         ("LIME: fake (green) / real (red)", explained["both"]),
         ("Grad-CAM", explained["gradcam"])], None)
    (out / "explanation.json").write_text(json.dumps(
        {"file": args.image, "face_found": face, **judged,
         "lime_weights": explained["lime"].weights.tolist()}, indent=2))
    print(f"{args.image}: {text}; model trained on {detector.trained_on}; wrote {figure} "
          "and explanation.json")
    return 0


def _registry() -> tuple[dict, str]:
    """The project's params and registered model name, with MLflow pointed at its store."""
    from . import tracking

    root = project_root()
    params = load_params(root)
    tracking.setup(root)
    return params, params["register"]["name"]


def cmd_models(args) -> int:
    from . import registry

    _, name = _registry()
    rows = registry.list_versions(name)
    if not rows:
        raise ValueError(f"no versions of {name!r} yet: run `make repro` (the register stage)")
    if args.lineage is not None:
        row = next((r for r in rows if r["version"] == args.lineage), None)
        if row is None:
            raise ValueError(f"{name!r} has no version {args.lineage} (it has "
                             f"{', '.join(str(r['version']) for r in rows)})")
        print(json.dumps(registry.lineage(name, row), indent=2))
        return 0
    print(f"{'version':>7s}  {'aliases':20s}  {'model':9s}  {'gate':9s}  accuracy  recall  "
          f"roc_auc  {'images':>7s}  {'trained':10s}  data")
    for r in rows:
        data = r["trained_on"]
        images = "-" if data["images"] is None else str(data["images"])
        print(f"{r['version']:>7d}  {','.join(r['aliases']) or '-':20s}  {r['model']:9s}  "
              f"{r['gate']:9s}  "
              f"{r.get('accuracy', float('nan')):8.4f}  {r.get('recall', float('nan')):6.4f}  "
              f"{r.get('roc_auc', float('nan')):7.4f}  {images:>7s}  {data['date'] or '-':10s}  "
              f"{data['source'] or '-'}")
    for r in rows:
        if r["gate"] == registry.NOT_GATED:
            _warn(f"warning: alias champion on version {r['version']} was set outside `deepfake "
                  "promote` (in the MLflow UI or by an API call): the promotion gate never "
                  f"checked it; `deepfake promote --version {r['version']}` checks it")
    return 0


def cmd_promote(args) -> int:
    from . import registry

    params, name = _registry()
    result = registry.promote(name, params["promote"], args.version, args.force,
                              args.reason)
    for failure in result["failures"]:
        print(f"gate: {failure}")
    if not result["promoted"]:
        print(f"refused: version {result['version']} stays where it is; champion unchanged")
        return 1
    forced = " (forced: " + args.reason + ")" if args.force else ""
    print(f"version {result['version']} of {name} is now champion{forced}; "
          f"previous: {result['previous'] or 'none'}")
    return 0


def cmd_rollback(args) -> int:
    from . import registry

    _, name = _registry()
    result = registry.rollback(name)
    print(f"champion of {name}: version {result['version']} again (was {result['from']})")
    return 0


def cmd_serve(args) -> int:
    _params()  # checked before the web stack is imported (serve reads it again)
    check_model(args.model)
    from .service import serve

    serve(args.model, args.host, args.port)
    return 0


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: a port is a number from 0 to 65535")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="deepfake", description=(
        "Deepfake face-image detector. The pipeline runs with `dvc repro` (or `make repro`); "
        "these commands use what it registered. --model takes a models:/ URI, a .keras "
        "file or an MLflow model folder; the default is models:/NAME@champion (else "
        f"@challenger), NAME being register.name ({defaults()['register']['name']} by "
        "default). Only regular files up to preprocess.max_file_mb are read."))
    parser.add_argument("-v", "--verbose", action="store_true", dest="verbose_first",
                        help="as -v after the command")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, help_):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's and "
                       "MLflow's own start-up messages and download bars")
        return p

    p = command("predict", cmd_predict, "score images: P(fake) and a label per file")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--out", help="also write FILE.csv (file,p_fake,label,error,verdict,...) "
                   "or FILE.json")
    p.add_argument("--no-face-crop", action="store_true", help="score whole images")
    p.add_argument("--json", action="store_true", help="print the results as JSON, no table")
    p = command("evaluate", cmd_evaluate, "metrics of a model on your own labelled folder")
    p.add_argument("--data", required=True, help="a folder with real/ and fake/ images "
                   "(any layout the split stage understands)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--out", help="write the metrics to FILE.json")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p = command("explain", cmd_explain, "LIME and Grad-CAM images for one file")
    p.add_argument("image")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--out", help="folder to write to (default: <image name>_explained/)")
    p = command("models", cmd_models, "registered versions with aliases and test metrics")
    p.add_argument("--lineage", type=int, metavar="N", help="what version N was made from")
    p = command("promote", cmd_promote, "move alias champion to a version if it passes the gate")
    p.add_argument("--version", type=int, help="default: the challenger")
    p.add_argument("--force", action="store_true", help="promote despite the gate")
    p.add_argument("--reason", help="why, with --force (recorded on the version)")
    command("rollback", cmd_rollback, "give champion back to the previous champion")
    p = command("serve", cmd_serve, "the web page and JSON API")
    p.add_argument("--host", help="default: serve.host in params.yaml (127.0.0.1: this "
                   "machine only)")
    p.add_argument("--port", type=_port, help="default: serve.port in params.yaml (8000)")
    p.add_argument("--model", help=MODEL_HELP)
    add_scan_parser(command)
    add_provenance_parser(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.verbose = args.verbose or args.verbose_first  # `deepfake -v predict` or `predict -v`
    quiet_libraries(args.verbose)
    try:
        return args.func(args)
    except (DeepfakeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or a permission while writing --out
        print(f"error: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else ""),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
