"""The memory figures measure the process itself, not the parent that started it."""

import subprocess
import sys

import numpy as np
from conftest import ROOT

from deepfake_detector.memory import peak_rss_bytes


def test_a_small_child_of_a_large_parent_reports_its_own_peak():
    ballast = np.ones(400 * 2**20, dtype=np.uint8)  # the parent holds 400 MiB
    assert peak_rss_bytes() > 400 * 2**20
    script = ("import resource, sys; sys.path.insert(0, %r); "
              "from deepfake_detector.memory import peak_rss_bytes; "
              "print(peak_rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
              % str(ROOT / "src"))
    own, inherited = map(int, subprocess.run([sys.executable, "-c", script], capture_output=True,
                                             text=True, check=True).stdout.split())
    assert own < 200 * 2**20  # a bare interpreter
    assert inherited > own  # what ru_maxrss would have reported: the parent's watermark
    del ballast
