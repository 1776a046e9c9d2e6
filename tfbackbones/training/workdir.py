"""A run's workdir: config, resumable state, checkpoints, TensorBoard events, result.

All access goes through `tf.io.gfile`, so `gs://bucket/...` workdirs work on Cloud TPU
VMs and GPU fleets exactly like local paths. Every JSON file is written to a temporary
name, flushed to disk, and renamed over the old one, so a kill mid-write leaves either
the old file or the new one, never half of one (docs/workdir.md).

Layout:
  <workdir>/config.json         resolved TrainConfig
  <workdir>/state.json          epoch, DualOpt state, history, paths relative to <workdir>
  <workdir>/checkpoints/        ckpt-<phase>-<epoch>.{index,data-*}: model + optimizer, and
                                ckpt-<phase>-<epoch>.state.json: the state at that epoch
  <workdir>/best/               model weights of the best epoch so far
  <workdir>/events.* (tb)       TensorBoard scalars, hparams
  <workdir>/lock                who trains here (host, pid); its mtime is the heartbeat
  <workdir>/result.json         the results row (status finished / failed / ...)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from tfbackbones.config import ConfigError
from tfbackbones.jsonable import jsonable

CONFIG = "config.json"
STATE = "state.json"
RESULT = "result.json"
CHECKPOINTS = "checkpoints"
BEST = "best"
LOCK = "lock"
DAMAGED = ".damaged"   # suffix of a damaged file moved aside (kept for inspection)

# Called as FAULT_HOOK(point, path) before each step of a write sequence: tests and
# experiments/faults.py raise from it to stand for a kill at exactly that point.
FAULT_HOOK: Callable[[str, str], None] | None = None


class WorkdirError(ConfigError):
  """A workdir cannot be used as given; the message names the path and the fix."""


class DamagedFileError(WorkdirError):
  """A workdir file exists but cannot be parsed; the message names it and the fix."""


def fault_point(point: str, filename: str) -> None:
  if FAULT_HOOK is not None:
    FAULT_HOOK(point, filename)


def path(workdir: str, *parts: str) -> str:
  return os.path.join(workdir, *parts)


def is_local(filename: str) -> bool:
  return "://" not in filename


def check_usable(workdir: str) -> None:
  """Raises WorkdirError if a run cannot write to `workdir`; checked before data is prepared.

  Otherwise a path under a file, or in a place that cannot be written, fails only when
  the lock is taken, after the dataset is prepared, with TensorFlow's traceback. A local
  path is probed by creating and removing a directory in its nearest existing ancestor,
  so the check leaves nothing behind (`--dry_run` writes nothing). On `gs://` the first
  write is the check.
  """
  if tf.io.gfile.exists(workdir) and not tf.io.gfile.isdir(workdir):
    raise WorkdirError(f"--workdir={workdir} is a file, not a directory; give a new "
                       "directory (or move the file away)")
  if not is_local(workdir):
    return
  parent = os.path.abspath(workdir)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise WorkdirError(f"--workdir={workdir}: {parent} is a file, not a directory; give a "
                       "path under a directory")
  try:
    os.rmdir(tempfile.mkdtemp(prefix=".tfbackbones-probe-", dir=parent))
  except OSError as e:
    raise WorkdirError(f"--workdir={workdir} cannot be created or written ({parent}: "
                       f"{e.strerror}); give a directory you can write to") from None


# ---------------------------------------------------------------------------- writing
def write_text(filename: str, text: str) -> None:
  """Writes `text` to a temporary name, syncs it, then renames: never half a file.

  The temporary name carries the pid, so two processes never write into one temporary
  file; leftovers of killed writers end in `.tmp` and `clean_leftovers` removes them.
  On a local disk the file and its directory are fsync'ed, so a state that is renamed
  into place is durable before anything it makes obsolete is deleted. (On GCS an object
  appears whole when it is closed; the rename there is copy + delete.)
  """
  tmp = f"{filename}.{os.getpid()}.tmp"
  fault_point("write", filename)
  if is_local(filename):
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    fault_point("rename", filename)
    os.replace(tmp, filename)
    _fsync_dir(os.path.dirname(filename) or ".")
  else:
    with tf.io.gfile.GFile(tmp, "w") as f:
      f.write(text)
    fault_point("rename", filename)
    tf.io.gfile.rename(tmp, filename, overwrite=True)


def _fsync_dir(directory: str) -> None:
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:  # some filesystems cannot sync a directory; the rename still happened
    pass
  finally:
    os.close(fd)


def write_json(filename: str, value: Any) -> None:
  write_text(filename, json.dumps(value, indent=2, sort_keys=True, default=jsonable))


def read_json(filename: str) -> Any | None:
  """The parsed file, None if it does not exist; DamagedFileError if it cannot be parsed."""
  if not tf.io.gfile.exists(filename):
    return None
  try:
    with tf.io.gfile.GFile(filename, "r") as f:
      return json.loads(f.read())
  except (json.JSONDecodeError, UnicodeDecodeError, tf.errors.OpError) as e:
    raise DamagedFileError(f"{filename}: damaged ({type(e).__name__}: {e}); delete it, "
                           "or rerun the same command to heal the run") from None


def move_aside(filename: str) -> str:
  """Renames a damaged file to `<name>.damaged` (kept for inspection); returns the new name."""
  target = filename + DAMAGED
  fault_point("move", filename)
  tf.io.gfile.rename(filename, target, overwrite=True)
  return target


# ---------------------------------------------------------------------------- paths
def relative(workdir: str, filename: str) -> str:
  """`filename` relative to `workdir` (state.json stores these, so a workdir can move)."""
  root = workdir.rstrip("/") + "/"
  return filename[len(root):] if filename.startswith(root) else filename


def resolve(workdir: str, stored: str | None) -> str | None:
  """A path from state.json as a path under `workdir`.

  Relative paths (this version) are joined to the workdir. Absolute ones (older
  versions) are kept if they exist, else re-rooted: `<old>/checkpoints/ckpt-adamw-3`
  becomes `<workdir>/checkpoints/ckpt-adamw-3`, so a moved old workdir resumes too.
  """
  if not stored:
    return None
  if not (os.path.isabs(stored) or "://" in stored):
    return path(workdir, stored)
  if tf.io.gfile.exists(stored + ".index"):
    return stored
  parent, name = os.path.split(stored.rstrip("/"))
  return path(workdir, os.path.basename(parent), name)


# ---------------------------------------------------------------------------- deleting
def remove_checkpoint(prefix: str) -> None:
  """Deletes every file of a tf.train checkpoint written at `prefix`, and its sidecar."""
  for f in tf.io.gfile.glob(prefix + ".*"):
    fault_point("delete", f)
    tf.io.gfile.remove(f)
  _remove_tree(prefix + "_temp")


def _remove_tree(directory: str) -> None:
  if tf.io.gfile.isdir(directory):
    tf.io.gfile.rmtree(directory)


def clean_leftovers(workdir: str) -> list[str]:
  """Removes what killed writers leave behind; returns the names removed.

  `*.tmp` (our JSON writes), `checkpoint.tmp*` (tf.train.CheckpointManager of older
  versions), `<prefix>_temp/` and `*.tempstate*` (tf.train.Checkpoint's sharded save).
  Only call it while holding the workdir's lock: a live writer's temporary file is not
  a leftover.
  """
  removed = []
  for directory in (workdir, path(workdir, CHECKPOINTS), path(workdir, BEST)):
    if not tf.io.gfile.isdir(directory):
      continue
    for name in tf.io.gfile.listdir(directory):
      name = name.rstrip("/")
      full = path(directory, name)
      if name.endswith("_temp") and tf.io.gfile.isdir(full):
        _remove_tree(full)
      elif name.endswith(".tmp") or name.startswith("checkpoint.tmp") or ".tempstate" in name:
        tf.io.gfile.remove(full)
      else:
        continue
      removed.append(relative(workdir, full))
  return removed
