"""Epoch checkpoints that survive kills and damage: how they are written and found again.

Why not `tf.train.CheckpointManager`: it deletes the oldest checkpoint inside `save()`,
before the trainer has rewritten state.json, so with `--keep_checkpoints=1` a kill between
the two left a state pointing at a deleted checkpoint. Here the order of an epoch's end is
fixed, and every step is safe to be killed after (docs/workdir.md):

  1. `checkpoints/ckpt-<phase>-<n>` written (model + optimizer)
  2. `checkpoints/ckpt-<phase>-<n>.state.json` written (the state at that epoch)
  3. `state.json` written (the same state)
  4. checkpoints beyond `keep_checkpoints`, and best weights no kept state needs, deleted.

Every state file is a complete resume point, so a damaged state.json or a damaged newest
checkpoint falls back to the newest intact (state, checkpoint, best weights) triple,
and the log says which one and which epochs are trained again. Paths in state files are
relative to the workdir, so a moved workdir resumes.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable

import tensorflow as tf

from tfbackbones.training import dualopt, events
from tfbackbones.training import workdir as wd

STATE_VERSION = 2
SIDECAR = ".state.json"
_CKPT = re.compile(r"^ckpt-(adamw|sgd)-(\d+)\.(index|state\.json)$")
# What a damaged checkpoint raises when read: bad index, missing or short data file,
# a checkpoint of another model.
_READ_ERRORS = (tf.errors.OpError, AssertionError, ValueError, KeyError, TypeError, IndexError,
                RuntimeError, OSError)


@dataclasses.dataclass
class ResumePoint:
  """One state file and what it points at."""
  source: str               # the state file, relative to the workdir
  state: dict
  schedule: dualopt.DualOptState
  checkpoint: str           # checkpoint prefix (absolute)
  best: str | None       # best weights prefix (absolute)

  @property
  def epoch(self) -> int:
    return self.schedule.epoch


def checkpoint_prefix(ckpt_dir: str, phase: str, epochs_done: int) -> str:
  return wd.path(ckpt_dir, f"ckpt-{phase}-{epochs_done}")


def state_of(workdir: str, *, schedule, checkpoint: str, best_path: str | None,
             history: list, elapsed: float, config: dict) -> dict:
  """The state file's content; paths relative to the workdir."""
  return {"version": STATE_VERSION, "schedule": schedule.to_dict(),
          "checkpoint": wd.relative(workdir, checkpoint),
          "best_path": wd.relative(workdir, best_path) if best_path else None,
          "history": history, "elapsed": elapsed, "config": config}


# ---------------------------------------------------------------------------- writing
def save_epoch(workdir: str, checkpoint: tf.train.Checkpoint, prefix: str, state: dict, *,
               keep: int, is_chief: bool) -> None:
  """Steps 1-4 of the module docstring. Non-chief workers write only their checkpoint."""
  wd.fault_point("checkpoint", prefix)
  checkpoint.write(prefix)
  if not is_chief:  # a private scratch copy: keep the newest `keep`, nothing else to do
    for _, old in _checkpoints_in(prefix.rsplit("/", 1)[0])[:-keep]:
      wd.remove_checkpoint(old)
    return
  wd.write_json(prefix + SIDECAR, state)
  wd.write_json(wd.path(workdir, wd.STATE), state)
  prune(workdir, keep)


def prune(workdir: str, keep: int, newest: int | None = None) -> None:
  """Deletes checkpoints beyond the newest `keep` (and any after epoch `newest`), then
  best weights that no remaining state file needs. Runs only after state.json is durable.
  """
  ckpts = _checkpoints(workdir)
  epochs = sorted({n for n, _ in ckpts if newest is None or n <= newest}, reverse=True)
  kept = set(epochs[:keep])
  for n, prefix in ckpts:
    if n not in kept:
      wd.remove_checkpoint(prefix)
  needed = set()
  for name in _state_files(workdir):
    try:
      state = wd.read_json(wd.path(workdir, name)) or {}
      needed.add(wd.resolve(workdir, state.get("best_path")))
    except (wd.DamagedFileError, AttributeError):
      continue
  best_dir = wd.path(workdir, wd.BEST)
  for index in tf.io.gfile.glob(wd.path(best_dir, "weights-*.index")):
    prefix = index[:-len(".index")]
    if prefix not in needed:
      wd.remove_checkpoint(prefix)


