"""What the split stage learns about each file besides its label: the container facts a CNN
could learn instead of the face (format, JPEG quality, pixel size, file size), what the file
states about its origin (a C2PA manifest store, generator or camera metadata:
``provenance``) and a perceptual hash for near-duplicates, all from one read of the file.

The shortcut audit asks whether those facts alone tell the classes apart: a small forest,
cross-validated, scored by ROC AUC. Above ``split.shortcut_max_auc`` a detector trained on
these files may be learning how each class was saved, not what it shows. Classes whose
files differ in provenance (generated files carrying generator metadata, photographs camera
EXIF) were saved differently, so provenance enters the audit too.
"""

from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from tqdm import tqdm

from .errors import ImageRejected
from .images import load_image, read_bytes
from .near_duplicates import FRAME, fingerprint
from .provenance import has_manifest_store, read_metadata
from .provenance_claims import metadata_claim

FACT_COLUMNS = ["format", "width", "height", "bytes", "jpeg_quality", "phash", "c2pa",
                "metadata_claim"]
# The IJG standard luminance table (JPEG Annex K); libjpeg scales it by quality.
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)


def _quality_tables() -> np.ndarray:
    quality = np.arange(1, 101)
    scale = np.where(quality < 50, 5000 / quality, 200 - 2 * quality)
    return np.clip(np.floor((_IJG_LUMA[None] * scale[:, None] + 50) / 100), 1, 255)


_TABLES = _quality_tables()


def jpeg_quality(luma_table) -> int:
    """The libjpeg quality (1–100) whose luminance table is nearest to ``luma_table`` (the
    64 values in either order: the table's sum decides, and zig-zag order keeps sums)."""
    table = np.asarray(list(luma_table), np.float64)
    return int(np.argmin(np.abs(_TABLES.sum(axis=1) - table.sum())) + 1)


def file_facts(path: str, max_bytes: int | None) -> dict:
    """Format, pixel size, file size, JPEG quality (0 for other formats), pHashes
    (``near_duplicates.fingerprint``), whether it holds a C2PA manifest store (not validated
    here: ``deepfake provenance`` does that) and what its metadata claims
    (``provenance.metadata_claim``) of one file; None for a fact it lacks (an undecodable
    file gets no hashes)."""
    from PIL import Image

    facts = dict.fromkeys(FACT_COLUMNS)
    try:
        data = read_bytes(path, max_bytes)
    except ImageRejected:
        return facts
    facts["bytes"] = len(data)
    facts["c2pa"] = has_manifest_store(data)
    facts["metadata_claim"] = metadata_claim(read_metadata(data)[0])[0]
    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(data)) as img:
            warnings.simplefilter("ignore")
            facts.update(format=img.format or "unknown", width=img.width, height=img.height)
            tables = getattr(img, "quantization", None) or {}
            facts["jpeg_quality"] = jpeg_quality(tables[0]) if 0 in tables else 0
        facts["phash"] = fingerprint(load_image(data, FRAME))
    except Exception:  # noqa: BLE001 - any decoder failure: preprocess rejects the file
        pass  # with its reason; the audit only lacks its facts and never stops the stage
    return facts


def inspect_files(paths: list[str], max_bytes: int | None = None,
                  workers: int | None = None) -> pd.DataFrame:
    """``file_facts`` of every path (one row each, in order), over all cores."""
    with tqdm(total=len(paths), desc="inspect", unit="img", disable=None) as bar, \
            ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        rows = []
        for facts in pool.map(lambda p: file_facts(p, max_bytes), paths):
            rows.append(facts)
            bar.update()
    return pd.DataFrame(rows, columns=FACT_COLUMNS, index=range(len(paths)))


def _quantiles(values: pd.Series) -> dict:
    values = values.dropna()
    if values.empty:
        return {}
    return {name: float(np.quantile(values, q)) for name, q in
            (("p10", 0.1), ("median", 0.5), ("p90", 0.9))}


def shortcut_audit(facts: pd.DataFrame, labels: pd.Series, seed: int, folds: int = 5) -> dict:
    """Per class, the distribution of each container fact; and the cross-validated ROC AUC
    of a small forest that predicts the label from those facts alone (None when a class
    has fewer files than two)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    facts = facts.reset_index(drop=True)
    labels = pd.Series(np.asarray(labels), name="label")
    per_class = {}
    for label, name in ((0, "real"), (1, "fake")):
        mine = facts[labels == label]
        per_class[name] = {
            "formats": {str(k): int(v) for k, v in mine["format"].value_counts().items()},
            "jpeg_quality": _quantiles(mine.loc[mine["jpeg_quality"] > 0, "jpeg_quality"]),
            "pixels": _quantiles(mine["width"] * mine["height"]),
            "file_kb": _quantiles(mine["bytes"] / 1024),
            "provenance": provenance_counts(mine)}
    known = facts["bytes"].notna().to_numpy()
    features = pd.DataFrame({
        "jpeg": (facts["format"] == "JPEG").astype(float),
        "png": (facts["format"] == "PNG").astype(float),
        "jpeg_quality": facts["jpeg_quality"].fillna(-1).astype(float),
        "width": facts["width"].fillna(-1).astype(float),
        "height": facts["height"].fillna(-1).astype(float),
        "log_bytes": np.log1p(facts["bytes"].fillna(0).astype(float)),
        "c2pa": facts["c2pa"].fillna(False).astype(float),
        "metadata_ai": facts["metadata_claim"].isin(["ai_generated", "ai_edited"]).astype(float),
        "metadata_camera": (facts["metadata_claim"] == "camera").astype(float)})[known]
    y = labels[known].to_numpy()
    smallest = int(np.bincount(y, minlength=2).min()) if len(y) else 0
    auc = None
    if smallest >= 2:
        forest = RandomForestClassifier(n_estimators=50, max_depth=4, random_state=seed,
                                        n_jobs=1)
        split = StratifiedKFold(min(folds, smallest), shuffle=True, random_state=seed)
        scores = cross_val_predict(forest, features, y, cv=split, method="predict_proba")
        auc = round(float(roc_auc_score(y, scores[:, 1])), 4)
    return {"auc": auc, "files": int(known.sum()), "per_class": per_class}


def provenance_counts(facts: pd.DataFrame) -> dict:
    """How many of these files carry a C2PA manifest store, and how many state each origin
    in their metadata (``none`` left out)."""
    claims = facts["metadata_claim"].dropna()
    return {"files": int(facts["bytes"].notna().sum()),
            "c2pa": int(facts["c2pa"].fillna(False).astype(bool).sum()),
            "metadata": {str(k): int(v) for k, v in claims[claims != "none"].value_counts()
                         .sort_index().items()}}


def shortcut_warning(audit: dict, max_auc: float) -> str | None:
    """What to tell the user when the file facts alone separate the classes, else None."""
    if audit["auc"] is None or audit["auc"] <= max_auc:
        return None
    return (f"format, JPEG quality, pixel size, file size and provenance metadata alone "
            f"predict the class with cross-validated ROC AUC {audit['auc']:.3f} (above "
            f"split.shortcut_max_auc "
            f"{max_auc}): a model can learn how each class was saved instead of the faces. "
            "See shortcut_audit in metrics/data.json; save both classes alike.")
