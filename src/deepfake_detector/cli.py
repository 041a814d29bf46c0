"""The ``deepfake`` command line."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from .config import load_params, project_root
from .images import ImageRejected, load_image


def _model_file(arg: str | None, root: Path) -> Path:
    if arg is None:
        name = load_params(root).get("register", {}).get("model", "baseline")
        path = root / "models" / f"{name}.keras"
        if not path.exists():
            path = root / "models" / "baseline.keras"
    else:
        path = Path(arg)
    if path.suffix != ".keras" or not path.is_file():
        raise FileNotFoundError(
            f"no model file {path}: pass --model models/<name>.keras, or run `make repro` "
            "first to train one (registry URIs are not supported yet)")
    return path


def cmd_predict(args) -> int:
    root = project_root()
    size = load_params(root).get("preprocess", {}).get("image_size", 64)
    model_path = _model_file(args.model, root)
    import numpy as np

    rows, images = [], []
    for path in args.paths:
        try:
            images.append(load_image(path, size))
            rows.append({"file": path, "p_fake": None, "label": None, "error": ""})
        except ImageRejected as exc:
            rows.append({"file": path, "p_fake": None, "label": None, "error": exc.reason})
    if images:
        import keras

        from .training import predict

        from .evaluation import apply_temperature

        model = keras.models.load_model(model_path)
        temperature, threshold = _calibration(root, model_path)
        scores = iter(apply_temperature(predict(model, np.stack(images)), temperature))
        for row in rows:
            if not row["error"]:
                row["p_fake"] = round(float(next(scores)), 6)
                row["label"] = "fake" if row["p_fake"] >= threshold else "real"
    _write_rows(rows, args.out)
    return 1 if any(r["error"] for r in rows) else 0


def _calibration(root: Path, model_path: Path) -> tuple[float, float]:
    """(temperature, threshold) the evaluate stage fitted on validation, else (1, 0.5)."""
    metrics = root / "metrics" / f"{model_path.stem}.json"
    if metrics.exists():
        fitted = json.loads(metrics.read_text())
        return float(fitted.get("temperature", 1.0)), float(fitted.get("threshold", 0.5))
    return 1.0, 0.5


def _write_rows(rows: list[dict], out: str | None) -> None:
    fields = ["file", "p_fake", "label", "error"]
    if out and out.endswith(".json"):
        Path(out).write_text(json.dumps(rows, indent=2) + "\n")
        return
    fh = open(out, "w", newline="") if out else sys.stdout
    writer = csv.DictWriter(fh, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    if out:
        fh.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepfake", description=(
        "Deepfake face-image detector. The pipeline itself runs with `dvc repro` "
        "(or `make repro`); this command uses what it produced."))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="score images: P(fake) and a label per file")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files")
    p.add_argument("--model", help="a .keras file (default: models/<register.model>.keras)")
    p.add_argument("--out", help="write FILE.csv or FILE.json instead of CSV on stdout")
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
