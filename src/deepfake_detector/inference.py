"""Loading a model with its serving settings (a model file of the pipeline, or a registered
version) as a ``detector.Detector``."""

from __future__ import annotations

from pathlib import Path

from .detector import Detector, prepare_image, trained_on_text  # noqa: F401 - public here too
from .model_settings import read_settings, settings_for_defaults


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def load_detector(arg: str | None, root: Path, params: dict, warn=print):
    """The ``Detector`` for ``--model``: a ``.keras`` file (with the settings evaluate@<name>
    fitted, ``models/<name>.settings.json``), a ``models:/…`` or ``runs:/…`` URI of a registered
    pyfunc, or by default ``models:/<name>@champion``, falling back to ``@challenger``."""
    import tempfile

    from . import tracking
    from .paths import Workspace
    from .registry import CHALLENGER, CHAMPION

    if arg and arg.endswith(".keras"):
        path = Path(arg)
        if not path.is_file():
            raise FileNotFoundError(f"no model file {path}")
        fitted = Workspace(root).settings(path.stem)
        if fitted.exists():
            settings = read_settings(fitted)
        else:
            settings = {**settings_for_defaults(params), "model": path.stem}
            warn(f"warning: no {fitted.relative_to(root)}: uncalibrated, threshold 0.5")
        try:  # Keras safe mode: a file with Lambda layers or arbitrary code is refused
            return Detector.load(path, settings), str(path)
        except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
            raise ValueError(f"{path} is not a Keras model this project can load safely: "
                             f"{_first_line(exc)}") from None
    import mlflow

    tracking.setup(root)
    name = params["register"]["name"]
    uris = [arg] if arg else [f"models:/{name}@{CHAMPION}", f"models:/{name}@{CHALLENGER}"]
    for i, uri in enumerate(uris):
        # a private temporary copy: the model is read into memory, then the copy goes
        with tempfile.TemporaryDirectory(prefix="deepfake-model-") as tmp:
            try:
                local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for "not there"
                if arg:
                    raise FileNotFoundError(f"cannot load {uri}: {exc}") from None
                continue
            if i == 1:
                warn(f"warning: {name} has no champion yet; using its challenger "
                     "(promote it with `deepfake promote`)")
            try:
                settings_file = next(local.rglob("settings.json"))
                model_file = next(local.rglob("*.keras"))
            except StopIteration:
                raise ValueError(f"{uri} holds no settings.json and .keras file: not a model "
                                 "this project registered") from None
            settings = read_settings(settings_file, f"{uri} (settings.json)")
            try:
                return Detector.load(model_file, settings), uri
            except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
                raise ValueError(f"cannot load {uri}: {_first_line(exc)}") from None
    raise FileNotFoundError(f"no registered {name!r} (champion or challenger): run `make repro` "
                            "first, or pass --model models/<name>.keras")
