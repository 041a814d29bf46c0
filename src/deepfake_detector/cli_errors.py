"""Turn expected failures into one clear line and exit code 1 instead of a traceback, and
stop cleanly on SIGINT/SIGTERM (outputs are written atomically, MLflow runs end KILLED)."""

from __future__ import annotations

import signal
import sys

import requests

from .download import DownloadError
from .sources import SourceError

EXPECTED = (SourceError, DownloadError, ValueError, FileNotFoundError)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that ``finally`` blocks and ``except KeyboardInterrupt``
    run (Python's default for SIGTERM is to die on the spot, leaving runs ``RUNNING``)."""


def _terminate(signum, frame):
    raise Terminated(signum)


def catch_sigterm() -> None:
    signal.signal(signal.SIGTERM, _terminate)


def interrupted_exit(exc: KeyboardInterrupt, what: str) -> SystemExit:
    signum = exc.args[0] if isinstance(exc, Terminated) and exc.args else signal.SIGINT
    print(f"\ninterrupted by {signal.Signals(signum).name}: {what}", file=sys.stderr)
    return SystemExit(128 + signum)


def run_stage(main) -> None:
    catch_sigterm()
    try:
        main()
    except KeyboardInterrupt as exc:
        raise interrupted_exit(exc, "no unfinished output was kept; run `dvc repro` again "
                                    "to redo this stage") from None
    except EXPECTED as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except (ConnectionError, requests.RequestException) as exc:
        print(f"error: network failure: {exc}. Run the stage again: the download resumes "
              "from its .part file.", file=sys.stderr)
        raise SystemExit(1) from None
