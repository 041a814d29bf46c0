"""Reads a C2PA manifest store in a child process: the C2PA library is native code, and a
hostile manifest that crashes it, loops or eats memory must cost one file's provenance, not
the service. The child runs with a memory and CPU cap; the parent waits ``timeout_s``.

``python -m deepfake_detector.provenance_worker [--trust=PEM] [--path=FILE]`` reads the file
(or stdin), prints the manifest store's JSON and exits 0; exits 3 when there is no manifest
store, 4 with the library's message on stderr when it cannot be read.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

NO_MANIFEST, UNREADABLE = 3, 4
MEMORY_CAP = 2 * 2**30           # bytes of address space the child may map
MAX_REPLY = 16 * 2**20           # characters of a manifest store's JSON, at most
_SLOTS = threading.BoundedSemaphore(2)  # children at once (this machine has two cores)


def read_manifest_store(source, trust_anchors: str, timeout_s: float
                        ) -> tuple[dict | None, str]:
    """(the manifest store as the C2PA library reports it, or None when there is none;
    "" or why it could not be read) of ``source``, bytes or a path."""
    command = [sys.executable, "-m", "deepfake_detector.provenance_worker"]
    if trust_anchors:
        command.append(f"--trust={os.path.abspath(trust_anchors)}")
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else None
    if data is None:
        command.append(f"--path={os.path.abspath(source)}")
    if not _SLOTS.acquire(timeout=timeout_s):  # other files' readers hold both slots
        return None, f"not read: the manifest readers stayed busy for {timeout_s:g} s"
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=timeout_s,
                              env=_child_env())
    except subprocess.TimeoutExpired:
        return None, f"reading the manifest store took over {timeout_s:g} s (stopped)"
    except OSError as exc:
        return None, f"could not start the reader: {exc}"
    finally:
        _SLOTS.release()
    if done.returncode == NO_MANIFEST:
        return None, ""
    if done.returncode == UNREADABLE:
        message = done.stderr[-4096:].decode("utf-8", "replace").strip().splitlines() or ["?"]
        return None, f"manifest store unreadable: {message[-1][:300]}"
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        return None, f"the manifest reader failed ({how})"
    try:
        return json.loads(done.stdout), ""
    except ValueError:
        return None, "the manifest reader answered no JSON"


def _child_env() -> dict:
    # the package's folder first on the path: a served model's copy (MLflow code_paths) is
    # found even where the package is not installed
    here = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONWARNINGS": "ignore"}


def _settings(trust_file: str | None) -> dict:
    # never reach the network: no remote manifests, no OCSP (verification is offline)
    settings = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False,
                           "verify_trust": True}}
    if trust_file:
        with open(trust_file, encoding="utf-8") as fh:
            settings["trust"] = {"trust_anchors": fh.read()}
    return settings


def _die_with_parent() -> None:
    """Linux: the child is killed when the process that started it dies (a service stopped
    mid-read leaves no reader behind)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _open_regular(path: str):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in cannot hang it
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError("not a regular file")
    return os.fdopen(fd, "rb")


def main(argv: list[str]) -> int:
    import io
    import resource

    _die_with_parent()
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    resource.setrlimit(resource.RLIMIT_CPU, (120, 120))  # the parent's timeout comes first
    options = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    try:
        import c2pa

        context = c2pa.Context.from_dict(_settings(options.get("trust")))
        stream = (_open_regular(options["path"]) if "path" in options
                  else io.BytesIO(sys.stdin.buffer.read()))
        with stream, c2pa.Reader(stream, context=context) as reader:
            reply = reader.json()
    except Exception as exc:  # noqa: BLE001 - the library's errors are many; all end here
        if type(exc).__name__ == "_C2paManifestNotFound" or "ManifestNotFound" in str(exc) \
                or "JumbfNotFound" in str(exc):
            return NO_MANIFEST
        print(f"{type(exc).__name__.lstrip('_')}: {exc}", file=sys.stderr)
        return UNREADABLE
    if len(reply) > MAX_REPLY:
        print(f"a manifest store of more than {MAX_REPLY // 2**20} MB of JSON", file=sys.stderr)
        return UNREADABLE
    sys.stdout.write(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
