"""The float model's noise floor (deploy/stability.py) and the rule that judges an export
against it: the noise is what the docstring says, the measurement is seeded, and it tells
a model that ignores its input from one that flips at a rounding boundary."""

import numpy as np
import pytest

from tfbackbones.deploy import stability


def _images(count=40, seed=3):
  """32 px RGB test images that reach 0 and 255, where the noise must clip."""
  images = np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3)).astype(np.uint8)
  images[:, 0, 0] = 0
  images[:, 0, 1] = 255
  return images


def _dense_model(kernel_first_pixel, bias):
  """A keras model on 32x32x3 uint8 whose two logits read only the first pixel's red value
  (minus 127.5): `kernel_first_pixel` is its weight per class."""
  import keras
  inputs = keras.Input((32, 32, 3))
  x = keras.layers.Rescaling(1.0, offset=-127.5)(inputs)
  x = keras.layers.Flatten()(x)
  dense = keras.layers.Dense(2, activation="softmax")
  model = keras.Model(inputs, dense(x))
  kernel = np.zeros((32 * 32 * 3, 2), np.float32)
  kernel[0] = kernel_first_pixel
  dense.set_weights([kernel, np.asarray(bias, np.float32)])
  return lambda x: model.predict(x, verbose=0)


def test_noise_is_one_grey_level_alike_on_all_channels_and_clipped():
  images = _images()
  seen = []
  def predict(x):
    seen.append(x)
    return np.zeros((len(x), 2))
  stability.measure(predict, images, np.zeros(len(images), int), draws=2, seed=0)
  assert len(seen) == 2
  for x in seen:
    assert x.dtype == np.uint8 and x.shape == images.shape
    diff = x.astype(int) - images.astype(int)
    assert np.abs(diff).max() == 1
    interior = (images > 0) & (images < 255)  # the clipped pixels may differ per channel
    grey = diff[..., :1] * np.ones_like(diff)
    assert np.array_equal(diff[interior.all(-1)], grey[interior.all(-1)])
    # Clipped, not wrapped: 255 + 1 stays 255 (then 2 of 3 draws stay 255), 0 - 1 stays 0.
    assert x[:, 0, 1].min() >= 254 and x[:, 0, 0].max() <= 1
    assert np.mean(x[:, 0, 1] == 255) > 0.5 and np.mean(x[:, 0, 0] == 0) > 0.5
    assert 0.2 < np.mean(diff[interior] == 1) < 0.45  # each of -1, 0, +1 about a third
  assert not np.array_equal(seen[0], seen[1])  # each draw is new noise


def test_a_model_that_ignores_its_input_is_perfectly_stable():
  images = _images()
  predict = _dense_model([0.0, 0.0], [1.0, 0.0])
  record = stability.measure(predict, images, predict(images).argmax(1), draws=3, seed=0)
  assert record["agreements"] == [1.0, 1.0, 1.0]
  assert record["mean"] == record["min"] == 1.0 and record["draws"] == 3


def test_a_model_at_a_rounding_boundary_is_unstable_and_seeded():
  """Red of the first pixel at 128: clean, class 0 (128 - 127.5 > 0); one grey level down
  (a third of the draws), class 1."""
  images = _images()
  images[:, 0, 0] = 128
  predict = _dense_model([1.0, -1.0], [0.0, 0.0])
  reference = predict(images).argmax(1)
  assert (reference == 0).all()
  record = stability.measure(predict, images, reference, draws=3, seed=5)
  assert 0.4 < record["mean"] < 0.9 and record["min"] <= record["mean"] < 1.0
  assert stability.measure(predict, images, reference, draws=3, seed=5) == record
  assert stability.measure(predict, images, reference, draws=0) is None


@pytest.mark.parametrize("agreement, mean, low, verdict", [
    (0.99, 0.80, 0.78, stability.MEETS_TARGET),
    (0.95, 1.00, 1.00, stability.BELOW_FLOAT_NOISE),   # a stable model: any flip is the export's
    (0.93, 0.92, 0.91, stability.WITHIN_FLOAT_NOISE),  # above the model's own agreement
    (0.91, 0.92, 0.91, stability.WITHIN_FLOAT_NOISE),  # as low as its worst noise draw
    # The quickstart's known-bad nearest-rounding INT8 export (float: 90.67%, worst 90%).
    (0.89, 0.9067, 0.90, stability.BELOW_FLOAT_NOISE),
    (0.95, None, None, stability.UNMEASURED),
])
def test_the_verdict_and_its_one_note(agreement, mean, low, verdict):
  measured = None if mean is None else {"mean": mean, "min": low, "images": 100}
  judged = stability.judge(agreement, measured)
  assert judged["verdict"] == verdict
  note = stability.note(agreement, measured, judged)
  if verdict == stability.MEETS_TARGET:
    assert note is None
  else:
    assert f"{agreement:.1%}" in note and "\n" not in note
    assert ("not the quantization" in note) == (verdict == stability.WITHIN_FLOAT_NOISE)
    assert mean is None or f"{mean:.1%}" in note
    assert ("a real quantization error" in note) == (verdict == stability.BELOW_FLOAT_NOISE)
