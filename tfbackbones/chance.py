"""How many test images a single-seed gap must exceed before it means anything.

The quickstart ranks backbones by test top-1 of one seed each, on a few hundred test
images. Two models tested on the same images differ only where they disagree, and under
"equally good" each disagreement is a coin flip (McNemar's test): the gap in correct
images then has standard deviation sqrt(D) for D disagreements. The predictions are not
kept, but D cannot exceed the images that at least one model gets wrong, so
z * sqrt(min(n, errors_a + errors_b)) images bounds what chance alone produces at that
confidence. Seed-to-seed variation (other initialisations, other batch orders) comes on
top of this; only more seeds measure it.
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def noise_images(n: int, top1_a: float, top1_b: float, z: float = Z_95) -> int:
  """Gap in correct test images (of `n`) that two equally good models reach by chance.

  Args:
    n: test images, the same for both models.
    top1_a, top1_b: their test top-1 accuracies, fractions in [0, 1].
    z: the normal quantile of the confidence (default two-sided 95%).

  Returns:
    The smallest whole number of images a gap must exceed to be unlikely under chance.
  """
  if n <= 0:
    raise ValueError(f"need test images, got n={n}")
  errors = n * ((1.0 - top1_a) + (1.0 - top1_b))
  disagreements = min(float(n), max(errors, 1.0))
  return math.ceil(z * math.sqrt(disagreements))


def caution(n: int, top1_a: float, top1_b: float) -> str:
  """Two lines on a single-seed ranking of two models: what gap is noise, and the fix."""
  floor = noise_images(n, top1_a, top1_b)
  gap = round(abs(top1_a - top1_b) * n)
  verdict = "within chance" if gap <= floor else "beyond chance for this test set"
  return (f"How sure: one seed, {n} test images; a gap of up to {floor} images "
          f"({floor / n:.1%}) can be chance (95%, McNemar bound).\n  The top two differ by "
          f"{gap} images: {verdict}. Several seeds per backbone (experiments.run --seeds) "
          "also measure seed-to-seed variation.")
