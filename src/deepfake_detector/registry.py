"""The MLflow Model Registry: register a pipeline model, a gated promotion to ``champion``,
rollback, and what each version is."""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from . import tracking
from .model_settings import read_settings
from .paths import Workspace

CHALLENGER, CHAMPION = "challenger", "champion"
HISTORY_TAG = "champion_history"  # on the registered model: champions in order, for rollback
GATE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")
LINEAGE_PREFIXES = ("git.", "dvc.md5.", "data.hash", "weights", "distribute", "replicas",
                    "model.md5", "restored")
TRAINED_ON_TAGS = {"data.source": "source", "data.images": "images", "trained.date": "date"}
GATE_TAG, NOT_GATED = "promotion.gate", "NOT GATED"  # passed|forced, set by `deepfake promote`
TYPES = {"p_fake": "double", "face_found": "boolean", "domain_score": "double"}  # else string
IO = ("Input: a DataFrame with a column `image` of base64-encoded image files (`mlflow models "
      "serve`: `{\"dataframe_split\": {\"columns\": [\"image\"], \"data\": [[\"<base64>\"]]}}`), "
      "or a uint8 array N×H×W×3 at the model's image size. Output: a DataFrame, one row per "
      "image: p_fake (calibrated P(fake), 1 = fake), label (fake|real at the threshold), "
      "verdict (fake|real|inconclusive), reason (why inconclusive: in_band|out_of_domain), "
      "face_found, domain (in|out of the training data's domain), domain_score, trained_on "
      "(the training data in words), error (empty, or why the image was not scored), "
      "provenance (JSON text: what the file states about its origin, C2PA Content Credentials "
      "or metadata: claim, verified, trusted, summary). A column `video` of base64-encoded "
      "clips gets one row per clip.")
DESCRIPTION = ("Deepfake face-image detector: P(fake) of a face photograph (1 = fake). " + IO +
               " Move `champion` with `deepfake promote` (the promotion gate): an alias set "
               "here bypasses the gate, and `deepfake models` marks it NOT GATED.")


def settings_for(root: Path, model: str) -> dict:
    """What the pyfunc, CLI and service need besides the weights: the preprocessing, and the
    temperature and threshold fitted on validation, as evaluate@<model> wrote them."""
    path = Workspace(root).settings(model)
    if not path.exists():
        raise FileNotFoundError(f"no {path.relative_to(root)}: run `dvc repro evaluate@{model}` "
                                "first")
    return read_settings(path)


def fingerprint(model_file: Path, settings: dict) -> str:
    """The model's weights and serving settings: what makes two registered versions the same.
    (Not the file's bytes: files saved before reproducible.save_model recorded their save
    date, and their versions must still compare.)"""
    import keras

    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for weights in keras.models.load_model(model_file, compile=False).get_weights():
        digest.update(str(weights.shape).encode())
        digest.update(weights.tobytes())
    return digest.hexdigest()


def register(root: Path, params: dict) -> dict:
    """Log the chosen model as a pyfunc in its training run and register it as a new version
    with alias ``challenger``; an identical model and settings reuse their version."""
    import mlflow

    name, model = params["register"]["name"], params["register"]["model"]
    settings = settings_for(root, model)
    model_file = Workspace(root).model(model)
    print_ = fingerprint(model_file, settings)
    tracking.setup(root)
    client = mlflow.MlflowClient()
    try:
        described = client.get_registered_model(name).description
        if not described or (described != DESCRIPTION  # ours, an older text
                             and described.startswith(DESCRIPTION.split(":")[0])):
            client.update_registered_model(name, description=DESCRIPTION)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description=DESCRIPTION)
    existing = [v for v in client.search_model_versions(f"name='{name}'")
                if v.tags.get("fingerprint") == print_]
    if existing:
        version = max(existing, key=lambda v: int(v.version))
        created = False
    else:
        version, created = _new_version(root, name, model, model_file, settings, print_), True
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    # no run id: the same model must give the same models/registered.json (a DVC output)
    return {"name": name, "version": int(version.version), "alias": CHALLENGER,
            "model": model, "fingerprint": print_,
            "model_uri": f"models:/{name}/{version.version}", "created": created}


