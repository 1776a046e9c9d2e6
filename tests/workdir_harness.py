"""A trainer without data: the real Trainer's resume and epoch-end code on a 2x3 model.

Damage and kill tests need hundreds of epoch ends. Here an "epoch" is a deterministic
weight update plus one optimizer step, so each costs milliseconds, while everything a
workdir sees (best weights, checkpoints, state files, pruning, TensorBoard events, the
AdamW->SGD switch) runs through `loop.Trainer` unchanged. The final weights depend on
every epoch's starting weights and optimizer state, so a resume that restores the wrong
checkpoint, wrong best weights or a stale optimizer ends with different numbers.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from helpers import Quiet

from tfbackbones.config import TrainConfig
from tfbackbones.training import loop, summaries
from tfbackbones.training import steps as steps_lib
from tfbackbones.training import workdir as wd

# Selection metric per epoch: improves, stalls (AdamW -> SGD at epoch 4), improves, stalls.
METRICS = [0.1, 0.3, 0.2, 0.25, 0.4, 0.5, 0.45, 0.45, 0.45]


class Kill(BaseException):
  """Stands for SIGKILL: not an Exception, so nothing is written on the way out."""


def bare_trainer(workdir, *, keep: int = 2, max_epochs: int = 8, log=None) -> loop.Trainer:
  cfg = TrainConfig(backbone="bare", dataset="sklearn_digits", workdir=str(workdir),
                    weights="none", keep_checkpoints=keep, max_epochs=max_epochs,
                    adamw_patience=2, sgd_patience=2, fused_kernels=False)
  trainer = loop.Trainer(cfg, log=log or Quiet(),
                         selection_fn=lambda epoch, val: METRICS[epoch])
  trainer.strategy = tf.distribute.get_strategy()
  trainer.is_chief, trainer.precision = True, "float32"
  keras.utils.set_random_seed(0)
  trainer.model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  trainer.global_batch, trainer.steps_per_epoch = 4, 1
  trainer.loss_fn = steps_lib.cross_entropy(2)
  return trainer


EPOCH = [None]   # the epoch a fake_epoch is ending (None while resuming)


def fake_epoch(trainer: loop.Trainer) -> None:
  epoch = EPOCH[0] = trainer.schedule.epoch
  for v in trainer.model.trainable_variables:
    v.assign(v * 0.5 + float(epoch + 1))
  trainer.optimizer.apply_gradients(
      [(tf.ones_like(v), v) for v in trainer.model.trainable_variables])
  trainer._end_epoch(epoch, time.time(), 1.0, 2.0, 0.01,
                     {"top1": METRICS[epoch], "loss": 1.0, "count": 4})


def run(workdir, *, stop_after=None, log=None, **kwargs) -> loop.Trainer:
  """Resumes (or starts) a bare run and trains to the end, or `stop_after` epochs done."""
  trainer = bare_trainer(workdir, log=log, **kwargs)
  EPOCH[0] = None
  trainer._start_or_resume()
  trainer.writer = summaries.RunWriter(trainer.workdir)
  trainer._run_started = time.time()
  try:
    while not trainer.schedule.done and trainer.schedule.epoch != stop_after:
      fake_epoch(trainer)
  finally:
    trainer.writer.close()
  return trainer


def weights(trainer) -> list:
  return [v.numpy().copy() for v in trainer.model.weights]


def best_weights(trainer) -> list:
  trainer._restore_best(trainer.best_path)
  return weights(trainer)


def same(a, b) -> bool:
  return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def history_epochs(workdir) -> list:
  return [h["epoch"] for h in wd.read_json(wd.path(str(workdir), wd.STATE))["history"]]


class KillAt:
  """FAULT_HOOK raising Kill at the n-th fault point of kind `kind` (any kind if None);
  `seen` lists (epoch, point, filename) of the points passed, epoch None while resuming."""

  def __init__(self, n: int, kind=None):
    self.n, self.kind, self.seen, self.fired = n, kind, [], None

  def __call__(self, point, filename):
    if self.kind is None or point == self.kind:
      self.seen.append((EPOCH[0], point, filename))
      if len(self.seen) == self.n + 1:
        self.fired = (point, filename)
        raise Kill(f"{point} {filename}")
