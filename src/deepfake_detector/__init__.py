"""Deepfake image detector: a reproducible DVC + MLflow + Keras pipeline."""

import os

# Quiet, offline-friendly defaults for every entry point (stages, CLI, tests).
# setdefault: a user who sets these explicitly keeps their choice.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hides TF's oneDNN banner

__version__ = "0.1.0"
