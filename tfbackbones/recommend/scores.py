"""Transferability scores: how well frozen features predict the labels, without fine-tuning.

Each score takes a feature matrix `(N, D)` (one row per image, from one forward pass of
a frozen backbone) and integer labels `(N,)`; higher is better for all of them. They are
cheap proxies for the accuracy a backbone reaches when fine-tuned; the validation
harness (experiments/validate_recommend.py) measures how good a proxy each one is.

* `logme`: LogME (You et al., ICML 2021; the fixed-point solver of "Ranking and Tuning
  Pre-trained Models", JMLR 2022): the log marginal evidence of a Bayesian linear
  regression from features to each one-hot label column, per example, averaged over
  classes. It needs no hyper-parameter: the prior and noise precisions are fitted.
* `knn_loo_accuracy`: leave-one-out k-nearest-neighbour accuracy under cosine
  similarity: does the feature space already cluster the classes?
* `linear_probe`: multinomial logistic regression on standardised features, its
  regularisation chosen on a held-out split; the score is that split's accuracy.

Pure NumPy / scikit-learn: no TensorFlow, so the scores are testable in milliseconds.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

# The fixed-point iteration converges in 2-3 steps in practice; the published code caps it
# at 11 and stops when alpha/beta moves by less than 0.1%.
_LOGME_MAX_ITERS = 11
_LOGME_TOL = 1e-3
_EPS = 1e-5


def _thin_svd(f: np.ndarray):
  """Thin SVD of `f` (N, D): (u (N,k), s (k,), vh (k,D) or None), as published LogME has it.

  With N > D it goes through the (D, D) Gram matrix and keeps the singular values above
  1e-10; with N <= D through the (N, N) one, keeping all N. (Symmetric eigensolvers on
  the Gram matrices: the same values as the published SVDs, several times faster.) The
  published solver then sums log(alpha + beta s²) over these k values only, not over all
  D (the exact evidence has (D - k) more log(alpha) terms); we keep that so that our
  scores are the published LogME, comparable with the literature's numbers.
  """
  n, d = f.shape
  if n > d:
    eigenvalues, v = np.linalg.eigh(f.T @ f)
    order = np.argsort(eigenvalues)[::-1]
    s = np.sqrt(np.maximum(eigenvalues[order], 0.0))
    vh = v[:, order].T
    keep = s > 1e-10
    s, vh = s[keep], vh[keep]
    u = (f @ vh.T) / s
    return u, s, vh
  # As published, all N = min(N, D) singular values are kept here, zeros included. Only u
  # and s are needed, and the (N, N) Gram matrix gives both far faster than an SVD of the
  # wide (N, D) matrix (seconds instead of tens of seconds for 800 x 2048 features);
  # the evidence does not depend on the basis chosen for a zero singular value.
  eigenvalues, u = np.linalg.eigh(f @ f.T)
  order = np.argsort(eigenvalues)[::-1]
  s = np.sqrt(np.maximum(eigenvalues[order], 0.0))
  return u[:, order], s, None


@dataclasses.dataclass
class Evidence:
  """LogME's result for one label column: evidence per example and the fitted precisions."""
  evidence: float
  alpha: float
  beta: float


def logme_column(u: np.ndarray, s: np.ndarray, y: np.ndarray, dim: int) -> Evidence:
  """Maximises the evidence of y ~ N(f w, 1/beta), w ~ N(0, 1/alpha) over alpha, beta.

  Works in the SVD basis of the features, where the posterior covariance is diagonal:
  with x = uᵀy and sigma = s², the posterior mean has squared norm
  m2 = Σ sigma x² / (t + sigma)² and the residual is res2 = Σ x² t² / (t + sigma)² +
  (|y|² − |x|²), t = alpha / beta. MacKay's updates alpha = gamma / m2,
  beta = (N − gamma) / res2, gamma = Σ sigma / (t + sigma), are iterated to a fixed point.

  Args:
    u: (N, k) left singular vectors of the feature matrix.
    s: (k,) its non-zero singular values.
    y: (N,) one real-valued target column (a one-hot class indicator here).
    dim: D, the feature dimension (the prior is over D weights, not k).

  Returns:
    The evidence divided by N, and the final alpha and beta.
  """
  n = y.shape[0]
  sigma = s ** 2
  x = u.T @ y
  x2 = x ** 2
  res_x2 = float(y @ y - x2.sum())  # the part of y outside the feature span
  alpha, beta = 1.0, 1.0
  for _ in range(_LOGME_MAX_ITERS):
    t = alpha / beta
    gamma = float((sigma / (sigma + t)).sum())
    m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
    res2 = float((x2 / (1.0 + sigma / t) ** 2).sum() + res_x2)
    alpha = gamma / (m2 + _EPS)
    beta = (n - gamma) / (res2 + _EPS)
    if abs(alpha / beta - t) / t <= _LOGME_TOL:
      break
  evidence = (dim / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta)
              - 0.5 * float(np.sum(np.log(alpha + beta * sigma)))
              - beta / 2.0 * res2 - alpha / 2.0 * m2 - n / 2.0 * np.log(2 * np.pi))
  return Evidence(evidence=float(evidence / n), alpha=float(alpha), beta=float(beta))


