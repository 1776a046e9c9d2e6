"""Scores and rank helpers of `tfbackbones.recommend` on tiny, hand-checkable matrices."""

import numpy as np
import pytest

from tfbackbones.recommend import rank, scores

# Three small problems: N > D (the Gram-matrix SVD path), N < D (the plain SVD path, where
# the published solver keeps zero singular values), and a larger N > D one.
F1 = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.8], [0.5, 0.5], [0.2, 0.9]])
Y1 = np.array([0, 0, 1, 1, 0, 1])
_RNG = np.random.default_rng(0)
F2 = _RNG.normal(size=(8, 12))
Y2 = np.array([0, 1, 2, 0, 1, 2, 0, 1])
F3 = _RNG.normal(size=(40, 5))
Y3 = (F3[:, 0] > 0).astype(int)

# LogME of F1..F3 as computed by the published fixed-point solver (thuml/LogME, LogME.py,
# `_fit_fixed_point`, run unchanged in float64 on these arrays on 2026-11-29).
REFERENCE = [(F1, Y1, -0.5693518920997382), (F2, Y2, 0.5205436900294926),
             (F3, Y3, -0.944393269269817)]


@pytest.mark.parametrize("f,y,expected", REFERENCE)
def test_logme_matches_the_published_solver(f, y, expected):
  assert scores.logme(f, y) == pytest.approx(expected, abs=1e-9)


def _evidence(f, y, alpha, beta):
  """log p(y | F, alpha, beta) / N, straight from the Gaussian formula (full matrices)."""
  n, d = f.shape
  a = alpha * np.eye(d) + beta * f.T @ f
  m = beta * np.linalg.solve(a, f.T @ y)
  return (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.linalg.slogdet(a)[1]
          - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m
          - n / 2 * np.log(2 * np.pi)) / n


def test_logme_column_maximises_the_evidence():
  # Independent of the reference code: with N > D and full rank the solver's evidence is
  # the exact Gaussian evidence, and its (alpha, beta) is the maximum over a grid.
  u, s, _ = scores._thin_svd(F3)
  y = (Y3 == 1).astype(float)
  best = scores.logme_column(u, s, y, F3.shape[1])
  assert best.evidence == pytest.approx(_evidence(F3, y, best.alpha, best.beta), abs=2e-3)
  grid = [(best.alpha * a, best.beta * b) for a in (0.25, 0.5, 2, 4) for b in (0.5, 2)]
  assert all(_evidence(F3, y, a, b) < best.evidence for a, b in grid)


def test_logme_prefers_features_that_separate_the_classes():
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(4), 25)
  informative = np.eye(4)[labels] * 3 + rng.normal(0, 0.3, (100, 4))
  noise = rng.normal(0, 1, (100, 4))
  assert scores.logme(informative, labels) > scores.logme(noise, labels) + 0.5


def test_knn_loo_accuracy_by_hand():
  # Cosine neighbours, worked out by hand: A<->B are each other's nearest; E (class 0)
  # sits between C and D (class 1), so C and D pick E, and E picks D: 2 of 5 right.
  f = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [0.05, 1]])
  y = np.array([0, 0, 1, 1, 0])
  assert scores.knn_loo_accuracy(f, y, k=1) == pytest.approx(2 / 5)
  # Without E every point's nearest neighbour shares its class.
  assert scores.knn_loo_accuracy(f[:4], y[:4], k=1) == 1.0


def test_knn_tied_vote_goes_to_the_more_similar_class():
  # k=2 and two classes: every vote is 1-1. Q and X are each other's nearest (class 1);
  # Y's nearest is Q (class 1), so only Y is wrong: 2/3. (Ties to the lower class id
  # would give 1/3.)
  f = np.array([[1, 0], [1, 0.5], [1, -0.8]])
  y = np.array([1, 1, 0])
  assert scores.knn_loo_accuracy(f, y, k=2) == pytest.approx(2 / 3)


def test_knn_is_scale_invariant_per_example():
  rng = np.random.default_rng(2)
  f = rng.normal(size=(30, 6))
  y = rng.integers(0, 3, 30)
  scaled = f * rng.uniform(0.1, 10, (30, 1))
  assert scores.knn_loo_accuracy(f, y) == scores.knn_loo_accuracy(scaled, y)


def test_linear_probe_selects_on_val():
  rng = np.random.default_rng(3)
  y = np.repeat(np.arange(3), 20)
  x = np.eye(3)[y] * 2 + rng.normal(0, 0.5, (60, 3))
  result = scores.linear_probe(x[::2], y[::2], x[1::2], y[1::2])
  assert result.accuracy == max(result.accuracies.values()) > 0.9
  assert set(result.accuracies) == set(scores.PROBE_CS)
  noise = rng.normal(size=(60, 3))
  chance = scores.linear_probe(noise[::2], y[::2], noise[1::2], y[1::2])
  assert chance.accuracy < 0.7


def test_ranks_and_mean_rank():
  assert list(rank.ranks([0.3, 0.1, 0.2])) == [1, 3, 2]
  assert list(rank.ranks([1.0, 1.0, 0.0])) == [1.5, 1.5, 3]
  table = {"a": [3, 2, 1], "b": [1, 3, 2]}
  assert list(rank.mean_rank(table)) == [2.0, 1.5, 2.5]


def test_kendall_tau_by_hand():
  # Pairs (1,2) and (1,3) concordant, (2,3) discordant: (2 - 1) / 3.
  assert rank.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
  assert np.isnan(rank.kendall_tau([1, 1, 1], [1, 2, 3]))
  assert rank.weighted_tau([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
  assert rank.weighted_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
  # A swap at the top costs more than the same swap at the bottom.
  top = rank.weighted_tau([4, 3, 2, 1], [3, 4, 2, 1])
  bottom = rank.weighted_tau([4, 3, 2, 1], [4, 3, 1, 2])
  assert top < bottom < 1.0
