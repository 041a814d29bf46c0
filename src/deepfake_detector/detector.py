"""A model with its serving settings as a ``Detector``: raw images (or video frames) framed,
scored through one traced call, calibrated and judged the way the model was evaluated.
``inference.load_detector`` finds one (a model file, a registered version)."""

from __future__ import annotations

import threading

import numpy as np

from . import verdicts
from .images import MAX_FILE_MB, MB
from .scoring import apply_temperature, compiled_predict, label


def trained_on_text(trained_on: dict | None) -> str:
    """``settings['trained_on']`` in words; "unknown" for a model that records none."""
    if not trained_on:
        return "unknown"
    images = trained_on.get("images")
    date = trained_on.get("date")
    return (f"{trained_on.get('source') or 'unknown'}"
            + (f": {images} images" if images is not None else "")
            + (f", trained {date}" if date else ""))


def prepare_image(source, size: int, *, max_pixels: int = 50_000_000, crop: float = 1.0,
                  face_crop: dict | None = None,
                  max_bytes: int | None = MAX_FILE_MB * MB) -> tuple[np.ndarray, bool | None]:
    """One image framed for scoring (CLI, pyfunc, service) exactly as the preprocess stage
    frames training and test images (``faces.frame_image``): the uint8 image and whether a
    face was found (None when face cropping is off)."""
    from .faces import frame_image

    image, found, _ = frame_image(source, size, max_pixels=max_pixels, crop=crop,
                                  face_crop=face_crop, max_bytes=max_bytes)
    return image, found


