"""Atomic outputs: write under a temporary name beside the target, rename only on success.

A stage killed half way (SIGINT, SIGTERM, out of memory) then leaves either the previous file
or none, never a truncated one that a later stage could take for a finished output. The
temporary name starts with a dot and keeps the suffix (Keras wants ``.keras``, NumPy ``.npz``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temporary path; on a clean exit it replaces ``target``, on any error (or an
    interrupt) it is deleted and ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.partial-{os.getpid()}{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(target: str | os.PathLike, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)
