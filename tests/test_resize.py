"""data/resize.py: the gather form of TF's antialiased bilinear resize gives its pixels."""

import numpy as np
import pytest
import tensorflow as tf

from tfbackbones.data import pipeline
from tfbackbones.data import resize as resize_lib

# (in height, in width, out height, out width): down and up, one axis each way, unit
# sizes, the paper's 224 from a typical 500x375 photo, and a factor past MAX_TAPS (the
# op's branch).
SHAPES = [(375, 500, 224, 224), (375, 500, 96, 96), (100, 80, 224, 224), (33, 47, 32, 32),
          (600, 400, 224, 160), (1, 1, 4, 4), (5, 900, 30, 20), (64, 64, 64, 64),
          (64, 64, 63, 65), (7, 3, 1, 1), (2, 1000, 2, 9), (1200, 900, 96, 96)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gathers_equal_tf_image_resize_bit_for_bit(shape):
  in_h, in_w, out_h, out_w = shape
  image = np.random.default_rng(sum(shape)).integers(0, 256, (in_h, in_w, 3), np.uint8)
  expected = tf.image.resize(image, (out_h, out_w), "bilinear", antialias=True).numpy()
  got = resize_lib.antialiased_bilinear(tf.constant(image), out_h, out_w).numpy()
  assert got.shape == expected.shape == (out_h, out_w, 3)
  np.testing.assert_array_equal(got, expected)


def test_both_branches_run_and_agree_in_a_graph_with_unknown_shapes():
  """In tf.data the input shape is unknown; the branch is chosen per image."""
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 256, s, np.uint8) for s in ((120, 100, 3), (2000, 90, 3))]
  ds = tf.data.Dataset.from_generator(lambda: iter(images), output_signature=tf.TensorSpec(
      (None, None, 3), tf.uint8)).map(lambda x: resize_lib.antialiased_bilinear(x, 48, 40))
  for image, got in zip(images, ds.as_numpy_iterator(), strict=True):
    np.testing.assert_array_equal(
        got, tf.image.resize(image, (48, 40), "bilinear", antialias=True).numpy())
  # The second image's 2000 -> 48 rows is past MAX_TAPS: it took the op's branch.
  taps = lambda n, out: int(2 * n / out) + 1  # noqa: E731
  assert taps(2000, 48) > resize_lib.MAX_TAPS >= max(taps(120, 48), taps(100, 40))


def test_the_taps_are_no_more_than_the_spans_need():
  """Too few taps would drop source pixels (the bit-equality tests catch that); too many
  would only cost time: for 375 -> 224 every one of the 4 carries weight somewhere."""
  sources, weights, taps = resize_lib._spans(tf.constant(375), 224)
  assert int(taps) == 4 and float(tf.reduce_min(tf.reduce_sum(weights, 1))) > 0.999
  # Every tap carries weight somewhere: none of the four is padding.
  assert float(tf.reduce_min(tf.reduce_max(weights, axis=0))) > 0.0
  assert sources.shape == (224, 4)


def test_resize_uint8_is_the_rounded_gather_form():
  image = np.random.default_rng(2).integers(0, 256, (120, 90, 3), np.uint8)
  expected = np.clip(np.round(tf.image.resize(image, (32, 48), antialias=True).numpy()),
                     0, 255).astype(np.uint8)
  np.testing.assert_array_equal(pipeline.resize_uint8(image, (32, 48)).numpy(), expected)


def test_a_channel_count_unknown_at_trace_time_is_refused():
  fn = tf.function(lambda x: resize_lib.antialiased_bilinear(x, 8, 8),
                   input_signature=[tf.TensorSpec((None, None, None), tf.uint8)])
  with pytest.raises(ValueError, match="static channel count"):
    fn.get_concrete_function()
