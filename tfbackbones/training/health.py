"""Is a run's outcome a result? The trainer's health rules (docs/results.md).

The product answers "this backbone is best for your data", so a run that diverged or
learned nothing must never be counted as a result. Two rules, both decided by the
trainer and written into result.json's `status` and `reason`:

  diverged    a training step's loss, or the weights after a step, are not finite.
              Training stops at once (later steps would only spread NaN); the best
              weights saved so far are kept and the test split is evaluated once on them,
              if there are any. Under mixed_float16 the loss-scale optimizer skips a step
              whose gradients overflow and lowers the scale: that is its normal work, not
              divergence. Such a run diverges only when its weights stop being finite or
              when every step of an epoch overflowed (nothing was learned at all).
  degenerate  the best epoch's validation top-1 is no better than always answering the
              majority class of the validation split: whatever the test number, the
              model has not learned the task (issue 19: a tiny folder trained at 2 steps an
              epoch sat at exactly 1/3 for 20 epochs while its train loss fell). Or the
              test top-1 is not *significantly* better than that rate (one-sided exact
              binomial test at 1%, tfbackbones/significance.py): a best-of-20-epochs
              validation top-1 on 18 images clears the rate by luck alone, and a test
              split too small to tell any score from chance cannot rank anything.

Pure functions of numbers, so they are unit-tested without training anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

# Top-1 this close to the majority rate counts as "no better": the metrics are exact
# ratios of counts, so anything above it is at least one more correct image.
_TOLERANCE = 1e-9


def majority_rate(class_counts: Sequence[int]) -> float | None:
  """The top-1 of always answering the most frequent class; None if there are no images."""
  total = sum(class_counts)
  return max(class_counts) / total if total else None


def degenerate_reason(best_val_top1: float, class_counts: Sequence[int],
                      split: str = "validation") -> str | None:
  """Why a run whose best `split` top-1 is `best_val_top1` is degenerate, or None.

  Args:
    best_val_top1: top-1 (a fraction) of the selected epoch on the selection split.
    class_counts: images per class of that split.
    split: the split's name, for the message.
  """
  rate = majority_rate(class_counts)
  if rate is None:
    return None
  if not math.isfinite(best_val_top1) or best_val_top1 <= rate + _TOLERANCE:
    return (f"the best {split} top-1 ({best_val_top1:.4f}) is no better than always "
            f"answering the majority class ({rate:.4f} of {sum(class_counts)} {split} "
            "images): the model learned nothing usable. On small data see "
            "docs/results.md (steps per epoch, batch size, BatchNorm).")
  return None


def divergence_reason(*, epoch: int, phase: str, learning_rate: float, steps_done: int,
                      nonfinite_steps: int, weights_finite: bool,
                      loss_scaled: bool) -> str | None:
  """Why the epoch so far shows divergence, or None.

  Args:
    epoch: 0-based epoch.
    phase: adamw | sgd.
    learning_rate: the optimizer's learning rate (named in the message: it is the usual
      cause).
    steps_done: steps run so far in this epoch.
    nonfinite_steps: of those, steps whose loss was not finite.
    weights_finite: whether every trainable weight is finite now.
    loss_scaled: a loss-scale optimizer (mixed_float16) skips overflow steps itself.
  """
  where = f"epoch {epoch + 1} ({phase}, learning rate {learning_rate:.3g})"
  if not weights_finite:
    return f"the weights became NaN/inf in {where}; training stopped at once"
  if nonfinite_steps and not loss_scaled:
    return f"the training loss became NaN/inf in {where}; training stopped at once"
  if loss_scaled and steps_done and nonfinite_steps >= steps_done:
    return (f"every step of {where} overflowed even with loss scaling (the loss is "
            "NaN/inf); training stopped")
  return None


def make_weights_check(variables):
  """A compiled `() -> bool tensor`: are all `variables` finite? One call per host trip."""
  @tf.function
  def finite():
    return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))
  return finite
