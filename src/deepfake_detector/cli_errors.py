"""Turn expected failures into one clear line and exit code 1 instead of a traceback."""

from __future__ import annotations

import sys

import requests

from .download import DownloadError
from .sources import SourceError

EXPECTED = (SourceError, DownloadError, ValueError, FileNotFoundError)


def run_stage(main) -> None:
    try:
        main()
    except EXPECTED as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except (ConnectionError, requests.RequestException) as exc:
        print(f"error: network failure: {exc}. Run the stage again: the download resumes "
              "from its .part file.", file=sys.stderr)
        raise SystemExit(1) from None
