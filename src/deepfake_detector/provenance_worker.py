"""Reads a C2PA manifest store in a child process: the C2PA library is native code, and a
hostile manifest that crashes it, loops or eats memory must cost one file's provenance, not
the service. The child runs with a memory and CPU cap; the parent waits ``timeout_s``.

``python -m deepfake_detector.provenance_worker [--trust PEM] [--path FILE]`` reads the file
(or stdin), prints the manifest store's JSON and exits 0; exits 3 when there is no manifest
store, 4 with the library's message on stderr when it cannot be read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

NO_MANIFEST, UNREADABLE = 3, 4
MEMORY_CAP = 2 * 2**30           # bytes of address space the child may map
MAX_REPLY = 16 * 2**20           # a manifest store's JSON larger than this is refused
_SLOTS = threading.BoundedSemaphore(2)  # children at once (this machine has two cores)


def read_manifest_store(source, trust_anchors: str, timeout_s: float
                        ) -> tuple[dict | None, str]:
    """(the manifest store as the C2PA library reports it, or None when there is none;
    "" or why it could not be read) of ``source``, bytes or a path."""
    command = [sys.executable, "-m", "deepfake_detector.provenance_worker"]
    if trust_anchors:
        command += ["--trust", trust_anchors]
    data = source if isinstance(source, (bytes, bytearray)) else None
    if data is None:
        command += ["--path", str(source)]
    with _SLOTS:
        try:
            done = subprocess.run(command, input=data, capture_output=True, timeout=timeout_s,
                                  env=_child_env())
        except subprocess.TimeoutExpired:
            return None, f"reading the manifest store took over {timeout_s:g} s (stopped)"
        except OSError as exc:
            return None, f"could not start the reader: {exc}"
    if done.returncode == NO_MANIFEST:
        return None, ""
    if done.returncode == UNREADABLE:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"]
        return None, f"manifest store unreadable: {message[-1][:300]}"
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        return None, f"the manifest reader failed ({how})"
    if len(done.stdout) > MAX_REPLY:
        return None, f"manifest store larger than {MAX_REPLY // 2**20} MB of JSON"
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


def main(argv: list[str]) -> int:
    import io
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    resource.setrlimit(resource.RLIMIT_CPU, (120, 120))  # the parent's timeout comes first
    trust = argv[argv.index("--trust") + 1] if "--trust" in argv else None
    path = argv[argv.index("--path") + 1] if "--path" in argv else None
    try:
        import c2pa

        context = c2pa.Context.from_dict(_settings(trust))
        if path:
            stream = open(path, "rb")  # noqa: SIM115 - closed with the reader below
        else:
            stream = io.BytesIO(sys.stdin.buffer.read())
        with stream, c2pa.Reader(stream, context=context) as reader:
            sys.stdout.write(reader.json())
    except Exception as exc:  # noqa: BLE001 - the library's errors are many; all end here
        if type(exc).__name__ == "_C2paManifestNotFound" or "ManifestNotFound" in str(exc) \
                or "JumbfNotFound" in str(exc):
            return NO_MANIFEST
        print(f"{type(exc).__name__.lstrip('_')}: {exc}", file=sys.stderr)
        return UNREADABLE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
