"""This process's peak memory, for the memory tests and benchmarks."""

from __future__ import annotations

import resource


def peak_rss_bytes() -> int:
    """The peak resident set size of this process's own address space (``VmHWM``).

    Not ``getrusage().ru_maxrss``: Linux keeps that across ``execve``, and a child started
    with vfork (Python's subprocess does) inherits its parent's high-water mark, so a small
    child of a large pytest process reports the parent's peak."""
    peak = _status_bytes("VmHWM:")
    return peak if peak is not None else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: KiB


def rss_bytes() -> int | None:
    """The resident set size now (``VmRSS``); None where ``/proc`` is missing."""
    return _status_bytes("VmRSS:")


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
