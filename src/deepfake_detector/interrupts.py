"""SIGINT and SIGTERM as an exception that every layer can see, raised again at safe points.

Python raises a signal's exception wherever the main thread happens to be. Inside TensorFlow
that can be a Python callback run from C++ (tf.data's generator), where the exception is
turned into an end of data and lost, and training would go on. So the handler also records the
signal, and ``check()`` (called after every training batch) raises it again.
"""

from __future__ import annotations

import signal

received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM; ``args[0]`` is the signal number. A KeyboardInterrupt, so that
    ``finally`` blocks and ``except KeyboardInterrupt`` run (Python's default for SIGTERM is
    to die on the spot, leaving MLflow runs ``RUNNING``)."""


def _handler(signum, frame):
    received.append(signum)
    raise Interrupted(signum)


def install() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # keep what the parent ignored
            signal.signal(signum, _handler)


def check() -> None:
    """Raise a signal received earlier whose exception something swallowed."""
    if received:
        raise Interrupted(received[0])


def signal_name(exc: KeyboardInterrupt) -> str:
    signum = exc.args[0] if isinstance(exc, Interrupted) and exc.args else signal.SIGINT
    return signal.Signals(signum).name


def exit_code(exc: KeyboardInterrupt) -> int:
    return 128 + signal.Signals[signal_name(exc)].value
