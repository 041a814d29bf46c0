"""The detection service: a web page and a JSON API over one loaded model (FastAPI)."""


import base64
import hashlib
import io
import threading
from importlib import resources

import numpy as np

# What an upload must start with to be tried as an image (the content type and the file name
# are the client's word; the bytes are not).
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00",
         b"MM\x00*")


def looks_like_image(data: bytes) -> bool:
    return data.startswith(MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def png_base64(rgb: np.ndarray, scale: int = 4) -> str:
    from PIL import Image

    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def heat_overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    import matplotlib

    colours = matplotlib.colormaps["jet"](heat / max(float(heat.max()), 1e-12))[..., :3]
    return (0.45 * image / 255.0 + 0.55 * colours) * 255


def create_app(detector, card: dict, params: dict):
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    from . import explainer, explanation
    from .config import project_root
    from .errors import UploadRejected
    from .provenance import Provenance
    from .service_guard import DOCS_ASSETS, STATIC, Guard, allowed_hosts, docs_asset, docs_page
    from .service_uploads import (
        MULTIPART_MESSAGE,
        Limits,
        read_parts,
        upload_body,
        validation_error,
    )

    serve_cfg = params["serve"]
    limits = Limits.from_params(serve_cfg)
    detector.provenance = Provenance.from_params(params, project_root())
    card = {**card, "limits": limits.public(),
            "provenance": {"trust_list": detector.provenance.trust_list_size()}}
    explain_slots = threading.BoundedSemaphore(serve_cfg["explain_concurrency"])
    explain_cfg = params["explain"]
    cam = explanation.gradcam_function(detector.model, explain_cfg["gradcam_min_size"])
    title = params["register"]["name"]  # the registered model this service serves
    app = FastAPI(title=title, version=str(card.get("version", "")), docs_url=None,
                  redoc_url=None,
                  description="P(fake) of face images, with explanations. 1 = fake.")
    docs_html, docs_policy = docs_page(title)
    app.add_middleware(Guard, hosts=allowed_hosts(serve_cfg), docs_policy=docs_policy)
    errors = {400: {"description": "not multipart/form-data, or no file in the field"},
              408: {"description": "the body stalled (serve.upload_stall_s)"},
              413: {"description": "past serve.max_upload_mb, max_request_mb or max_files"},
              415: {"description": "no usable image"}}

    @app.exception_handler(RequestValidationError)
    def bad_request(request, exc):
        # The contract's 400, not FastAPI's 422: a body that is not the expected multipart.
        return JSONResponse(status_code=400, content={"detail": {
            "message": MULTIPART_MESSAGE,
            "errors": jsonable_encoder(exc.errors(), custom_encoder={bytes: repr})}})

    def refuse(status: int, detail) -> HTTPException:
        # The rest of the body is never read: close the connection rather than drain it.
        return HTTPException(status, detail, headers={"Connection": "close"})

    async def uploads(request, wanted: tuple[str, ...], caps: Limits = limits) -> list | None:
        """The file parts of ``wanted`` fields (None: not multipart); a text value where a
        file belongs is a 400."""
        try:
            parts = await read_parts(request, caps, wanted)
            text = [p.name for p in parts or [] if p.name in wanted and p.filename is None]
            if text:
                raise validation_error(text[0], "text")
        except UploadRejected as exc:
            raise refuse(exc.status, exc.detail) from None
        if parts is None:
            return None
        return sorted((p for p in parts if p.name in wanted), key=lambda p: wanted.index(p.name))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return resources.files("deepfake_detector").joinpath("static/index.html").read_text()

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in STATIC:
            raise HTTPException(404, "Not Found")
        text = resources.files("deepfake_detector").joinpath(f"static/{name}").read_text()
        return Response(text, media_type=STATIC[name])

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs():
        return docs_html

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def docs_assets(name: str):  # Swagger UI's files: /docs needs no network
        if name not in DOCS_ASSETS:
            raise HTTPException(404, "Not Found")
        return Response(docs_asset(name), media_type=DOCS_ASSETS[name],
                        headers={"Cache-Control": "max-age=3600"})

    @app.get("/health")
    def health():
        return {"status": "ok", "model": card.get("uri")}

    @app.get("/model")
    def model():
        return card

    def score(files: list) -> dict:
        datas, names = [], []
        for part in files:  # one copy at a time: a request holds its uploads about once
            datas.append(bytes(part.data))
            part.data = bytearray()
            names.append(part.filename)
        rows = detector.score([d if looks_like_image(d) else b"" for d in datas], names)
        for row, data in zip(rows, datas):
            row["sha256"] = hashlib.sha256(data).hexdigest()  # what a report files
            if not data:
                row["error"] = "zero_bytes"
            elif not looks_like_image(data):
                row["error"] = "not_image"
        if all(r["error"] for r in rows):
            raise HTTPException(415, {"message": "no usable image in the request",
                                      "results": rows})
        return {"model": card, "results": rows}

    # The body is read here, as it arrives (service_uploads); the model work runs in the thread
    # pool, so requests overlap on both cores (the model call, decoding and face detection
    # release the GIL).
    @app.post("/predict", responses=errors,
              openapi_extra=upload_body({"files": True, "file": False}, required=False))
    async def predict(request: Request):
        files = await uploads(request, ("files", "file"))
        if not files:
            raise refuse(400, "send one or more images in the multipart field 'files'")
        return await run_in_threadpool(score, files)

    def explain_one(filename: str, data: bytes, framed: bool) -> dict:
        from .errors import ImageRejected

        if not looks_like_image(data):
            raise HTTPException(415, f"{filename}: not an image")
        if not explain_slots.acquire(blocking=False):
            raise HTTPException(503, "explanation capacity is full; retry shortly",
                                headers={"Retry-After": "5"})
        try:
            try:  # framed: a crop the service made (a scanned frame's), used as it is
                image, face = detector.prepare(data, framed=framed)
            except ImageRejected as exc:
                raise HTTPException(415, f"{filename}: {exc.reason}") from None
            explained = explainer.explain_image(detector, image, explain_cfg, 0, cam)
        finally:
            explain_slots.release()
        return {"file": filename, "face_found": face,
                **detector.judgement(image, round(explained["p_fake"], 6)), "images": {
                    "input": png_base64(image),
                    "lime_positive": png_base64(explained["positive"] * 255),
                    "lime_both": png_base64(explained["both"] * 255),
                    "gradcam": png_base64(heat_overlay(image, explained["gradcam"]))}}

    @app.post("/explain", responses={**errors, 503: {"description": "capacity full"}},
              openapi_extra=upload_body({"file": False}, required=True))
    async def explain(request: Request, framed: bool = False):
        files = await uploads(request, ("file",))
        if not files:
            raise refuse(400, validation_error("file", "missing").detail)
        if len(files) > 1:
            raise refuse(400, "send one image in the multipart field 'file'")
        return await run_in_threadpool(explain_one, files[0].filename, bytes(files[0].data),
                                       framed)

    from .service_scan import add_scan_route

    add_scan_route(app, detector, card, params, uploads, refuse, errors)
    return app


def model_card(uri: str, detector, root, params: dict) -> dict:
    """What the page and /model say about the model: version, alias, training data, metrics.
    The threshold and temperature are the detector's settings (its settings.json)."""
    import json

    from .paths import Workspace
    from .video_scan import video_rule

    card = {"uri": uri, "name": params["register"]["name"],
            "version": None, "alias": None, "model": detector.settings.get("model"),
            "threshold": detector.threshold, "band": detector.band,
            "trained_on": detector.trained_on,
            "trained_on_detail": detector.settings.get("trained_on"),
            "temperature": float(detector.settings.get("temperature", 1.0)), "metrics": {},
            "video": {**video_rule(detector.settings, params["video"]["top_fraction"]),
                      "max_video_mb": params["serve"]["max_video_mb"],
                      "max_seconds": params["video"]["max_seconds"]}}
    if uri.startswith("models:/"):
        import mlflow

        from .registry import version_metrics

        client = mlflow.MlflowClient()
        ref = uri[len("models:/"):]
        if "@" in ref:
            name, alias = ref.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = ref.rsplit("/", 1)
            version = client.get_model_version(name, number)
        card.update(name=name, version=int(version.version), alias=list(version.aliases),
                    run_id=version.run_id,
                    data_source=version.tags.get("data.source"),
                    metrics=version_metrics(version))
    else:
        workspace = Workspace(root)
        metrics = workspace.metrics(detector.settings.get("model"))  # the test report
        if metrics.exists():
            m = json.loads(metrics.read_text())
            card["metrics"] = {k: m.get(k) for k in ("accuracy", "recall", "roc_auc")}
        source = workspace.source_record
        if source.exists():
            card["data_source"] = json.loads(source.read_text()).get("source")
    card["synthetic_warning"] = card.get("data_source") == "synthetic"
    card["explanations"] = explanation_reliability(Workspace(root), card["model"])
    return card


def explanation_reliability(workspace, model: str | None) -> dict:
    """For each map the page shows (``lime``, ``gradcam``), whether the project's own scores
    (``metrics/explain.json``: pointing game against the true manipulated pixels) put it above
    a random map for this model; None where this model's map was not scored."""
    import json

    path = workspace.metrics("explain")
    scores = json.loads(path.read_text()) if path.exists() else {}
    random = (scores.get("random") or {}).get("pointing_game")
    keys = {"lime": "lime" if scores.get("model") == model else None,
            "gradcam": f"gradcam_{model}"}
    out = {}
    for method, key in keys.items():
        found = scores.get(key) if key else None
        if not found or random is None or found.get("pointing_game") is None:
            out[method] = None
            continue
        out[method] = {"reliable": found["pointing_game"] > random,
                       "pointing_game": found["pointing_game"], "random": random,
                       "n": found.get("n")}
    return out


def serve(model: str | None, host: str | None = None, port: int | None = None) -> None:
    """Serve the page and API; ``host``/``port`` default to ``serve.host``/``serve.port``
    (127.0.0.1:8000: this machine only, unless told otherwise)."""
    import uvicorn

    from .config import load_params, project_root
    from .inference import load_detector
    from .service_guard import allowed_hosts

    root = project_root()
    params = load_params(root)
    host = host or params["serve"]["host"]
    port = params["serve"]["port"] if port is None else port
    params = {**params, "serve": {**params["serve"], "host": host}}  # a Host header it accepts
    detector, uri = load_detector(model, root, params)
    app = create_app(detector, model_card(uri, detector, root, params), params)
    print(f"serving {uri} on http://{host}:{port}/  (API docs: /docs; Host names accepted: "
          f"{', '.join(allowed_hosts(params['serve']))}, see serve.allowed_hosts)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
