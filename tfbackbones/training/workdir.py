"""A run's workdir: config, resumable state, checkpoints, TensorBoard events, result.

All access goes through `tf.io.gfile`, so `gs://bucket/...` workdirs work on Cloud TPU
VMs and GPU fleets exactly like local paths. Files that a resumed run trusts are written
to a temporary name and renamed, so a kill mid-write never leaves a half file behind.

Layout:
  <workdir>/config.json         resolved TrainConfig
  <workdir>/state.json          epoch, DualOpt state, history, checkpoint paths
  <workdir>/checkpoints/        model + optimizer, the last `keep_checkpoints` epochs
  <workdir>/best/               model weights of the best epoch so far
  <workdir>/events.* (tb)       TensorBoard scalars, hparams
  <workdir>/result.json         the results row (status finished / failed)
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import tensorflow as tf

CONFIG = "config.json"
STATE = "state.json"
RESULT = "result.json"
CHECKPOINTS = "checkpoints"
BEST = "best"


def path(workdir: str, *parts: str) -> str:
  return os.path.join(workdir, *parts)


def write_text(filename: str, text: str) -> None:
  """Writes `text` to a temporary name, then renames: a kill never leaves half a file."""
  tmp = filename + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(text)
  tf.io.gfile.rename(tmp, filename, overwrite=True)


def write_json(filename: str, value: Any) -> None:
  write_text(filename, json.dumps(value, indent=2, sort_keys=True, default=_jsonable))


def read_json(filename: str) -> Optional[Any]:
  if not tf.io.gfile.exists(filename):
    return None
  with tf.io.gfile.GFile(filename, "r") as f:
    return json.loads(f.read())


def _jsonable(value):
  if hasattr(value, "item"):
    return value.item()
  if hasattr(value, "tolist"):
    return value.tolist()
  return str(value)


def remove_checkpoint(prefix: str) -> None:
  """Deletes every file of a tf.train checkpoint written at `prefix`."""
  for f in tf.io.gfile.glob(prefix + ".*"):
    tf.io.gfile.remove(f)
