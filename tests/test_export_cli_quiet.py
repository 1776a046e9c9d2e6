"""`python -m tfbackbones.export` on a bad workdir prints one line, not TensorFlow's start-up.

Checking the workdir reads result.json through TensorFlow's file API, so TensorFlow loads
there; the command used to quiet it only afterwards, and every export (good or bad
workdir) began with TF's start-up block and the converter's INFO lines.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_bad_workdir_is_one_line_without_tensorflow_chatter(tmp_path):
  (tmp_path / "unfinished").mkdir()
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  proc = subprocess.run(
      [sys.executable, "-m", "tfbackbones.export", f"--workdir={tmp_path / 'unfinished'}"],
      cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
  assert proc.returncode == 2
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error:") and "no finished run" in lines[0]