def _new_version(root, name, model, model_file, settings, print_):
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from .detector import trained_on_text
    from .pyfunc import COLUMNS, DeepfakeDetectorModel

    metrics = json.loads(Workspace(root).metrics(model).read_text())  # for the promotion gate
    source = json.loads(Workspace(root).source_record.read_text())
    run_id = tracking.training_run(root, model)
    run = mlflow.MlflowClient().get_run(run_id)
    trained = {"source": str(source["source"]) if source.get("source") else None,
               "images": _train_images(root, settings, run.data.params),
               "date": _day(run.info.start_time)}
    # Outputs only: an input schema (column `image`) makes MLflow refuse the uint8 arrays
    # that the pyfunc also takes; `dataframe_split` with `image` is served either way.
    signature = ModelSignature(outputs=Schema([
        ColSpec(TYPES.get(column, "string"), column, required=column in ("error", "trained_on"))
        for column in COLUMNS]))
    with tempfile.TemporaryDirectory() as tmp, tracking.resumed_run(run_id):
        settings_file = Path(tmp) / "settings.json"  # trained_on: shown beside verdicts
        settings_file.write_text(json.dumps({**settings, "trained_on": trained}, indent=2))
        import keras
        import tensorflow as tf

        info = mlflow.pyfunc.log_model(
            name="detector", python_model=DeepfakeDetectorModel(), signature=signature,
            artifacts={"keras_model": str(model_file), "settings": str(settings_file)},
            code_paths=[str(Path(__file__).parent)],
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}",
                              "pillow", "simplejpeg", "opencv-python-headless<5", "pandas", "av",
                              f"c2pa-python=={metadata.version('c2pa-python')}"])
    tags = {"fingerprint": print_, "model": model, "dvc.stage": "register",
            "registered.git.commit": tracking.git_commit(root),
            "data.sha256": str(source.get("sha256") or ""),
            **{tag: str(trained[key]) for tag, key in TRAINED_ON_TAGS.items()
               if trained[key] is not None},
            "threshold": str(settings["threshold"]), "temperature": str(settings["temperature"]),
            # lineage: the commit, data and weights the model was trained from
            **{k: v for k, v in run.data.tags.items() if k.startswith(LINEAGE_PREFIXES)}}
    tags.update({f"test_{k}": str(metrics[k]) for k in GATE_METRICS if metrics.get(k) is not None})
    version = mlflow.register_model(info.model_uri, name, tags=tags)
    return mlflow.MlflowClient().update_model_version(name, version.version, description=(
        f"Model `{model}`, trained on {trained_on_text(trained)}; threshold "
        f"{settings['threshold']}, image size {settings['image_size']}. " + IO))


def _train_images(root: Path, settings: dict, run_params: dict) -> int | None:
    """The training split's image count: as evaluate recorded it in the settings, else the
    training run's ``n_train`` (settings written before evaluate recorded it)."""
    count = (settings.get("trained_on") or {}).get("images") or run_params.get("n_train")
    return None if count is None else int(count)


def _day(ms) -> str | None:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).date().isoformat() if ms else None


def trained_on(version) -> dict:
    """What a registered version (an MLflow ``ModelVersion``) was trained on, from the tags
    the register stage sets: ``{"source": str|None, "images": int|None, "date":
    "YYYY-MM-DD"|None}`` (the training run's start, else the version's creation; UTC)."""
    tags, images = version.tags, version.tags.get("data.images", "")
    return {"source": tags.get("data.source") if tags.get("data.source") not in ("", "None")
            else None, "images": int(images) if images.isdigit() else None,
            "date": tags.get("trained.date") or _day(version.creation_timestamp)}


def version_metrics(version) -> dict[str, float]:
    return {k[5:]: float(v) for k, v in version.tags.items()
            if k.startswith("test_") and k[5:] in GATE_METRICS}


def alias_version(client, name: str, alias: str):
    import mlflow

    try:
        return client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def gate(candidate: dict, champion: dict | None, cfg: dict) -> list[str]:
    """Why ``candidate`` may not become champion (empty: it may). Floors from ``promote.min_*``
    (``min_fake_recall`` reads ``recall``), and no metric more than ``promote.max_drop`` below
    the champion's."""
    failures = []
    for key, floor in cfg.items():
        if not key.startswith("min_") or floor is None:
            continue
        metric = {"fake_recall": "recall"}.get(key[4:], key[4:])
        value = candidate.get(metric)
        if value is None or value < floor:
            failures.append(f"{metric} {value if value is None else round(value, 4)} is below "
                            f"the floor {floor} (by {round(floor - (value or 0), 4)})")
    if champion:
        max_drop = float(cfg["max_drop"])
        for metric in ("accuracy", "recall", "roc_auc"):
            if metric in champion and metric in candidate and \
                    candidate[metric] < champion[metric] - max_drop:
                drop = champion[metric] - candidate[metric]
                failures.append(f"{metric} {candidate[metric]:.4f} is {drop:.4f} below the "
                                f"champion's {champion[metric]:.4f} (max_drop {max_drop})")
    return failures


