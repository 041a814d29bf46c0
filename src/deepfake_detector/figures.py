"""matplotlib for every figure the project writes, with its backend chosen once."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend: stages, the CLI and the
    service draw to files and run without a display. Imported on first use (matplotlib takes
    a moment to load, and most commands draw nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
