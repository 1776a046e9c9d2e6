"""experiments.faults end to end: a tiny study SIGKILLed and damaged, nothing lost."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.heavy
def test_faults_tool_kills_a_study_and_nothing_is_lost(tmp_path):
  env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "tests"), "TF_CPP_MIN_LOG_LEVEL": "3"}
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.faults", "--kills=2", "--seeds=1", "--max_epochs=2",
       "--backbone=test_tiny_cnn", "--register=helpers:register_tiny", "--damage=1",
       "--seed=3", f"--dir={tmp_path}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  out = proc.stdout
  assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
  line = re.search(r"kills=(\d+) resumed=(\d+) lost=(\d+) duplicated=(\d+) "
                   r"unresumable=(\d+)", out)
  kills, resumed, lost, duplicated, unresumable = map(int, line.groups())
  assert kills == 2 and resumed >= 1 and (lost, duplicated, unresumable) == (0, 0, 0)
  assert "damage:" in out and "final metrics: equal to the uninterrupted run" in out
