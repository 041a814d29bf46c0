"""The registered model: an MLflow pyfunc that scores raw image files or uint8 arrays with the
shared preprocessing, the calibrated probability and the validation threshold."""

from __future__ import annotations

import base64

import mlflow.pyfunc
import numpy as np
import pandas as pd

COLUMNS = ["p_fake", "label", "verdict", "reason", "face_found", "domain", "domain_score",
           "trained_on", "error", "provenance"]


class DeepfakeDetectorModel(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with a column ``image`` of base64-encoded image files (what
    ``mlflow models serve`` receives as ``dataframe_split``), or a column ``video`` of
    base64-encoded video files, or a uint8 array N×H×W×3 at the model's size. Output: a
    DataFrame of ``COLUMNS``, one row each: ``label`` the threshold's fake|real, ``verdict``
    fake|real|inconclusive with its ``reason`` (in_band, out_of_domain; no_faces for a clip),
    ``domain`` in|out (None for a model without a domain fit), ``trained_on`` the training
    data in words, ``provenance`` the file's provenance (``provenance.py``) as JSON text.
    A clip's row is the clip's (``video_scan.scan``: P(fake) by the clip
    rule, ``face_found`` whether any sampled frame had one, ``domain`` out when most scored
    frames are); its frame-by-frame timeline is what ``deepfake scan`` and ``POST /scan``
    add."""

    def load_context(self, context):
        from deepfake_detector.detector import Detector
        from deepfake_detector.model_settings import read_settings
        from deepfake_detector.provenance import Provenance

        settings = read_settings(context.artifacts["settings"], "settings.json")
        self.detector = Detector.load(context.artifacts["keras_model"], settings)
        self.detector.provenance = Provenance()  # no trust list: "signer not in your list"

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, np.ndarray) and model_input.ndim == 4:
            x = model_input.astype(np.uint8)
            p, domains = self.detector.assess(x)
            where, distance = zip(*domains) if len(x) else ((), ())
            verdict, reason = zip(*map(self.detector.verdict, p, where)) if len(x) else ((), ())
            return pd.DataFrame({"p_fake": p, "label": self.detector.label(p),
                                 "verdict": list(verdict), "reason": list(reason),
                                 "face_found": None, "domain": list(where),
                                 "domain_score": list(distance),
                                 "trained_on": self.detector.trained_on, "error": "",
                                 "provenance": None}, columns=COLUMNS)
        if isinstance(model_input, pd.DataFrame) and "image" in model_input.columns:
            sources = [_decode_b64(v) for v in model_input["image"]]
            rows = self.detector.score([s if s is not None else b"" for s in sources])
            for row, source in zip(rows, sources):
                if source is None:
                    row["error"] = "not_base64"
                row["provenance"] = _json(row.get("provenance"))
            return pd.DataFrame(rows, columns=COLUMNS)
        if isinstance(model_input, pd.DataFrame) and "video" in model_input.columns:
            return pd.DataFrame([self._clip(_decode_b64(v)) for v in model_input["video"]],
                                columns=COLUMNS)
        raise ValueError("expected a DataFrame with a column 'image' of base64-encoded image "
                         "files (or 'video' of video files), or a uint8 array N×H×W×3")

    def _clip(self, data: bytes | None) -> dict:
        from deepfake_detector.video import VideoLimits, VideoRejected
        from deepfake_detector.video_scan import scan

        row = {"p_fake": None, "label": None, "verdict": None, "reason": "", "face_found": None,
               "domain": None, "domain_score": None, "trained_on": self.detector.trained_on,
               "error": "", "provenance": None}
        if data is None:
            return {**row, "error": "not_base64"}
        # sampled as the clip threshold was fitted (the evaluate stage records how)
        fitted = self.detector.settings.get("video") or {}
        limits = VideoLimits(**{k: fitted[k] for k in ("fps", "max_frames") if k in fitted})
        try:
            clip = scan(self.detector, data, limits)
        except VideoRejected as exc:
            return {**row, "error": exc.reason}
        share = clip["domain_out_share"]
        return {**row, **{k: clip[k] for k in ("p_fake", "label", "verdict", "reason")},
                "provenance": _json(clip.get("provenance")),
                "face_found": None if clip["faces_found"] is None else clip["faces_found"] > 0,
                "domain": None if share is None else ("out" if share > 0.5 else "in")}


def _json(found: dict | None) -> str | None:
    """The provenance object as JSON text: a column of one type, whatever it holds."""
    import json

    return None if found is None else json.dumps(found)


def _decode_b64(value):
    """A cell's file bytes: bytes as they are, or a base64 string (line breaks and spaces, as
    the ``base64`` command wraps its output, left out); None for anything else (a null, NaN,
    a number, ``True``: their text can be valid base64 — "None", "True" — but is no file)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except ValueError:
        return None
