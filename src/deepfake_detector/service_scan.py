"""``POST /scan`` of the detection service: one video, scanned like ``deepfake scan``."""

import hashlib
import threading


def add_scan_route(app, detector, card: dict, params: dict, uploads, refuse, errors) -> None:
    """``POST /scan``: one video in the multipart field ``file``, at most
    ``serve.max_video_mb`` (and ``max_request_mb``), ``video.max_seconds`` long;
    ``serve.scan_concurrency`` scans at once, more get 503 with Retry-After. Answers the
    scan's JSON (``video_report.result_json``) with every scored frame's crop (PNG, the
    model's input: ``POST /explain?framed=true`` explains it) and the most suspicious frames'
    crops and thumbnails."""
    from fastapi import HTTPException, Request
    from starlette.concurrency import run_in_threadpool

    from .service_uploads import MB, Limits, upload_body, validation_error
    from .video import VideoLimits, VideoRejected
    from .video_report import result_json
    from .video_scan import data_url, scan

    serve_cfg = params["serve"]
    base = Limits.from_params(serve_cfg)
    caps = Limits(min(int(float(serve_cfg["max_video_mb"]) * MB), base.max_request),
                  base.max_request, 1, base.stall_s, upload_setting="serve.max_video_mb",
                  files_setting="POST /scan takes one video, in the field 'file'")
    slots = threading.BoundedSemaphore(serve_cfg["scan_concurrency"])
    video_limits = VideoLimits.from_params(params)

    def scan_one(filename: str, data: bytes) -> dict:
        try:
            result = scan(detector, data, video_limits, name=filename, keep_crops=True,
                          top_fraction=params["video"]["top_fraction"])
        except VideoRejected as exc:
            raise HTTPException(415, {"message": f"{filename}: not a video this service can "
                                      f"scan ({exc.reason})", "reason": exc.reason,
                                      "detail": exc.detail}) from None
        out = {"model": card, **result_json(result), "sha256": hashlib.sha256(data).hexdigest()}
        for index, crop in result["crops"].items():
            out["frames"][index]["crop"] = crop
        for item, top in zip(out["top"], result["top"]):
            item["crop"], item["thumbnail"] = data_url(top["crop"]), data_url(
                top["thumbnail"], "JPEG")
        return out

    @app.post("/scan", responses={**errors, 503: {"description": "capacity full"}},
              openapi_extra=upload_body({"file": False}, required=True))
    async def scan_video(request: Request):
        # the slot is taken before the body is read: a full service refuses at once
        if not slots.acquire(blocking=False):
            raise HTTPException(503, "scan capacity is full; retry shortly",
                                headers={"Retry-After": "10", "Connection": "close"})
        try:
            files = await uploads(request, ("file",), caps)
            if not files:
                raise refuse(400, validation_error("file", "missing").detail)
            if len(files) > 1:
                raise refuse(400, "send one video in the multipart field 'file'")
            data = bytes(files[0].data)
            files[0].data = bytearray()
            return await run_in_threadpool(scan_one, files[0].filename, data)
        finally:
            slots.release()
