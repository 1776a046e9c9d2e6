"""One launch of experiments.run for experiments/faults.py, optionally killed at a write.

With TFBACKBONES_FAULTS_KILL_AT=k in the environment, the process SIGKILLs itself at the
k-th write step of the workdir code (tfbackbones.training.workdir.FAULT_HOOK): before a
temporary file is written, before its rename, before a delete or a checkpoint write.
A separate module from experiments.faults, whose flags would clash with the study's.
"""

from __future__ import annotations

import os
import signal

from absl import app

from experiments import run
from tfbackbones.training import workdir as wd

KILL_ENV = "TFBACKBONES_FAULTS_KILL_AT"


def install(target: int) -> None:
  count = [0]

  def hook(point, filename):
    del point, filename
    if count[0] == target:
      os.kill(os.getpid(), signal.SIGKILL)
    count[0] += 1
  wd.FAULT_HOOK = hook


if __name__ == "__main__":
  if os.environ.get("TFBACKBONES_FAULTS_REGISTER"):   # module:function, e.g. a test backbone
    import importlib
    module, function = os.environ["TFBACKBONES_FAULTS_REGISTER"].split(":")
    getattr(importlib.import_module(module), function)()
  if os.environ.get(KILL_ENV):
    install(int(os.environ[KILL_ENV]))
  app.run(run.main)
