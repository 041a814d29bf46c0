"""Video: ``deepfake scan``'s path on a 720p clip against the naive way, in one run, and peak
memory against clip length.

    python benchmarks/video.py [--seconds 60] [--memory-minutes 10]

Part 1 encodes a ``--seconds`` long 1280×720 H.264 clip (30 fps, a key frame every 2 s: fixed
here) of a face drifting across the frame, then scans it at 2 sampled frames per second twice:
our path (``video_scan.scan``: PyAV decoding with only the sampled frames converted, Haar face
detection, the face track, crops scored in batches through the compiled model) with its time
split into decode, face detection and model; and the naive way (OpenCV ``VideoCapture``
reading every frame, the largest face of each sampled frame, ``model.predict`` on each crop).
It prints both times and ``ratio: X`` (naive / ours). The face is a real photograph from
../shared/datasets/ffhq-stylegan-dev when present, else a built-in procedural face (Haar finds
no face in it, so both ways then score whole frames).

Part 2 scans a 1-minute and a ``--memory-minutes`` clip at 160×120, each in its own process,
and prints the peak memory (VmHWM) of each: flat in the clip's length when the ratio is ~1.
Uses models/tuned.keras when trained, else a freshly built tuned CNN.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED_FACE = ROOT.parent / "shared" / "datasets" / "ffhq-stylegan-dev" / "real"
FPS, KEY_S, SAMPLE_FPS = 30, 2, 2


def face_image() -> tuple[np.ndarray, bool]:
    """A 256-px face: a real photograph when ../shared has one (True), else procedural."""
    from PIL import Image

    photos = sorted(SHARED_FACE.glob("*.jpg")) if SHARED_FACE.is_dir() else []
    if photos:
        return np.asarray(Image.open(photos[0]).convert("RGB").resize((256, 256))), True
    from deepfake_detector.synthetic import _sample_face, render_face

    face = render_face(_sample_face(np.random.default_rng(0)), 256)
    return np.clip(face, 0, 255).astype(np.uint8), False


def write_clip(path: Path, seconds: float, width: int, height: int, face: np.ndarray) -> None:
    """H.264, 30 fps, a key frame every 2 s, the face drifting slowly over a gradient."""
    import av
    from PIL import Image

    side = min(height * 2 // 3, 360)
    face = np.asarray(Image.fromarray(face).resize((side, side)))
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([xx * 200 // width + 30, yy * 150 // height + 50,
                           np.full_like(xx, 120)], -1).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={
            "g": str(FPS * KEY_S), "keyint_min": str(FPS * KEY_S), "sc_threshold": "0",
            "preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * FPS)):
            frame = background.copy()
            x = int((width - side) / 2 + (width - side) / 3 * np.sin(i / FPS / 4))
            y = int((height - side) / 2 + (height - side) / 4 * np.cos(i / FPS / 5))
            frame[y:y + side, x:x + side] = face
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def naive(detector, path: Path, face_crop: bool) -> tuple[float, int]:
    """OpenCV reads every frame; each sampled frame's largest face goes to model.predict."""
    import cv2
    from PIL import Image

    from deepfake_detector.faces import face_square, largest_face
    from deepfake_detector.images import centre_box, square_resize

    start, scored = time.perf_counter(), 0
    capture = cv2.VideoCapture(str(path))
    size, every = int(detector.settings["image_size"]), FPS // SAMPLE_FPS
    index = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        if index % every == 0:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            face = largest_face(rgb) if face_crop else None
            if face or not face_crop:
                box = face_square(face, 0.25, w, h) if face else centre_box(w, h)
                crop = square_resize(Image.fromarray(rgb), size, box)
                detector.model.predict(crop[None], verbose=0)
                scored += 1
        index += 1
    capture.release()
    return time.perf_counter() - start, scored


def ours(detector, path: Path, face_crop: bool) -> dict:
    from deepfake_detector.video import VideoLimits
    from deepfake_detector.video_scan import scan

    return scan(detector, str(path), VideoLimits(fps=SAMPLE_FPS), face_crop=face_crop)


