"""Serving: the in-process predict path against the study's ``model.predict`` on one image,
and a bounded HTTP load run against the service on 127.0.0.1, in one run.

    python benchmarks/serving.py [--calls 200] [--clients 8] [--requests 200]

Part 1 times, for one built-in face at a time, our path (decode → face crop → centre crop →
resize → one compiled call for P(fake) and the domain features → calibration, domain check,
threshold), the study's way (``model.predict`` on the already-decoded image) and the
strongest simple way (a bare compiled model call on the already-decoded image): p50 of each,
``ratio: X`` (study / ours) and ``ours / bare compiled call: Y`` (what the whole path costs
above the model itself); then what reading provenance adds to our path for files without a
manifest (the common case): p50 of the read alone, and of our path with it against without.
Part 2 starts the web service in its own process on a free 127.0.0.1 port and sends
``--clients`` × ``--requests`` POST /predict requests, then prints throughput, p50/p99 latency
and the error count. Uses models/tuned.keras when trained, else a freshly built tuned CNN.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def detector_and_source():
    from deepfake_detector.config import load_params
    from deepfake_detector.inference import Detector, load_detector
    from deepfake_detector.model_settings import settings_for_defaults
    from deepfake_detector.models import build_model

    params = load_params(ROOT)
    path = ROOT / "models" / "tuned.keras"
    if path.is_file():
        return load_detector(str(path), ROOT, params, warn=lambda m: None)
    return Detector(build_model("tuned", 64, params["train"]["tuned"]),
                    {**settings_for_defaults(params), "model": "tuned"}), "untrained tuned CNN"


def face_jpeg(index: int) -> bytes:
    from deepfake_detector.synthetic import SyntheticConfig, make_image

    return make_image(index, index % 2 == 1, SyntheticConfig())[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def in_process(calls: int) -> None:
    import numpy as np
    from PIL import Image

    from deepfake_detector.provenance import Provenance
    from deepfake_detector.scoring import compiled_predict

    detector, source = detector_and_source()
    bare = compiled_predict(detector.model, 1)
    reader = Provenance()
    images = [face_jpeg(i) for i in range(20)]
    decoded = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in images]
    times = {way: [] for way in ("ours", "study", "bare", "ours_provenance", "provenance")}
    detector.score([images[0]]), detector.model.predict(decoded[0][None], verbose=0)  # warm up
    reader.read(images[0]), bare(decoded[0][None])
    # alternating blocks of calls: no way warms another's caches
    for block, way in enumerate(list(times) * 2):
        detector.provenance = reader if way == "ours_provenance" else None
        for i in range(calls // 2):
            image = images[(i + block) % 20]
            t = time.perf_counter()
            if way == "study":
                detector.model.predict(decoded[(i + block) % 20][None], verbose=0)
            elif way == "bare":
                bare(decoded[(i + block) % 20][None])
            elif way == "provenance":
                reader.read(image)
            else:
                detector.score([image])
            times[way].append(time.perf_counter() - t)
    p50 = {way: statistics.median(t) * 1000 for way, t in times.items()}
    print(f"one image, {source}, {len(times['ours'])} calls each")
    print(f"ours (decode, face crop, model, domain, threshold) p50 {p50['ours']:6.2f} ms")
    print(f"study's model.predict (model only)                  p50 {p50['study']:6.2f} ms")
    print(f"bare compiled model call (model only)               p50 {p50['bare']:6.2f} ms")
    print(f"ratio: {p50['study'] / p50['ours']:.1f}")
    print(f"ours / bare compiled call: {p50['ours'] / p50['bare']:.2f}")
    print(f"provenance (no manifest: metadata + manifest check) p50 {p50['provenance']:.3f} ms "
          f"alone; ours with it p50 {p50['ours_provenance']:.2f} ms, "
          f"{p50['ours_provenance'] - p50['ours']:+.2f} ms over ours without")


def serve_forever(port: int) -> None:
    import uvicorn

    from deepfake_detector.config import load_params
    from deepfake_detector.service import create_app, model_card

    detector, source = detector_and_source()
    params = load_params(ROOT)
    app = create_app(detector, model_card(source, detector, ROOT, params), params)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error")


def http_load(clients: int, requests: int) -> None:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            sys.exit("the service did not start")
        images = [face_jpeg(i) for i in range(20)]
        httpx.post(f"{url}/predict", files={"files": ("w.jpg", images[0])})  # warm up
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()

        def client(k: int) -> None:
            with httpx.Client(timeout=30) as http:
                for i in range(requests):
                    t = time.perf_counter()
                    try:
                        reply = http.post(f"{url}/predict", files={
                            "files": (f"{k}-{i}.jpg", images[(k + i) % 20], "image/jpeg")})
                        ok = reply.status_code == 200 and not reply.json()["results"][0]["error"]
                    except httpx.HTTPError:
                        ok = False
                    with lock:
                        latencies.append(time.perf_counter() - t)
                        errors[0] += not ok

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        print(f"HTTP POST /predict on 127.0.0.1: {clients} clients x {requests} requests, "
              f"one image each")
        print(f"throughput {len(latencies) / wall:.0f} requests/s; latency p50 "
              f"{percentile(latencies, 50) * 1000:.1f} ms, p99 "
              f"{percentile(latencies, 99) * 1000:.1f} ms; errors {errors[0]}")
        print(json.dumps({"requests": len(latencies), "errors": errors[0]}))
    finally:
        server.terminate()
        server.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=400, help="in-process calls of each way "
                    "(ours, the study's, bare compiled call, ours with provenance, provenance "
                    "alone)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_forever(args.serve)
        return
    in_process(args.calls)
    http_load(args.clients, args.requests)


if __name__ == "__main__":
    main()
