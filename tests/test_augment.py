"""Tests of TrivialAugmentWide (tfbackbones.data.augment).

The reference code applied torchvision's TrivialAugmentWide to PIL images, so Pillow is
the oracle for the colour ops; the geometric ops are checked against Pillow's affine /
rotate and against closed-form index maps derived from torchvision's tensor geometry.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from tfbackbones.data import augment

OPS = augment.OPS
COLOUR_OPS = ("Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
              "AutoContrast", "Equalize")


def _random_image(seed: int, shape=(32, 32, 3)) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _test_images() -> list:
  """Full-range noise, a low-contrast patch and a smooth gradient (structure matters for
  Sharpness, Equalize and AutoContrast; noise alone would hide some mistakes)."""
  rng = np.random.default_rng(7)
  low = rng.integers(60, 110, (32, 32, 3), dtype=np.uint8)
  yy, xx = np.mgrid[0:64, 0:64]
  grad = np.stack([(xx * 4) % 256, (yy * 3) % 256, (xx + yy) % 256], -1).astype(np.uint8)
  return [_random_image(0), low, grad]


# One compiled apply_op per image shape for all graph-mode checks: op index and magnitude
# are tensors, so each traces once rather than once per (op, magnitude).
_GRAPH_FNS = {}


def _apply(image, name, magnitude) -> np.ndarray:
  fn = _GRAPH_FNS.setdefault(image.shape, tf.function(augment.apply_op))
  return fn(tf.constant(image), tf.constant(OPS.index(name)),
            tf.constant(magnitude, tf.float32)).numpy()


def _signed_magnitudes(name: str) -> list:
  """A few bins of the op's space, with both signs for signed ops."""
  bins = augment.magnitude_bins(name)
  picked = [float(bins[i]) for i in sorted({0, len(bins) // 4, len(bins) // 2, len(bins) - 1})
            if i < len(bins)]
  if name in augment.SIGNED_OPS:
    picked += [-m for m in picked if m]
  return picked


# ----------------------------------------------------------------------------------------
# 1. Eager == tf.function == tf.data.


def _op_cases():
  cases = []
  for name in OPS:
    bins = augment.magnitude_bins(name)
    m = float(bins[2 * len(bins) // 3])
    cases.append((name, m))
    if name in augment.SIGNED_OPS:
      cases.append((name, -m))
  return cases


@pytest.fixture(scope="module")
def graph_results():
  """Every case run once through tf.function and once through Dataset.map."""
  image = _random_image(1, (32, 48, 3))  # non-square: catches swapped height/width
  cases = _op_cases()
  indices = tf.constant([OPS.index(n) for n, _ in cases], tf.int32)
  mags = tf.constant([m for _, m in cases], tf.float32)
  fn = tf.function(augment.apply_op)
  in_function = [fn(tf.constant(image), i, m).numpy() for i, m in zip(indices, mags)]
  ds = tf.data.Dataset.from_tensor_slices((indices, mags)).map(
      lambda i, m: augment.apply_op(tf.constant(image), i, m),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  in_dataset = list(ds.as_numpy_iterator())
  return image, cases, in_function, in_dataset


@pytest.mark.parametrize("case", range(len(_op_cases())),
                         ids=[f"{n}{m:+g}" for n, m in _op_cases()])
def test_op_same_eager_function_and_dataset(graph_results, case):
  image, cases, in_function, in_dataset = graph_results
  name, m = cases[case]
  eager = augment.apply_op(image, OPS.index(name), m).numpy()
  assert eager.dtype == np.uint8 and eager.shape == image.shape
  np.testing.assert_array_equal(eager, in_function[case])
  np.testing.assert_array_equal(eager, in_dataset[case])
  if name != "Identity" and name != "AutoContrast":  # noise is already full-range
    assert not np.array_equal(eager, image), f"{name}({m}) left the image unchanged"


def test_trivial_augment_same_eager_function_and_dataset():
  image = _random_image(2)
  seeds = np.stack([np.arange(40), np.full(40, 11)], 1).astype(np.int32)
  eager = np.stack([augment.trivial_augment(tf.constant(image), s).numpy() for s in seeds])
  fn = tf.function(augment.trivial_augment)
  graph = np.stack([fn(tf.constant(image), tf.constant(s)).numpy() for s in seeds])
  ds = tf.data.Dataset.from_tensor_slices(seeds).map(
      lambda s: augment.trivial_augment(tf.constant(image), s),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  np.testing.assert_array_equal(eager, graph)
  np.testing.assert_array_equal(eager, np.stack(list(ds.as_numpy_iterator())))


# ----------------------------------------------------------------------------------------
# 2. Colour ops against Pillow (the path the reference code ran).


def _pillow(name: str, image: np.ndarray, magnitude: float) -> np.ndarray:
  pil = Image.fromarray(image)
  enhancers = {"Brightness": ImageEnhance.Brightness, "Color": ImageEnhance.Color,
               "Contrast": ImageEnhance.Contrast, "Sharpness": ImageEnhance.Sharpness}
  if name in enhancers:  # torchvision: factor = 1 + magnitude
    out = enhancers[name](pil).enhance(1.0 + magnitude)
  elif name == "Posterize":
    out = ImageOps.posterize(pil, int(magnitude))
  elif name == "Solarize":
    out = ImageOps.solarize(pil, magnitude)
  elif name == "AutoContrast":
    out = ImageOps.autocontrast(pil)
  elif name == "Equalize":
    out = ImageOps.equalize(pil)
  else:
    raise ValueError(name)
  return np.asarray(out)


@pytest.mark.parametrize("name", COLOUR_OPS)
def test_colour_op_matches_pillow(name):
  for image in _test_images():
    for m in _signed_magnitudes(name):
      ours = _apply(image, name, m).astype(int)
      ref = _pillow(name, image, m).astype(int)
      diff = np.abs(ours - ref).max()
      assert diff <= 1, f"{name}({m}) differs from Pillow by {diff}"
      # Same arithmetic as Pillow (rounded grey, rounded mean, float blend), so off-by-one
      # values should be rare float-order accidents, not a systematic rounding offset.
      assert np.mean(ours != ref) < 0.01, f"{name}({m}) often off by one"


@pytest.mark.parametrize("name", ["AutoContrast", "Equalize"])
def test_histogram_ops_edge_cases_match_pillow(name):
  """Constant channels (step 0 / zero range) and two-level images hit the special cases."""
  rng = np.random.default_rng(3)
  const = np.zeros((32, 32, 3), np.uint8) + np.array([0, 77, 255], np.uint8)
  two = rng.choice(np.array([10, 200], np.uint8), (32, 32, 3))
  skew = np.where(rng.random((32, 32, 3)) < 0.97, 40, rng.integers(0, 256, (32, 32, 3)))
  for image in (const, two, skew.astype(np.uint8)):
    np.testing.assert_array_equal(_apply(image, name, 0.0), _pillow(name, image, 0.0))


def test_solarize_threshold_255_inverts_only_white():
  image = np.array([[[0, 254, 255]]], np.uint8)
  np.testing.assert_array_equal(_apply(image, "Solarize", 255.0), [[[0, 254, 0]]])


def test_posterize_keeps_top_bits():
  image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)
  for bits in range(2, 9):
    keep = 0xFF & ~((1 << (8 - bits)) - 1)
    np.testing.assert_array_equal(_apply(image, "Posterize", float(bits)), image & keep)


# ----------------------------------------------------------------------------------------
# 3. Geometric ops.


def _index_map(image: np.ndarray, src_x: np.ndarray, src_y: np.ndarray) -> np.ndarray:
  """out[y, x] = image[src_y, src_x] (already rounded), 0 outside the image."""
  h, w = image.shape[:2]
  valid = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
  out = np.zeros_like(image)
  out[valid] = image[src_y[valid], src_x[valid]]
  return out


def _mismatch(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.mean(np.any(a != b, axis=-1)))


def test_identity_is_exact():
  image = _random_image(4, (32, 48, 3))
  np.testing.assert_array_equal(_apply(image, "Identity", 0.0), image)


def test_rotate_90_is_rot90_counter_clockwise():
  image = _random_image(5)  # square, even side: no rounding ties at 90 degrees
  np.testing.assert_array_equal(_apply(image, "Rotate", 90.0), np.rot90(image, 1))
  np.testing.assert_array_equal(_apply(image, "Rotate", -90.0), np.rot90(image, -1))
  odd = _random_image(6, (33, 33, 3))
  np.testing.assert_array_equal(_apply(odd, "Rotate", 90.0), np.rot90(odd, 1))


@pytest.mark.parametrize("angle", [31.5, -67.5, 135.0])
def test_rotate_matches_centre_rotation(angle):
  """torchvision's tensor rotate: centre-relative pixel centres, positive = CCW (y down),
  nearest; Pillow's rotate (the PIL path) agrees up to rounding ties.

  At 45/135 degrees the pixels on one diagonal land exactly half-way between source
  pixels; TF rounds those half away from zero, torch half to even, Pillow half up, so up
  to one diagonal (~2% of a 32x48 image) may differ.
  """
  image = _random_image(7, (32, 48, 3))
  h, w = image.shape[:2]
  ours = _apply(image, "Rotate", angle)
  t = math.radians(angle)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  xc, yc = xx - (w - 1) / 2, yy - (h - 1) / 2
  src_x = np.rint(math.cos(t) * xc - math.sin(t) * yc + (w - 1) / 2).astype(int)
  src_y = np.rint(math.sin(t) * xc + math.cos(t) * yc + (h - 1) / 2).astype(int)
  assert _mismatch(ours, _index_map(image, src_x, src_y)) < 0.03
  pil = np.asarray(Image.fromarray(image).rotate(angle, Image.Resampling.NEAREST))
  assert _mismatch(ours, pil) < 0.03


@pytest.mark.parametrize("k", [5.0, 16.0, 32.0, -9.0])
def test_translate_x_shifts_right_with_zero_fill(k):
  image = _random_image(8, (32, 48, 3))
  out = _apply(image, "TranslateX", k + 0.6 * np.sign(k))  # int() truncates toward 0
  n = int(k)
  expected = np.zeros_like(image)
  if n >= 0:
    expected[:, n:] = image[:, :image.shape[1] - n]
  else:
    expected[:, :n] = image[:, -n:]
  np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("k", [3.0, -20.0])
def test_translate_y_shifts_down_with_zero_fill(k):
  image = _random_image(9, (32, 48, 3))
  out = _apply(image, "TranslateY", k)
  n = int(k)
  expected = np.zeros_like(image)
  if n >= 0:
    expected[n:] = image[:image.shape[0] - n]
  else:
    expected[:n] = image[-n:]
  np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("m", [0.066, -0.198, 0.495, -0.99])
def test_shear_x_matches_pillow_affine(m):
  """torchvision shears about the top-left corner (center=[0, 0]); on PIL images that is
  exactly Image.transform(AFFINE, (1, m, 0, 0, 1, 0)), the official AutoAugment shear."""
  image = _random_image(10, (32, 48, 3))
  h, w = image.shape[:2]
  ours = _apply(image, "ShearX", m)
  pil = np.asarray(Image.fromarray(image).transform(
      (w, h), Image.Transform.AFFINE, (1, m, 0, 0, 1, 0), Image.Resampling.NEAREST))
  assert _mismatch(ours, pil) < 0.01
  yy, xx = np.mgrid[0:h, 0:w]
  src_x = np.rint(xx + m * (yy + 0.5)).astype(int)
  assert _mismatch(ours, _index_map(image, src_x, yy)) < 0.01
  # Row 0 barely moves: the shear is about the top edge, not the centre.
  assert _mismatch(ours[:1], image[:1]) < 0.1


@pytest.mark.parametrize("m", [0.099, -0.495])
def test_shear_y_matches_pillow_affine(m):
  image = _random_image(11, (32, 48, 3))
  h, w = image.shape[:2]
  ours = _apply(image, "ShearY", m)
  pil = np.asarray(Image.fromarray(image).transform(
      (w, h), Image.Transform.AFFINE, (1, 0, 0, m, 1, 0), Image.Resampling.NEAREST))
  assert _mismatch(ours, pil) < 0.01


# ----------------------------------------------------------------------------------------
# 4. Sampling and determinism.


def test_same_seed_same_output_different_seeds_differ():
  image = tf.constant(_random_image(12))
  seed = tf.constant([3, 4], tf.int32)
  a = augment.trivial_augment(image, seed).numpy()
  np.testing.assert_array_equal(a, augment.trivial_augment(image, seed).numpy())
  outs = {augment.trivial_augment(image, tf.constant([3, i], tf.int32)).numpy().tobytes()
          for i in range(24)}
  assert len(outs) >= 12  # Identity and repeated (op, bin, sign) draws may coincide


def test_trivial_augment_applies_the_sampled_op():
  image = tf.constant(_random_image(13))
  for i in range(10):
    seed = tf.constant([i, 99], tf.int32)
    op, m = augment.sample_op_and_magnitude(seed)
    np.testing.assert_array_equal(augment.trivial_augment(image, seed),
                                  augment.apply_op(image, op, m))


@pytest.fixture(scope="module")
def samples():
  n = 2800
  seeds = tf.data.Dataset.range(n).map(
      lambda i: tf.stack([tf.cast(i, tf.int32), tf.constant(2021, tf.int32)]))
  ds = seeds.map(augment.sample_op_and_magnitude).batch(n)
  ops, mags = next(iter(ds))
  return ops.numpy(), mags.numpy()


def test_ops_are_uniform(samples):
  ops, _ = samples
  n, p = len(ops), 1.0 / len(OPS)
  counts = np.bincount(ops, minlength=len(OPS))
  assert len(counts) == len(OPS)
  sigma = math.sqrt(n * p * (1 - p))
  assert np.all(np.abs(counts - n * p) < 5 * sigma), counts


def test_magnitudes_come_from_the_bins_with_random_sign(samples):
  ops, mags = samples
  negative = 0
  signed_total = 0
  for i, name in enumerate(OPS):
    m = mags[ops == i]
    bins = augment.magnitude_bins(name)
    assert np.all(np.isin(np.abs(m), np.abs(bins))), name
    if name in augment.SIGNED_OPS:
      signed_total += len(m)
      negative += int(np.sum(m < 0))
      assert len(np.unique(np.abs(m))) > 20, name  # many of the 31 bins are used
    else:
      assert np.all(m >= 0), name
  # Bin 0 is magnitude 0 (sign invisible): expect (30/31)/2 negatives.
  p = 0.5 * 30 / 31
  sigma = math.sqrt(signed_total * p * (1 - p))
  assert abs(negative - signed_total * p) < 5 * sigma


def test_magnitude_bins_match_torchvision_wide_space():
  np.testing.assert_allclose(augment.magnitude_bins("ShearX")[[0, 1, -1]],
                             [0.0, 0.033, 0.99], rtol=1e-6)
  np.testing.assert_allclose(augment.magnitude_bins("TranslateY")[[1, -1]],
                             [32 / 30, 32.0], rtol=1e-6)
  np.testing.assert_allclose(augment.magnitude_bins("Rotate")[[1, 20, -1]],
                             [4.5, 90.0, 135.0], rtol=1e-6)
  posterize = augment.magnitude_bins("Posterize")
  assert posterize[0] == 8 and posterize[-1] == 2
  assert np.all(np.diff(posterize) <= 0) and len(np.unique(posterize)) == 7
  solarize = augment.magnitude_bins("Solarize")
  assert solarize[0] == 255.0 and solarize[-1] == 0.0 and solarize[1] == 246.5
  for name in ("Identity", "AutoContrast", "Equalize"):
    np.testing.assert_array_equal(augment.magnitude_bins(name), [0.0])
  # The wide space ignores the image size (absolute 32-pixel translations).
  np.testing.assert_array_equal(augment.magnitude_bins("TranslateX", image_size=(8, 8)),
                                augment.magnitude_bins("TranslateX"))


# ----------------------------------------------------------------------------------------
# 5. Shapes and dtypes through tf.data.


def test_static_shape_and_dtype_through_dataset():
  images = np.stack([_random_image(20 + i, (32, 48, 3)) for i in range(6)])
  ds = tf.data.Dataset.from_tensor_slices(images).enumerate().map(
      lambda i, x: augment.trivial_augment(
          x, tf.stack([tf.cast(i, tf.int32), tf.constant(5, tf.int32)])),
      num_parallel_calls=tf.data.AUTOTUNE)
  assert ds.element_spec.shape == (32, 48, 3)
  assert ds.element_spec.dtype == tf.uint8
  batch = next(iter(ds.batch(6, drop_remainder=True)))
  assert batch.shape == (6, 32, 48, 3) and batch.dtype == tf.uint8


def test_rejects_dynamic_shapes_and_non_uint8():
  with pytest.raises(TypeError):
    augment.apply_op(tf.zeros([8, 8, 3], tf.float32), 0, 0.0)
  fn = tf.function(augment.trivial_augment,
                   input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                    tf.TensorSpec([2], tf.int32)])
  with pytest.raises(ValueError, match="static shape"):
    fn.get_concrete_function()