def speed(seconds: float, repeats: int) -> None:
    from serving import detector_and_source

    detector, source = detector_and_source()
    face, real = face_image()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        t = time.perf_counter()
        write_clip(clip, seconds, 1280, 720, face)
        encoded = time.perf_counter() - t
        print(f"clip: {seconds:g} s 1280x720 H.264, {FPS} fps, key frame every {KEY_S} s "
              f"({clip.stat().st_size / 2**20:.1f} MiB, encoded in {encoded:.1f} s);"
              f" face: {'a real photograph' if real else 'procedural (Haar finds none)'}")
        print(f"model: {source}")
        if not real:
            print("no face Haar finds in a procedural face: both ways score whole frames, "
                  "and face detection is not timed (../shared holds real faces)")
        ours(detector, clip, real), naive(detector, clip, real)  # warm up both (first calls)
        runs, naive_runs = [], []
        for _ in range(repeats):  # alternating: neither way warms the other's caches
            runs.append(ours(detector, clip, real))
            naive_runs.append(naive(detector, clip, real))
    best = min(runs, key=lambda r: r["seconds"])
    t_ours = statistics.median(r["seconds"] for r in runs)
    t_naive = statistics.median(t for t, _ in naive_runs)
    timing = best["timing"]
    print(f"ours: {t_ours:.2f} s for {best['frames_sampled']} sampled frames, "
          f"{best['frames_scored']} scored ({best['method']}); split: decode "
          f"{timing['decode']:.2f} s, face detection {timing['faces']:.2f} s, model "
          f"{timing['model']:.2f} s")
    print(f"naive (OpenCV every frame, model.predict per face): {t_naive:.2f} s for "
          f"{naive_runs[0][1]} scored")
    print(f"ratio: {t_naive / t_ours:.1f}")


def peak_of_scan(path: Path) -> tuple[int, float, float]:
    """(frames scored, peak memory in MiB (VmHWM), the peak before the scan: the loaded and
    warmed-up model) of a fresh process that scans ``path``."""
    code = (f"import sys; sys.path[:0] = [{str(ROOT / 'src')!r}, {str(ROOT / 'benchmarks')!r}]\n"
            "import numpy as np\n"
            "from serving import detector_and_source\n"
            "from deepfake_detector.video import VideoLimits\n"
            "from deepfake_detector.video_scan import scan\n"
            "def hwm():\n"
            "    line = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "    return int(line.split()[1])\n"
            "d, _ = detector_and_source()\n"
            "d.probabilities(np.zeros((32, 64, 64, 3), np.uint8))  # the model's own memory\n"
            "before = hwm()\n"
            f"r = scan(d, {str(path)!r}, VideoLimits(fps=2, max_frames=100000), face_crop=False)\n"
            "print(r['frames_scored'], hwm(), before)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    frames, peak, before = map(int, done.stdout.split()[-3:])
    return frames, peak / 1024, before / 1024


def memory(minutes: float) -> None:
    face, _ = face_image()
    with tempfile.TemporaryDirectory() as tmp:
        peaks = {}
        for length in (1.0, minutes):
            clip = Path(tmp) / f"{length:g}min.mp4"
            write_clip(clip, length * 60, 160, 120, face)
            peaks[length] = peak_of_scan(clip)
    (short_frames, short, short_base), (long_frames, long, long_base) = (peaks[1.0],
                                                                       peaks[minutes])
    print(f"peak memory, 160x120: 1 min ({short_frames} frames scored) {short:.0f} MiB; "
          f"{minutes:g} min ({long_frames} frames) {long:.0f} MiB; "
          f"memory ratio: {long / short:.2f}")
    print(f"the scan's own, above the loaded model: 1 min {short - short_base:.0f} MiB; "
          f"{minutes:g} min {long - long_base:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-minutes", type=float, default=10)
    args = parser.parse_args()
    speed(args.seconds, args.repeats)
    memory(args.memory_minutes)
    print(f"measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    main()
