"""Combining scores into one ranking, and measuring how well rankings agree.

Scores live on different scales (LogME is a log-evidence per example, kNN and the probe
are accuracies), so they are combined by rank, not by value: each candidate's combined
rank is its mean rank over the scores (1 = best, ties share the average rank). The
agreement between two scores is Kendall's tau over the candidates; the validation harness
uses the same functions against fine-tuned accuracies.
"""

from __future__ import annotations

import math

import numpy as np


def ranks(values) -> np.ndarray:
  """Rank of each value, 1 = largest; ties get the mean of the ranks they span."""
  from scipy.stats import rankdata
  return rankdata(-np.asarray(values, np.float64), method="average")


def mean_rank(table: dict) -> np.ndarray:
  """table: score name -> values per candidate (higher is better). Returns mean ranks."""
  return np.mean([ranks(v) for v in table.values()], axis=0)


def kendall_tau(a, b) -> float:
  """Kendall's tau-b between two score lists (nan with < 2 candidates or no variance)."""
  from scipy.stats import kendalltau
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
    return float("nan")
  return float(kendalltau(a, b).statistic)


def weighted_tau(truth, predicted) -> float:
  """Weighted Kendall tau (hyperbolic weights, as in the LogME paper): swaps among the
  truly best candidates count more than swaps among the worst."""
  from scipy.stats import weightedtau
  truth, predicted = np.asarray(truth, np.float64), np.asarray(predicted, np.float64)
  if len(truth) < 2 or np.all(truth == truth[0]) or np.all(predicted == predicted[0]):
    return float("nan")
  return float(weightedtau(truth, predicted).statistic)


def agreement(table: dict) -> dict:
  """Kendall tau between every pair of scores: {"logme~knn": tau, ...}."""
  names = list(table)
  return {f"{a}~{b}": kendall_tau(table[a], table[b])
          for i, a in enumerate(names) for b in names[i + 1:]}


def fmt(value: float, digits: int = 2) -> str:
  return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else \
      f"{value:.{digits}f}"