def promote(name: str, cfg: dict, version: int | None = None, force: bool = False,
            reason: str | None = None, before_move=None) -> dict:
    """Move ``champion`` to ``version`` (default: the challenger) if the gate passes, or with
    ``force`` and a reason. The gate is checked again against the champion as it is just
    before the move: a decision taken against a champion that has since changed is not
    applied. ``before_move`` is a test seam run between the check and the move."""
    import mlflow

    client = mlflow.MlflowClient()
    if force and not reason:
        raise ValueError("--force needs --reason \"why\": it is recorded on the version")
    candidate = (client.get_model_version(name, str(version)) if version is not None
                 else alias_version(client, name, CHALLENGER))
    if candidate is None:
        raise ValueError(f"no challenger version of {name!r}: run `dvc repro` (the register "
                         "stage) or pass --version N")
    champion = alias_version(client, name, CHAMPION)
    failures = gate(version_metrics(candidate),
                    version_metrics(champion) if champion else None, cfg)
    if failures and not force:
        return {"promoted": False, "version": int(candidate.version), "failures": failures}
    if before_move:
        before_move()
    now = alias_version(client, name, CHAMPION)
    if (now and now.version) != (champion and champion.version):
        return {"promoted": False, "version": int(candidate.version), "failures": [
            f"the champion changed from version {champion and champion.version} to "
            f"{now and now.version} during the check; nothing was changed: run promote again"]}
    client.set_registered_model_alias(name, CHAMPION, candidate.version)
    client.set_model_version_tag(name, candidate.version, GATE_TAG,
                                 "forced" if failures else "passed")
    if force:
        client.set_model_version_tag(name, candidate.version, "promotion.forced_reason", reason)
        client.set_model_version_tag(name, candidate.version, "promotion.gate_failures",
                                     "; ".join(failures) or "none")
    history = _history(client, name) + [int(candidate.version)]
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(map(str, history)))
    return {"promoted": True, "version": int(candidate.version), "failures": failures,
            "previous": int(champion.version) if champion else None}


def _history(client, name: str) -> list[int]:
    return _history_of(client.get_registered_model(name))


def _history_of(registered) -> list[int]:
    """The champions in order, from a registered model's ``champion_history`` tag."""
    return [int(v) for v in registered.tags.get(HISTORY_TAG, "").split(",") if v]


def rollback(name: str) -> dict:
    """Give ``champion`` back to the version that held it before the current one."""
    import mlflow

    client = mlflow.MlflowClient()
    history = _history(client, name)
    current = alias_version(client, name, CHAMPION)
    if current is not None:
        while history and history[-1] != int(current.version):
            history.pop()  # moved by hand since: forget what came after
    if len(history) < 2:
        raise ValueError(f"{name!r} has no earlier champion to roll back to")
    history.pop()
    client.set_registered_model_alias(name, CHAMPION, str(history[-1]))
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(map(str, history)))
    return {"version": history[-1], "from": int(current.version) if current else None}


def gate_status(version, champion: str | None, history: list[int]) -> str:
    """``passed``/``forced``: how `deepfake promote` last made ``version`` champion (``-``: never);
    ``NOT GATED``: champion by an alias set outside promote/rollback (the MLflow UI's editor)."""
    if str(version.version) == str(champion) and history[-1:] != [int(version.version)]:
        return NOT_GATED
    if version.tags.get(GATE_TAG):
        return version.tags[GATE_TAG]
    if "promotion.forced_reason" in version.tags:
        return "forced"  # promoted before the gate tag existed
    return "passed" if int(version.version) in history else "-"


def list_versions(name: str) -> list[dict]:
    import mlflow

    client = mlflow.MlflowClient()
    registered = client.get_registered_model(name)
    history = _history_of(registered)
    aliases: dict[str, list[str]] = {}
    for alias, number in registered.aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for v in sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)):
        rows.append({"version": int(v.version), "aliases": sorted(aliases.get(str(v.version), [])),
                     "model": v.tags.get("model", ""), **version_metrics(v),
                     "gate": gate_status(v, registered.aliases.get(CHAMPION), history),
                     "trained_on": trained_on(v), "tags": dict(v.tags), "run_id": v.run_id})
    return rows


def lineage(name: str, row: dict) -> dict:
    """What a version (a ``list_versions`` row) was made from: its tags (commit, dirty flag,
    data md5s as in dvc.lock, pretrained weights) and its training run's status and params."""
    import mlflow

    run = mlflow.MlflowClient().get_run(row["run_id"])
    return {"name": name, "version": row["version"], "aliases": row["aliases"],
            "gate": row["gate"], "trained_on": row["trained_on"],
            "run_id": row["run_id"], "run_status": run.info.status,
            "tags": dict(sorted(row["tags"].items())),
            "params": dict(sorted(run.data.params.items()))}
