import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

SHARED_DATA = ROOT.parent / "shared" / "datasets" / "ffhq-stylegan-dev"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (benchmark data lives beside the checkout)")
    return SHARED_DATA


from pipeline_fixture import pipeline  # noqa: E402,F401  (one session fixture for every module)