class Detector:
    """A model with everything needed to score raw images the way it was evaluated: the
    preprocessing settings, the temperature and the threshold chosen on validation."""

    def __init__(self, model, settings: dict):
        self.model, self.settings = model, settings
        self.uncalibrated = compiled_predict(model)  # the model's own P(fake): what LIME explains
        self._scored = None  # (call, fit) built on first use: only models with a domain fit
        self._building = threading.Lock()  # the service's threads build it once
        # ``provenance.Provenance``: each scored file's provenance beside its score (the CLI,
        # the service and the pyfunc set it; evaluation leaves it off)
        self.provenance = None

    def assess(self, x: np.ndarray) -> tuple[np.ndarray, list[tuple[str | None, float | None]]]:
        """Calibrated P(fake) of uint8 images at the model's size and ``(in|out, score)`` of
        each (``domain.py``: out past 1), from one model call; ``(None, None)`` each when the
        settings hold no domain fit (a model evaluated before it existed)."""
        from . import domain

        fitted = self.settings.get("domain")
        if not fitted or not len(x):
            return self.probabilities(x), [(None, None)] * len(x)
        with self._building:
            if self._scored is None:
                self._scored = (domain.feature_function(self.model, with_output=True),
                                domain.as_arrays(fitted))
        call, fit = self._scored
        p, features = call(x)
        return (self.calibrated(p), [(domain.verdict(score), round(float(score), 4))
                                     for score in domain.scores(features, x, fit)])

    def domain(self, x: np.ndarray) -> list[tuple[str | None, float | None]]:
        """``(in|out, score)`` of each uint8 image: ``assess``'s second half."""
        return self.assess(x)[1]

    @classmethod
    def load(cls, model_path, settings: dict) -> Detector:
        import keras

        return cls(keras.models.load_model(model_path, compile=False), settings)

    @property
    def threshold(self) -> float:
        return float(self.settings.get("threshold", 0.5))

    @property
    def band(self) -> list[float]:
        """``[low, high]``: P(fake) in it is inconclusive (none for settings without one)."""
        return list(self.settings.get("band") or [self.threshold, self.threshold])

    @property
    def trained_on(self) -> str:
        """One line on the training data: "synthetic: 2100 images, trained 2026-11-29"."""
        return trained_on_text(self.settings.get("trained_on"))

    def verdict(self, p: float | None, domain: str | None) -> tuple[str | None, str]:
        """``(fake|real|inconclusive, reason)``: ``verdicts.verdict`` with this model's band."""
        return verdicts.verdict(p, self.threshold, self.band, domain)

    def judgement(self, image: np.ndarray, p: float) -> dict:
        """What one explained image is told, beside its maps (CLI ``explain``, ``POST
        /explain``): P(fake) ``p`` of the uint8 ``image``, its label and verdict, the domain
        flag, and what the model knows (training data, threshold, band)."""
        (where, distance), = self.domain(image[None])
        verdict, reason = self.verdict(p, where)
        return {"p_fake": p, "label": self.label(p), "verdict": verdict, "reason": reason,
                "domain": where, "domain_score": distance, "trained_on": self.trained_on,
                "threshold": self.threshold, "band": self.band}

    def label(self, p):
        """"fake" or "real" for calibrated P(fake) ``p`` (a number or an array)."""
        return label(p, self.threshold)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Calibrated P(fake) of uint8 images already at the model's size."""
        return self.calibrated(self.uncalibrated(x))

    def calibrated(self, p: np.ndarray) -> np.ndarray:
        """The model's own P(fake) ``p`` with the temperature chosen on validation applied."""
        return apply_temperature(p, float(self.settings.get("temperature", 1.0)))

    def face_settings(self, face_crop: bool | None = None) -> dict:
        """The model's face crop (``faces.frame_image``'s form), ``face_crop`` overriding
        whether it is on (None: as the settings say)."""
        face = dict(self.settings.get("face_crop") or {})
        if face_crop is not None:
            face["enabled"] = face_crop
        return face

    @property
    def max_bytes(self) -> int:
        """``max_file_mb`` in the settings (the CLI sets ``preprocess.max_file_mb``) caps the
        size of a file read from a path; default ``images.MAX_FILE_MB``."""
        return int(float(self.settings.get("max_file_mb", MAX_FILE_MB)) * MB)

    def prepare(self, source, face_crop: bool | None = None, framed: bool = False):
        """``source`` framed for this model. ``framed``: the image is a crop this model's
        framing already made (a scanned frame's), resized as it is: no face search, no
        centre crop."""
        return prepare_image(source, int(self.settings["image_size"]),
                             max_pixels=int(self.settings.get("max_pixels", 50_000_000)),
                             crop=1.0 if framed else float(self.settings.get("centre_crop", 1.0)),
                             face_crop=self.face_settings(False if framed else face_crop),
                             max_bytes=self.max_bytes)

    def score(self, sources: list, names: list[str] | None = None,
              face_crop: bool | None = None, progress=None, chunk: int = 64) -> list[dict]:
        """One result per source, in order: ``file, p_fake, label, verdict, reason,
        face_found, domain, domain_score, trained_on, error`` and, when ``self.provenance``
        is set, ``provenance`` (``provenance.py``; None for a file not read); an unusable
        file gets its rejection reason in ``error`` and the rest are still scored. Sources
        are read and scored ``chunk`` at a time (memory stays bounded); ``progress(n)`` is
        called after each chunk with the number of files done in it."""
        names = names or [str(s) if not isinstance(s, (bytes, bytearray)) else "" for s in sources]
        rows = []
        for i in range(0, len(sources), chunk):
            rows += self._score_chunk(sources[i:i + chunk], names[i:i + chunk], face_crop)
            if progress:
                progress(len(sources[i:i + chunk]))
        return rows

    def _score_chunk(self, sources: list, names: list[str], face_crop: bool | None) -> list[dict]:
        from .errors import ImageRejected
        from .images import read_bytes

        rows, images = [], []
        for name, source in zip(names, sources):
            row = {"file": name, "p_fake": None, "label": None, "verdict": None, "reason": "",
                   "face_found": None, "domain": None, "domain_score": None,
                   "trained_on": self.trained_on, "error": ""}
            if self.provenance:
                row["provenance"] = None
            try:
                data = read_bytes(source, self.max_bytes)  # read once, for both
                if self.provenance:
                    row["provenance"] = self.provenance.read(data)
                image, row["face_found"] = self.prepare(data, face_crop)
                images.append(image)
            except ImageRejected as exc:
                row["error"] = exc.reason
            rows.append(row)
        if images:
            batch = np.stack(images)
            scores = iter(zip(*self.assess(batch)))
            for row in rows:
                if not row["error"]:
                    p, (row["domain"], row["domain_score"]) = next(scores)
                    row["p_fake"] = round(float(p), 6)
                    row["label"] = self.label(row["p_fake"])
                    row["verdict"], row["reason"] = self.verdict(row["p_fake"], row["domain"])
        return rows
