"""The stage runner: every stage script's ``main`` runs under ``run_stage``.

Turn expected failures into one clear line and exit code 1 instead of a traceback, and
stop cleanly on SIGINT/SIGTERM (outputs are written atomically, MLflow runs end KILLED)."""

from __future__ import annotations

import sys

import requests

from . import interrupts
from .errors import DeepfakeError

EXPECTED = (DeepfakeError, ValueError, FileNotFoundError)


def run_stage(main) -> None:
    interrupts.install()
    try:
        main()
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted by {interrupts.signal_name(exc)}: no unfinished output was "
              "kept; run `dvc repro` again to redo this stage", file=sys.stderr)
        raise SystemExit(interrupts.exit_code(exc)) from None
    except EXPECTED as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except (ConnectionError, requests.RequestException) as exc:
        print(f"error: network failure: {exc}. Run the stage again: the download resumes "
              "from its .part file.", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:  # a full disk, a permission, an I/O error: say which file
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}. Free space or fix the permission, then run "
              "the stage again.", file=sys.stderr)
        raise SystemExit(1) from None
