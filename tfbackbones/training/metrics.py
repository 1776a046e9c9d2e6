"""Per-sample classification metrics from accumulated sums and a confusion matrix.

The device accumulates sums (loss, top-5 hits, a confusion matrix) over the whole split,
weighted so that padding counts for nothing; the host turns them into rates once. This is
exact per-sample averaging — unlike the reference code, which averaged per batch — and
needs one device-to-host transfer per evaluation.
"""

from __future__ import annotations

import numpy as np


def from_sums(loss_sum: float, top5_hits: float, confusion: np.ndarray) -> dict:
  """Returns loss, top1, top5, balanced_accuracy, macro_f1 and count.

  Args:
    loss_sum: sum of per-example cross-entropy over real examples.
    top5_hits: number of real examples whose label is in the top 5 logits.
    confusion: (C, C) counts, rows = true class, columns = predicted class.
  """
  confusion = np.asarray(confusion, dtype=np.float64)
  count = confusion.sum()
  if count <= 0:
    raise ValueError("no examples were evaluated")
  true_per_class = confusion.sum(axis=1)
  pred_per_class = confusion.sum(axis=0)
  hits = np.diag(confusion)
  present = true_per_class > 0
  recall = np.divide(hits, true_per_class, out=np.zeros_like(hits), where=present)
  precision = np.divide(hits, pred_per_class, out=np.zeros_like(hits),
                        where=pred_per_class > 0)
  denom = precision + recall
  f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(hits), where=denom > 0)
  num_classes = confusion.shape[0]
  out = {
      "loss": float(loss_sum / count),
      "top1": float(hits.sum() / count),
      # Averaged over classes present in the split (sklearn's convention).
      "balanced_accuracy": float(recall[present].mean()),
      # Over classes that are true or predicted at least once (sklearn's "macro").
      "macro_f1": float(f1[(true_per_class + pred_per_class) > 0].mean()),
      "count": int(count),
  }
  if num_classes > 5:
    out["top5"] = float(top5_hits / count)
  return out
