"""The global batch of a run on small data: never so large that an epoch has two steps.

Measured (docs/results.md, "small data"): a 3-class folder of 162 training images at the
default global batch 64 gives 2 steps an epoch; EfficientNetV2-B0 from scratch then sat
at exactly chance on validation for all 20 epochs (40 optimizer steps, BatchNorm's
moving statistics far behind the weights) while its train loss fell. The same run at
batch 16 (10 steps an epoch) learned the task. The paper's batch ("as large as the
accelerator holds") assumes thousands of images; a user's folder of a few hundred needs
more, smaller steps, as timm and Keras users would expect from their defaults.

Rule: unless the user set --batch_size, the global batch is the protocol's, lowered so an
epoch has at least `min_steps_per_epoch` steps (default 10), never below `MIN_BATCH`
(BatchNorm's batch statistics are too noisy below that) and always a multiple of the
replica count. Every paper dataset has >= 1,400 training images, so at batch 64 it is
untouched; only small data changes. Whatever the batch, an epoch of fewer than
`FEW_STEPS` steps is reported in a warning, and such runs re-estimate BatchNorm
statistics before each evaluation (precise_bn.py) unless told not to: measured, that
alone took the same folder at batch 64 from chance to 0.94 validation top-1 by epoch 4.
"""

from __future__ import annotations

MIN_BATCH = 8
FEW_STEPS = 8


def global_batch(num_train: int, requested: int, replicas: int, min_steps: int) -> int:
  """The global batch to train with (see the module docstring).

  Args:
    num_train: training images.
    requested: the config's batch_size (the protocol's, or the user's).
    replicas: replicas in sync; the batch must divide evenly over them.
    min_steps: the fewest steps an epoch should have; 0 keeps `requested` (the user set
      --batch_size).
  """
  if min_steps <= 0 or num_train // requested >= min_steps:
    return requested
  floor = max(MIN_BATCH, replicas)
  batch = max(floor, num_train // min_steps)
  batch = max(replicas, batch // replicas * replicas)
  return min(requested, batch)


def few_steps_warning(num_train: int, batch: int, steps: int,
                      user_batch: bool) -> str | None:
  """A warning line when an epoch has fewer than FEW_STEPS steps, else None."""
  if steps >= FEW_STEPS:
    return None
  better = max(MIN_BATCH, num_train // 10)
  fix = (f"--batch_size={better} (or leave --batch_size unset: the default then keeps "
         "epochs at >= 10 steps)" if user_batch else "more training images")
  return (f"warning: only {steps} step(s) an epoch ({num_train} training images, global "
          f"batch {batch}): BatchNorm statistics and the weights get too few updates and "
          f"small-data runs often stay at chance. BatchNorm statistics are re-estimated "
          f"before each evaluation unless --noprecise_bn. Consider {fix}.")
