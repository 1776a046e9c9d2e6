"""The single-seed noise floor of tfbackbones/chance.py, checked against simulation."""

import numpy as np
import pytest

from tfbackbones import chance


def test_noise_images_known_values():
  # 359 test images (the quickstart's), both at 97%: 21.5 possible disagreements.
  assert chance.noise_images(359, 0.97, 0.97) == 10
  # Disagreements cannot exceed the test set: 1.96 * sqrt(100) -> 20.
  assert chance.noise_images(100, 0.1, 0.1) == 20
  # Perfect models still get one image of slack, never zero.
  assert chance.noise_images(359, 1.0, 1.0) == 2
  with pytest.raises(ValueError):
    chance.noise_images(0, 0.5, 0.5)


@pytest.mark.parametrize("accuracy,overlap", [(0.97, 0.0), (0.8, 0.0), (0.8, 0.5)])
def test_equally_good_models_exceed_the_floor_rarely(accuracy, overlap):
  """Two models with the same true accuracy: the observed gap passes the floor <= ~5%.

  Disjoint errors (overlap 0) are the worst case the bound is built for; shared errors
  make disagreements fewer, so the floor is conservative there.
  """
  rng = np.random.default_rng(0)
  n, trials, exceed = 359, 4000, 0
  for _ in range(trials):
    hard = rng.random(n) < (1 - accuracy) * overlap  # both wrong on these
    wrong_a = hard | (rng.random(n) < (1 - accuracy) * (1 - overlap))
    wrong_b = hard | (rng.random(n) < (1 - accuracy) * (1 - overlap))
    a, b = 1 - wrong_a.mean(), 1 - wrong_b.mean()
    gap = abs(int(wrong_a.sum()) - int(wrong_b.sum()))
    exceed += gap > chance.noise_images(n, a, b)
  assert exceed / trials <= 0.06


def test_a_real_gap_is_reported_beyond_chance():
  line = chance.caution(359, 0.99, 0.80)
  assert "beyond chance" in line and "359 test images" in line
  assert "within chance" in chance.caution(359, 0.97, 0.96)
