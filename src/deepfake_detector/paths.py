"""The workspace layout: every location the pipeline reads or writes, named once.

``dvc.yaml`` spells the same paths for DVC (tests/test_dvc_yaml.py checks the two agree);
everything in Python asks a ``Workspace`` instead of joining folder names by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")
PLOT_KINDS = ("roc", "pr", "calibration", "confusion", "robustness")


@dataclass(frozen=True)
class Workspace:
    """The locations under one project root (a checkout, or a throwaway copy of one)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # --- inputs and data (fetch, split, preprocess) ---
    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def profiles(self) -> Path:
        return self.root / "profiles"

    @property
    def lock(self) -> Path:
        return self.root / "dvc.lock"

    @property
    def pipeline(self) -> Path:
        return self.root / "dvc.yaml"

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def source_record(self) -> Path:
        return self.raw / "source.json"

    @property
    def masks(self) -> Path:
        return self.raw / "masks.npz"

    @property
    def split_dir(self) -> Path:
        return self.root / "data" / "split"

    def manifest(self, split: str) -> Path:
        return self.split_dir / f"{split}.csv"

    @property
    def split_rejected(self) -> Path:
        return self.split_dir / "rejected.csv"

    @property
    def processed_dir(self) -> Path:
        return self.root / "data" / "processed"

    def processed(self, split: str) -> Path:
        return self.processed_dir / f"{split}.npz"

    @property
    def processed_rejected(self) -> Path:
        return self.processed_dir / "rejected.csv"

    # --- models (train, ensemble, evaluate, register) ---
    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def model(self, name: str) -> Path:
        return self.models_dir / f"{name}.keras"

    def settings(self, name: str) -> Path:
        """Temperature, threshold and preprocessing fitted for ``name`` (evaluate@name)."""
        return self.models_dir / f"{name}.settings.json"

    def val_scores(self, name: str) -> Path:
        """P(fake) of the validation split that ``name``'s own stage computed (out-of-fold
        for a model fitted on validation, such as the stacked ensemble)."""
        return self.models_dir / f"{name}.val_scores.npz"

    def pretrained(self, name: str) -> Path:
        return self.models_dir / "pretrained" / f"{name}.json"

    @property
    def registered(self) -> Path:
        return self.models_dir / "registered.json"

    # --- reports (DVC metrics and plots; tracked in git) ---
    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    def metrics(self, name: str) -> Path:
        return self.metrics_dir / f"{name}.json"

    def history(self, name: str) -> Path:
        return self.metrics_dir / "train" / f"{name}.json"

    @property
    def data_summary(self) -> Path:
        return self.metrics_dir / "data.json"

    @property
    def explain_scores(self) -> Path:
        return self.metrics_dir / "explain.json"

    @property
    def summary(self) -> Path:
        return self.metrics_dir / "summary.csv"

    @property
    def external_dir(self) -> Path:
        return self.metrics_dir / "external"

    def external(self, name: str) -> Path:
        """One external set's report (``evaluate.external``)."""
        return self.external_dir / f"{name}.json"

    @property
    def external_table(self) -> Path:
        """In-domain vs cross-domain: every model on its test split and each external set."""
        return self.metrics_dir / "external.csv"

    @property
    def plot_data(self) -> Path:
        return self.metrics_dir / "plots"

    def plot(self, kind: str, name: str) -> Path:
        return self.plot_data / kind / f"{name}.csv"

    @property
    def figures(self) -> Path:
        return self.root / "reports" / "figures"

    def figure(self, name: str) -> Path:
        return self.figures / f"{name}.png"

    @property
    def explain_dir(self) -> Path:
        return self.root / "reports" / "explain"

    # --- untracked: what differs between two identical runs (not in git, not hashed by DVC)
    @property
    def timings(self) -> Path:
        return self.root / "reports" / "timings.json"