def _checkpoints(workdir: str) -> list[tuple[int, str]]:
  """(epochs done, prefix) of every checkpoint or sidecar in checkpoints/, oldest first."""
  return _checkpoints_in(wd.path(workdir, wd.CHECKPOINTS))


def _checkpoints_in(directory: str) -> list[tuple[int, str]]:
  found = set()
  if tf.io.gfile.isdir(directory):
    for name in tf.io.gfile.listdir(directory):
      match = _CKPT.match(name)
      if match:
        found.add((int(match.group(2)), wd.path(directory, f"ckpt-{match.group(1)}-"
                                                            f"{match.group(2)}")))
  return sorted(found)


def _state_files(workdir: str) -> list[str]:
  """state.json and the checkpoint sidecars, relative to the workdir."""
  names = [wd.STATE] if tf.io.gfile.exists(wd.path(workdir, wd.STATE)) else []
  for _, prefix in _checkpoints(workdir):
    if tf.io.gfile.exists(prefix + SIDECAR):
      names.append(wd.relative(workdir, prefix + SIDECAR))
  return names


# ---------------------------------------------------------------------------- finding
def resume_points(workdir: str) -> tuple[list[ResumePoint], list[str], int]:
  """Every parseable state file, newest first; notes on damaged ones; the newest epoch
  any file in the workdir speaks of (to say what a fallback loses)."""
  points, notes = [], []
  newest = max((n for n, _ in _checkpoints(workdir)), default=0)
  for name in _state_files(workdir):
    try:
      point = _parse(workdir, name)
    except wd.DamagedFileError as e:
      notes.append(str(e).split(";")[0])
      continue
    except (KeyError, TypeError, ValueError, AttributeError) as e:
      notes.append(f"{name}: not a resumable state ({type(e).__name__}: {e})")
      continue
    points.append(point)
    newest = max(newest, point.epoch)
  # Newest first; state.json before the sidecar of the same epoch.
  points.sort(key=lambda p: (-p.epoch, p.source != wd.STATE))
  return points, notes, newest


def _parse(workdir: str, name: str) -> ResumePoint:
  state = wd.read_json(wd.path(workdir, name))
  if not isinstance(state, dict):
    raise TypeError(f"expected a JSON object, found {type(state).__name__}")
  schedule = dualopt.DualOptState.from_dict(state["schedule"])
  history = state["history"]
  if not isinstance(history, list) or len(history) != schedule.epoch:
    raise ValueError(f"history has {len(history) if isinstance(history, list) else '?'} "
                     f"epochs, the schedule {schedule.epoch}")
  checkpoint = wd.resolve(workdir, state["checkpoint"])
  if not checkpoint:
    raise ValueError("no checkpoint")
  float(state["elapsed"])
  return ResumePoint(name, state, schedule, checkpoint,
                     wd.resolve(workdir, state.get("best_path")))


def restore(trainer, log: Callable[[str], None]) -> ResumePoint | None:
  """Restores the newest intact resume point into `trainer`; None to start afresh.

  `trainer` provides `workdir`, `model`, `checkpoint` (after `_set_phase`), `is_chief`,
  `_set_phase(phase)` and `_save_best(epoch)`. Whatever is skipped is said in one line.
  Only the chief repairs files (it holds the workdir's lock).
  """
  workdir = trainer.workdir
  if trainer.is_chief:
    removed = wd.clean_leftovers(workdir)
    if removed:
      logging.info("removed leftovers of a killed run: %s", ", ".join(removed))
  points, notes, newest = resume_points(workdir)
  # Summaries are logged before the checkpoint: the newest step shows epochs done since.
  newest = max(newest, events.last_step(workdir))
  if not points and not notes and _checkpoints(workdir):
    notes.append("checkpoints but no state.json or checkpoint state to resume them with")
  if not points and not notes:
    if trainer.is_chief:
      _start_afresh(workdir)
    return None
  initial = [w.numpy() for w in trainer.model.weights]
  for point in points:
    problem = _try(trainer, point, notes)
    if problem is None:
      if point.source != wd.STATE or notes:
        lost = ("nothing is lost" if newest <= point.epoch else
                f"epoch {newest} is trained again" if newest == point.epoch + 1 else
                f"epochs {point.epoch + 1}-{newest} are trained again")
        log(f"warning: {'; '.join(notes) or 'state.json is behind'}; resuming from "
            f"{wd.relative(workdir, point.checkpoint)} (after epoch {point.epoch}); {lost}")
      if trainer.is_chief:
        _adopt(workdir, point, trainer.config.keep_checkpoints)
      return point
    notes.append(problem)
  trainer.model.set_weights(initial)
  log(f"warning: {workdir} has no intact checkpoint to resume from ({'; '.join(notes)}); "
      "starting again from epoch 1")
  if trainer.is_chief:
    _start_afresh(workdir)
  return None


