"""The project's error types share one base class, which the stage runner and the CLI print as
one line (no traceback)."""

import inspect
import os
import subprocess
import sys

from conftest import ROOT

from deepfake_detector import cli, errors
from deepfake_detector.errors import DeepfakeError, ImageRejected, SourceError


def test_every_error_type_shares_the_base_and_keeps_its_builtin_one():
    types = [c for _, c in inspect.getmembers(errors, inspect.isclass)
             if c.__module__ == errors.__name__ and c is not DeepfakeError]
    assert len(types) >= 6 and all(issubclass(c, DeepfakeError) for c in types)
    assert issubclass(errors.ParamsError, ValueError)  # `except ValueError` still catches it
    assert issubclass(SourceError, RuntimeError) and issubclass(errors.DownloadError,
                                                                RuntimeError)


def test_stage_runner_prints_any_project_error_as_one_line():
    code = ("from deepfake_detector.errors import ImageRejected\n"
            "from deepfake_detector.stage_runner import run_stage\n"
            "def main():\n    raise ImageRejected('truncated', 'x.jpg')\n"
            "run_stage(main)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=60)
    assert (done.returncode, done.stderr) == (1, "error: truncated: x.jpg\n")


def test_cli_prints_any_project_error_as_one_line(monkeypatch, capsys):
    def models(args):
        raise ImageRejected("not_image", "notes.txt")

    monkeypatch.setattr(cli, "cmd_models", models)
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == "error: not_image: notes.txt\n"


def test_errors_module_is_the_only_home_of_error_types():
    """Modules that raise an error import it from errors.py; none defines its own."""
    defined = [f"{path.name}: class {line.split('(')[0].split()[1]}"
               for path in sorted((ROOT / "src" / "deepfake_detector").glob("*.py"))
               if path.name != "errors.py"
               for line in path.read_text().splitlines()
               if line.startswith("class ") and ("Error(" in line or "Rejected(" in line)]
    assert defined == []

