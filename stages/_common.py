"""What every stage script shares: the project root, params, and clean failure."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # stages run from a checkout even before `pip install -e`

from deepfake_detector.config import load_params  # noqa: E402
from deepfake_detector.stage_runner import run_stage  # noqa: E402

__all__ = ["ROOT", "load_params", "run_stage"]