def _try(trainer, point: ResumePoint, notes: list[str]) -> str | None:
  """Restores best weights (checked) and the checkpoint; a reason if either is damaged.

  Best weights that are gone are taken from the best epoch's own checkpoint when it is
  still kept (saved again as best weights; a note says so).
  """
  workdir = trainer.workdir
  name = wd.relative(workdir, point.checkpoint)
  best = point.best
  if point.schedule.best_epoch >= 0:
    try:
      if not best:
        raise ValueError("no best weights recorded")
      tf.train.Checkpoint(model=trainer.model).read(best).assert_existing_objects_matched()
    except _READ_ERRORS as e:
      best = _best_from_checkpoint(trainer, point)
      if best is None:
        return (f"{point.source}: its best weights {wd.relative(workdir, point.best or '?')} "
                f"are damaged or gone ({_why(e)}) and no checkpoint holds that epoch")
      notes.append(f"best weights {wd.relative(workdir, point.best or '?')} were damaged "
                   f"or gone ({_why(e)}); recovered them from the checkpoint of that epoch")
      point.state["best_path"] = wd.relative(workdir, best)
      point.best = best
  try:
    trainer._set_phase(point.schedule.phase)
    trainer.checkpoint.read(point.checkpoint).assert_existing_objects_matched()
  except _READ_ERRORS as e:
    return f"{name} is damaged or gone ({_why(e)})"
  return None


def _best_from_checkpoint(trainer, point: ResumePoint) -> str | None:
  """The best epoch's weights from its epoch checkpoint, saved again as best weights."""
  for n, prefix in _checkpoints(trainer.workdir):
    if n != point.schedule.best_epoch + 1:
      continue
    try:
      tf.train.Checkpoint(model=trainer.model).read(prefix).expect_partial() \
          .assert_existing_objects_matched()
    except _READ_ERRORS:
      continue
    return trainer._save_best(point.schedule.best_epoch)
  return None


def _why(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def _adopt(workdir: str, point: ResumePoint, keep: int) -> None:
  """Makes the chosen point the workdir's state: state.json rewritten if it was not it,
  later (abandoned) checkpoints and unneeded best weights deleted, TensorBoard events
  after its epoch purged (the redone epochs are logged once)."""
  state_path = wd.path(workdir, wd.STATE)
  try:
    current = wd.read_json(state_path)
  except wd.DamagedFileError:
    wd.move_aside(state_path)
    current = None
  if current != point.state:
    wd.write_json(state_path, point.state)
  prune(workdir, keep, newest=point.epoch)
  events.purge(workdir, keep_through_step=point.epoch)


def _start_afresh(workdir: str) -> None:
  """Nothing resumable: damaged state moved aside, stale weights and events removed."""
  state_path = wd.path(workdir, wd.STATE)
  if tf.io.gfile.exists(state_path):
    wd.move_aside(state_path)
  for _, prefix in _checkpoints(workdir):
    wd.remove_checkpoint(prefix)
  for index in tf.io.gfile.glob(wd.path(workdir, wd.BEST, "weights-*")):
    if tf.io.gfile.isdir(index):
      tf.io.gfile.rmtree(index)
    else:
      tf.io.gfile.remove(index)
  events.purge(workdir, keep_through_step=None)
