"""The detection service: a web page and a JSON API over one loaded model (FastAPI)."""


import base64
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
    from fastapi import FastAPI, File, HTTPException, UploadFile
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    from . import explain_report, explanation

    serve_cfg = params.get("serve", {})
    max_bytes = int(float(serve_cfg.get("max_upload_mb", 10)) * 2**20)
    explain_slots = threading.BoundedSemaphore(int(serve_cfg.get("explain_concurrency", 1)))
    explain_cfg = params.get("explain", {})
    cam = explanation.gradcam_function(detector.model, explain_cfg.get("gradcam_min_size", 8))
    app = FastAPI(title="deepfake-detector", version=str(card.get("version", "")),
                  description="P(fake) of face images, with explanations. 1 = fake.")

    @app.exception_handler(RequestValidationError)
    def bad_request(request, exc):
        # The contract's 400, not FastAPI's 422: a body that is not the expected multipart.
        return JSONResponse(status_code=400, content={"detail": {
            "message": "send multipart/form-data with image files in the field 'files' "
                       "(/predict) or 'file' (/explain)",
            "errors": jsonable_encoder(exc.errors(), custom_encoder={bytes: repr})}})

    def read(upload: UploadFile) -> bytes:
        data = upload.file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise HTTPException(413, f"{upload.filename}: larger than {max_bytes} bytes "
                                     "(serve.max_upload_mb)")
        return data

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return resources.files("deepfake_detector").joinpath("static/index.html").read_text()

    @app.get("/health")
    def health():
        return {"status": "ok", "model": card.get("uri")}

    @app.get("/model")
    def model():
        return card

    # Plain (not async) handlers: FastAPI runs them in its thread pool, so requests overlap
    # on both cores (the model call, decoding and face detection release the GIL).
    @app.post("/predict")
    def predict(files: list[UploadFile] | None = File(None),
                file: UploadFile | None = File(None)):
        uploads = (files or []) + ([file] if file else [])
        if not uploads:
            raise HTTPException(400, "send one or more images in the multipart field 'files'")
        datas = [read(u) for u in uploads]
        names = [u.filename or "" for u in uploads]
        rows = detector.score([d if looks_like_image(d) else b"" for d in datas], names)
        for row, data in zip(rows, datas):
            if not data:
                row["error"] = "zero_bytes"
            elif not looks_like_image(data):
                row["error"] = "not_image"
        if all(r["error"] for r in rows):
            raise HTTPException(415, {"message": "no usable image in the request",
                                      "results": rows})
        return {"model": card, "results": rows}

    @app.post("/explain")
    def explain(file: UploadFile = File(...)):
        from .images import ImageRejected

        data = read(file)
        if not looks_like_image(data):
            raise HTTPException(415, f"{file.filename}: not an image")
        if not explain_slots.acquire(blocking=False):
            raise HTTPException(503, "explanation capacity is full; retry shortly",
                                headers={"Retry-After": "5"})
        try:
            try:
                image, face = detector.prepare(data)
            except ImageRejected as exc:
                raise HTTPException(415, f"{file.filename}: {exc.reason}") from None
            explained = explain_report.explain_image(detector, image, explain_cfg, 0, cam)
        finally:
            explain_slots.release()
        p = explained["p_fake"]
        return {"file": file.filename, "p_fake": round(p, 6),
                "label": "fake" if p >= detector.threshold else "real", "face_found": face,
                "threshold": detector.threshold, "images": {
                    "input": png_base64(image),
                    "lime_positive": png_base64(explained["positive"] * 255),
                    "lime_both": png_base64(explained["both"] * 255),
                    "gradcam": png_base64(heat_overlay(image, explained["gradcam"]))}}

    return app


def model_card(uri: str, detector, root, params: dict) -> dict:
    """What the page and /model say about the model: version, alias, training data, metrics."""
    import json

    card = {"uri": uri, "name": params.get("register", {}).get("name", "deepfake-detector"),
            "version": None, "alias": None, "model": detector.settings.get("model"),
            "threshold": detector.threshold,
            "temperature": float(detector.settings.get("temperature", 1.0)), "metrics": {}}
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
                    data_source=version.tags.get("data.source"),
                    metrics=version_metrics(version))
    else:
        metrics = root / "metrics" / f"{detector.settings.get('model')}.json"
        if metrics.exists():
            m = json.loads(metrics.read_text())
            card["metrics"] = {k: m.get(k) for k in ("accuracy", "recall", "roc_auc")}
        source = root / "data" / "raw" / "source.json"
        if source.exists():
            card["data_source"] = json.loads(source.read_text()).get("source")
    card["synthetic_warning"] = card.get("data_source") == "synthetic"
    return card


def serve(model: str | None, host: str | None = None, port: int | None = None) -> None:
    """Serve the page and API; ``host``/``port`` default to ``serve.host``/``serve.port``
    (127.0.0.1:8000: this machine only, unless told otherwise)."""
    import uvicorn

    from .config import load_params, project_root
    from .registry import load_detector

    root = project_root()
    params = load_params(root)
    host = host or params["serve"]["host"]
    port = params["serve"]["port"] if port is None else port
    detector, uri = load_detector(model, root, params)
    app = create_app(detector, model_card(uri, detector, root, params), params)
    print(f"serving {uri} on http://{host}:{port}/  (API docs: /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