def logme(features: np.ndarray, labels: np.ndarray) -> float:
  """LogME of a feature matrix for a classification task (mean over classes).

  Note the evidence is NOT invariant to a rescaling of the features: like the published
  code, we use the features as the backbone returns them (pooled), which is what makes
  LogME comparable across backbones in its paper.

  Args:
    features: (N, D) real features.
    labels: (N,) integer class ids in [0, C).

  Returns:
    The LogME score (higher = features explain the labels better).
  """
  f = np.asarray(features, np.float64)
  labels = np.asarray(labels).reshape(-1)
  if f.ndim != 2 or f.shape[0] != labels.shape[0]:
    raise ValueError(f"features {f.shape} and labels {labels.shape} do not match")
  u, s, _ = _thin_svd(f)
  num_classes = int(labels.max()) + 1
  columns = [logme_column(u, s, (labels == c).astype(np.float64), f.shape[1])
             for c in range(num_classes)]
  return float(np.mean([c.evidence for c in columns]))


def knn_loo_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
  """Leave-one-out k-NN accuracy under cosine similarity.

  Each example is classified by a vote of its k most similar *other* examples; a tied
  vote goes to the tied class with the larger summed similarity. Cosine (not Euclidean)
  distance because feature norms vary wildly across backbones and layers.

  Args:
    features: (N, D) features, N >= 2.
    labels: (N,) integer labels.
    k: neighbours (capped at N - 1).

  Returns:
    The fraction of examples whose vote matches their label.
  """
  f = np.asarray(features, np.float64)
  labels = np.asarray(labels).reshape(-1)
  n = f.shape[0]
  if n < 2:
    raise ValueError("leave-one-out needs at least 2 examples")
  k = max(1, min(k, n - 1))
  norms = np.linalg.norm(f, axis=1, keepdims=True)
  f = f / np.maximum(norms, 1e-12)
  sim = f @ f.T
  np.fill_diagonal(sim, -np.inf)
  neighbours = np.argsort(-sim, axis=1, kind="stable")[:, :k]
  num_classes = int(labels.max()) + 1
  hits = 0
  for i in range(n):
    votes = np.zeros(num_classes)
    weight = np.zeros(num_classes)
    for j in neighbours[i]:
      votes[labels[j]] += 1
      weight[labels[j]] += sim[i, j]
    best = np.flatnonzero(votes == votes.max())
    predicted = best[np.argmax(weight[best])]
    hits += int(predicted == labels[i])
  return hits / n


PROBE_CS = (0.01, 0.1, 1.0, 10.0)


@dataclasses.dataclass
class ProbeResult:
  """The linear probe: held-out accuracy of the best regularisation, and which it was."""
  accuracy: float
  c: float
  accuracies: dict


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                 val_y: np.ndarray, cs=PROBE_CS, seed: int = 0) -> ProbeResult:
  """Logistic regression on the train features, C selected by accuracy on val.

  Features are standardised with the train statistics (backbones' feature scales differ
  by orders of magnitude, and one C grid must suit all). Selecting and reporting on the
  same val split flatters the probe slightly, equally for every candidate.

  Args:
    train_x, train_y: training features (N, D) and labels.
    val_x, val_y: held-out features and labels.
    cs: inverse regularisation strengths to try.
    seed: for the solver.

  Returns:
    The best val accuracy, its C, and every C's accuracy.
  """
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.linear_model import LogisticRegression
  from sklearn.preprocessing import StandardScaler
  scaler = StandardScaler().fit(train_x)
  tx, vx = scaler.transform(train_x), scaler.transform(val_x)
  accuracies = {}
  if len(np.unique(train_y)) < 2:
    raise ValueError("the linear probe needs at least 2 classes in its training sample")
  # One model, C from strong to weak regularisation, each fit starting from the previous
  # solution (warm start): the weakly regularised fits, slow from scratch, then take a
  # few iterations.
  model = LogisticRegression(max_iter=300, random_state=seed, warm_start=True)
  for c in sorted(cs):
    model.set_params(C=c)
    with warnings.catch_warnings():  # an unconverged weak-prior fit is still a probe
      warnings.simplefilter("ignore", ConvergenceWarning)
      model.fit(tx, train_y)
    accuracies[float(c)] = float(np.mean(model.predict(vx) == np.asarray(val_y)))
  best = max(accuracies, key=lambda c: (accuracies[c], -c))  # ties: the stronger prior
  return ProbeResult(accuracy=accuracies[best], c=best, accuracies=accuracies)
