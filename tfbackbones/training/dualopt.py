"""The paper's DualOpt schedule as a small, pure state machine.

AdamW trains until the selection metric has not improved for `adamw_patience` epochs;
then the best weights are restored and SGD (momentum) trains until it stalls for
`sgd_patience` epochs. Keeping the decision logic free of TensorFlow makes it testable
with scripted metric sequences, checkpointable as JSON, and impossible to get wrong in the
way the reference code did (its CIFAR scripts never reset the counter, so SGD never ran).
"""

from __future__ import annotations

import dataclasses
import math

PHASES = ("adamw", "sgd")


@dataclasses.dataclass
class Decision:
  """What the trainer must do after an epoch."""
  improved: bool
  switch_to_sgd: bool   # restore the best weights, then continue with SGD
  stop: bool
  reason: str = ""


@dataclasses.dataclass
class DualOptState:
  """Schedule state; `to_dict`/`from_dict` round-trip it through a checkpoint."""
  adamw_patience: int
  sgd_patience: int
  max_epochs: int
  phase: str = "adamw"
  epoch: int = 0                      # epochs completed
  best: float = -math.inf
  best_epoch: int = -1                # 0-based epoch whose weights are best
  bad_epochs: int = 0                 # epochs since the last improvement, in this phase
  epochs_per_phase: dict = dataclasses.field(default_factory=lambda: {"adamw": 0, "sgd": 0})
  switch_epoch: int = -1              # first SGD epoch, or -1
  done: bool = False
  stop_reason: str = ""

  @property
  def patience(self) -> int:
    return self.adamw_patience if self.phase == "adamw" else self.sgd_patience

  @property
  def patience_left(self) -> int:
    return self.patience - self.bad_epochs

  def update(self, metric: float) -> Decision:
    """Records one finished epoch's selection metric (higher is better)."""
    if self.done:
      raise RuntimeError("update() after the schedule finished")
    if metric is None or math.isnan(metric):
      raise ValueError(f"selection metric is {metric}; training has diverged")
    self.epochs_per_phase[self.phase] += 1
    self.epoch += 1
    improved = metric > self.best
    if improved:
      self.best, self.best_epoch, self.bad_epochs = float(metric), self.epoch - 1, 0
    else:
      self.bad_epochs += 1
    switch = stop = False
    reason = ""
    if self.bad_epochs >= self.patience:
      if self.phase == "adamw":
        switch, reason = True, f"AdamW stalled for {self.patience} epochs"
        self.phase, self.bad_epochs, self.switch_epoch = "sgd", 0, self.epoch
      else:
        stop, reason = True, f"SGD stalled for {self.patience} epochs"
    if not stop and self.epoch >= self.max_epochs:
      stop, reason = True, f"reached max_epochs={self.max_epochs}"
    if stop:
      self.done, self.stop_reason = True, reason
    return Decision(improved=improved, switch_to_sgd=switch and not stop, stop=stop,
                    reason=reason)

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    if math.isinf(d["best"]):
      d["best"] = None
    return d

  @classmethod
  def from_dict(cls, d: dict) -> DualOptState:
    d = dict(d)
    if d.get("best") is None:
      d["best"] = -math.inf
    return cls(**d)
