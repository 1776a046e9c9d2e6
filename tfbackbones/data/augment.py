"""TrivialAugment (Müller & Hutter, 2021) with torchvision's TrivialAugmentWide op set.

The paper's reference code augments with `torchvision.transforms.TrivialAugmentWide()`;
this module reproduces that transform in pure TensorFlow so it can run inside `tf.data`
on TPU hosts (no `py_function`) and be a pure function of (image, seed), which the
resumable, per-epoch-seeded input pipeline relies on.

What "the same" means here:
  * Space and sampling are torchvision's: 14 ops in torchvision's order, one op drawn
    uniformly, one of 31 magnitude bins drawn uniformly, a random sign with p=0.5 for
    signed ops (`magnitude_bins`, `sample_op_and_magnitude`). The draws are stateless,
    so the random numbers themselves differ from torch's; their distribution does not.
  * Colour ops reproduce Pillow's arithmetic (ImageEnhance / ImageOps) bit for bit on
    the tests' images, because the reference code applied TrivialAugmentWide to PIL
    images, where torchvision dispatches to Pillow. torchvision's uint8 tensor path
    computes the same operations with slightly different rounding: grey = truncated
    0.2989 R + 0.587 G + 0.114 B instead of Pillow's rounded fixed point, Contrast's
    mean unrounded instead of `int(mean + 0.5)`, the blend as f*a + (1-f)*b instead of
    b + f*(a - b), AutoContrast in float32 instead of a float64 LUT. Those put the tensor
    path up to 1 level (2 for Contrast) away from Pillow; this module sides with Pillow.
  * Geometric ops reproduce torchvision's tensor path (`F.affine` / `F.rotate` into
    `grid_sample`, nearest, fill 0), which agrees with its Pillow path except at
    rounding ties. Two details that are easy to get wrong:
      - ShearX/ShearY shear about the top-left corner (`center=[0, 0]` in torchvision,
        as the official AutoAugment and Pillow's `(1, m, 0, 0, 1, 0)` affine), not
        about the image centre;
      - Rotate turns about the image centre, counter-clockwise for positive angles;
        TranslateX/TranslateY move by `int(magnitude)` whole pixels (truncated toward
        zero), right / down for positive magnitudes.

Known, accepted differences from torchvision (at most a few pixels at rounding ties,
never the distribution of augmentations):
  * the warp repeats torchvision's float32 grid arithmetic and its round-half-to-even,
    but not its exact summation order (torch uses a batched matmul), so a sample point
    within a float32 ulp of a rounding tie may pick the neighbouring pixel; Pillow
    rounds such ties half up, so it too differs on them (e.g. one diagonal at 135°);
  * the smoothing convolution sums in a different order; a value within one ulp of
    x.5 could round the other way (exact .5 cannot occur: the kernel divides by 13).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

NUM_MAGNITUDE_BINS = 31

# Order and names as in torchvision's TrivialAugmentWide._augmentation_space: the op index
# drawn from the seed indexes this tuple, so the order is part of the definition.
OPS: tuple[str, ...] = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)

# Ops whose magnitude gets a random sign (torchvision's `signed` flag).
SIGNED_OPS = frozenset({
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
    "Brightness", "Color", "Contrast", "Sharpness",
})

# Ops with a single magnitude (torchvision: a 0-d tensor); no bin is drawn for them.
MAGNITUDE_FREE_OPS = frozenset({"Identity", "AutoContrast", "Equalize"})

Number = int | float
TensorLike = tf.Tensor | int | float


def magnitude_bins(op_name: str, num_bins: int = NUM_MAGNITUDE_BINS,
                   image_size: Sequence[int] | None = None) -> np.ndarray:
  """The unsigned magnitudes TrivialAugmentWide samples from for one op.

  The wide space is image-size independent: translations are absolute pixels (up to 32),
  whatever the image size. That is why the pipeline offers `augment_at="native"`: by
  default it augments after resizing to 256 px, whereas the reference code augments CIFAR
  at its native 32 px (a 32-pixel shift there moves the whole image out of frame); the
  paper study uses native for CIFAR. `image_size` is accepted only so the signature
  mirrors torchvision's `_augmentation_space` and is ignored.

  Args:
    op_name: one of `OPS`.
    num_bins: number of magnitude bins (torchvision's `num_magnitude_bins`).
    image_size: ignored (see above).

  Returns:
    float32 array of shape [num_bins] (shape [1] holding 0.0 for magnitude-free ops).
    Signed ops' magnitudes are negated with probability 0.5 at sampling time; the factor
    of Brightness/Color/Contrast/Sharpness is `1 + magnitude`; Posterize's values are
    bit counts (8 down to 2), Solarize's are thresholds (255 down to 0).
  """
  del image_size  # The wide space does not scale with the image.
  if op_name not in OPS:
    raise ValueError(f"unknown op {op_name!r}; known: {OPS}")
  if op_name in MAGNITUDE_FREE_OPS:
    return np.zeros([1], np.float32)
  if op_name in ("ShearX", "ShearY", "Brightness", "Color", "Contrast", "Sharpness"):
    return np.linspace(0.0, 0.99, num_bins).astype(np.float32)
  if op_name in ("TranslateX", "TranslateY"):
    return np.linspace(0.0, 32.0, num_bins).astype(np.float32)
  if op_name == "Rotate":
    return np.linspace(0.0, 135.0, num_bins).astype(np.float32)
  if op_name == "Posterize":
    # torch.round and np.round both round half to even; i / 5 never ties for 31 bins.
    return (8 - np.round(np.arange(num_bins) / ((num_bins - 1) / 6))).astype(np.float32)
  if op_name == "Solarize":
    return np.linspace(255.0, 0.0, num_bins).astype(np.float32)
  raise AssertionError(op_name)


def _magnitude_table(num_bins: int) -> np.ndarray:
  """[len(OPS), num_bins] magnitudes, so the sampled (op, bin) indexes one tensor."""
  table = np.zeros([len(OPS), num_bins], np.float32)
  for i, name in enumerate(OPS):
    if name not in MAGNITUDE_FREE_OPS:
      table[i] = magnitude_bins(name, num_bins)
  return table


def sample_op_and_magnitude(seed: tf.Tensor, num_bins: int = NUM_MAGNITUDE_BINS
                            ) -> tuple[tf.Tensor, tf.Tensor]:
  """Draws TrivialAugment's (op index, signed magnitude) as a pure function of `seed`.

  Separate from `trivial_augment` so the sampling distribution can be tested on
  thousands of seeds without running any image op. The three draws (op, bin, sign) use
  independent child seeds from `stateless_split`, mirroring torchvision's three
  `torch.randint` calls; magnitude-free ops ignore their bin and sign.

  Args:
    seed: int32/int64 tensor of shape [2].
    num_bins: number of magnitude bins.

  Returns:
    (op_index int32 scalar, magnitude float32 scalar, already signed).
  """
  seed = tf.convert_to_tensor(seed)
  op_seed, bin_seed, sign_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=3))
  op_index = tf.random.stateless_uniform(
      [], op_seed, minval=0, maxval=len(OPS), dtype=tf.int32)
  bin_index = tf.random.stateless_uniform(
      [], bin_seed, minval=0, maxval=num_bins, dtype=tf.int32)
  negate = tf.random.stateless_uniform(
      [], sign_seed, minval=0, maxval=2, dtype=tf.int32)
  table = tf.constant(_magnitude_table(num_bins))
  signed = tf.constant([name in SIGNED_OPS for name in OPS])
  magnitude = table[op_index, bin_index]
  magnitude = tf.where(signed[op_index] & tf.equal(negate, 1), -magnitude, magnitude)
  return op_index, magnitude


# ----------------------------------------------------------------------------------------
# Colour ops. Each takes a uint8 (H, W, C) image and a float32 scalar magnitude.


def _blend(x: tf.Tensor, degenerate: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """Pillow's `Image.blend(degenerate, image, factor)` on float32 `x`, truncated to uint8.

  Written as Pillow's float32 `degenerate + factor * (image - degenerate)`; torchvision's
  `factor * image + (1 - factor) * degenerate` is the same number up to float32 rounding
  (which the tests show is not negligible: it flips about 1% of values by one level).
  """
  out = degenerate + factor * (x - degenerate)
  # Clamp, then truncate toward zero, as Pillow's blend and torch's `.to(uint8)`.
  return tf.cast(tf.clip_by_value(out, 0.0, 255.0), tf.uint8)


def _grayscale(x: tf.Tensor) -> tf.Tensor:
  """(H, W, 1) ITU-R 601-2 luma of float32 `x`, exactly as Pillow's `convert("L")`.

  Pillow rounds in fixed point, (19595 R + 38470 G + 7471 B + 2**15) >> 16, whereas
  torchvision's tensor path truncates 0.2989 R + 0.587 G + 0.114 B. The reference code ran
  TrivialAugmentWide on PIL images, so Pillow's grey is the one the paper trained with.
  Every intermediate is an integer below 2**24, so float32 computes it exactly.
  """
  gray = 19595.0 * x[..., 0:1] + 38470.0 * x[..., 1:2] + 7471.0 * x[..., 2:3] + 32768.0
  return tf.floor(gray * (1.0 / 65536.0))


def _brightness(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  x = tf.cast(image, tf.float32)
  return _blend(x, tf.zeros([], tf.float32), 1.0 + magnitude)


def _color(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  x = tf.cast(image, tf.float32)
  return _blend(x, _grayscale(x), 1.0 + magnitude)


def _contrast(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  """Blend with the mean grey level, rounded to an integer as Pillow does.

  torchvision's tensor path blends with the unrounded mean of its truncated grey, which
  sits up to ~1.5 levels from Pillow's and so moves outputs by up to 2 levels; Pillow's
  `int(mean + 0.5)` is what the reference code (PIL images) used.
  """
  height, width, _ = image.shape
  x = tf.cast(image, tf.float32)
  total = tf.reduce_sum(tf.cast(_grayscale(x), tf.float64))  # exact: integer sum
  mean = tf.floor(total / (height * width) + 0.5)
  return _blend(x, tf.cast(mean, tf.float32), 1.0 + magnitude)


def _sharpness(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  """Blend with a 3x3-smoothed copy whose one-pixel border is the original image."""
  height, width, channels = image.shape
  if height <= 2 or width <= 2:  # torchvision returns such images unchanged
    return image
  kernel = np.ones([3, 3], np.float32)
  kernel[1, 1] = 5.0
  kernel /= kernel.sum()
  kernel = np.tile(kernel[:, :, None, None], [1, 1, channels, 1])
  x = tf.cast(image, tf.float32)
  blurred = tf.nn.depthwise_conv2d(x[None], kernel, strides=[1, 1, 1, 1],
                                   padding="VALID")[0]
  # Rounded back to integers (no exact .5 can occur: 13 is odd), then put in place of
  # the interior; adding a zero-padded difference keeps the border exactly `x`.
  delta = tf.round(blurred) - x[1:-1, 1:-1]
  degenerate = x + tf.pad(delta, [[1, 1], [1, 1], [0, 0]])
  return _blend(x, degenerate, 1.0 + magnitude)


def _posterize(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  """Keeps the top `int(magnitude)` bits of every value."""
  bits = tf.clip_by_value(tf.cast(magnitude, tf.int32), 0, 8)
  shift = 8 - bits
  mask = tf.bitwise.left_shift(tf.bitwise.right_shift(255, shift), shift)
  return tf.bitwise.bitwise_and(image, tf.cast(mask, tf.uint8))


def _solarize(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  """Inverts values >= threshold (so threshold 255 still inverts pure white)."""
  # 255 - v == v ^ 255 for uint8; XOR with a 0/255 mask is ~3x faster than a uint8 where.
  invert = tf.cast(tf.cast(image, tf.float32) >= magnitude, tf.uint8) * 255
  return tf.bitwise.bitwise_xor(image, invert)


def _autocontrast(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  """Stretches each channel's min..max to 0..255; constant channels are unchanged.

  Pillow's float64 LUT `int(v * scale - lo * scale)` (built for 256 values per channel,
  then gathered); torchvision's float32 `(v - lo) * scale` can land one level lower where
  the exact value is an integer.
  """
  del magnitude
  channels = image.shape[-1]
  low = tf.cast(tf.reduce_min(image, axis=[0, 1]), tf.float64)[:, None]
  high = tf.cast(tf.reduce_max(image, axis=[0, 1]), tf.float64)[:, None]
  constant = tf.equal(high, low)
  one = tf.ones_like(low)
  scale = 255.0 / tf.where(constant, one, high - low)
  offset = -low * scale
  scale = tf.where(constant, one, scale)
  offset = tf.where(constant, tf.zeros_like(low), offset)
  values = tf.range(256, dtype=tf.float64)[None]
  lut = tf.cast(tf.clip_by_value(values * scale + offset, 0.0, 255.0), tf.uint8)
  ids = tf.cast(image, tf.int32) + 256 * tf.range(channels, dtype=tf.int32)
  return tf.gather(tf.reshape(lut, [-1]), ids)


def _equalize(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  """Per-channel histogram equalisation with PIL's (and torchvision's) integer LUT.

  step = (pixels - count of the highest occupied value) // 255; the LUT maps value v to
  (pixels below v + step // 2) // step, clamped to 255; a channel with step 0 (one
  occupied value, or too few pixels) is left unchanged.
  """
  del magnitude
  height, width, channels = image.shape
  values = tf.cast(image, tf.int32)
  # One bincount over all channels: value v of channel c goes to bin 256 * c + v.
  ids = values + 256 * tf.range(channels, dtype=tf.int32)
  hist = tf.reshape(
      tf.math.bincount(tf.reshape(ids, [-1]), minlength=256 * channels,
                       maxlength=256 * channels, dtype=tf.int32), [channels, 256])
  top = tf.reduce_max(values, axis=[0, 1])  # the highest occupied bin per channel
  last_count = tf.gather(hist, top, batch_dims=1)
  step = (height * width - last_count) // 255
  safe_step = tf.maximum(step, 1)[:, None]
  below = tf.cumsum(hist, axis=1, exclusive=True)
  lut = tf.minimum((below + safe_step // 2) // safe_step, 255)
  lut = tf.where((step > 0)[:, None], lut, tf.range(256, dtype=tf.int32)[None])
  out = tf.gather(tf.reshape(lut, [-1]), ids)
  return tf.cast(out, tf.uint8)


# ----------------------------------------------------------------------------------------
# Geometric ops: torchvision's inverse affine matrix, mapped to pixel indices.


def _inverse_affine(center: tuple[tf.Tensor, tf.Tensor], angle: tf.Tensor,
                    translate: tuple[tf.Tensor, tf.Tensor], shear: tuple[tf.Tensor, tf.Tensor]
                    ) -> list:
  """torchvision's `_get_inverse_affine_matrix` (scale 1), all angles in radians.

  Coordinates are relative to the image centre, as torchvision's tensor backend uses
  them: output point (x, y) samples input point (m0 x + m1 y + m2, m3 x + m4 y + m5).
  """
  cx, cy = center
  tx, ty = translate
  sx, sy = shear
  a = tf.cos(angle - sy) / tf.cos(sy)
  b = -tf.cos(angle - sy) * tf.tan(sx) / tf.cos(sy) - tf.sin(angle)
  c = tf.sin(angle - sy) / tf.cos(sy)
  d = -tf.sin(angle - sy) * tf.tan(sx) / tf.cos(sy) + tf.cos(angle)
  m = [d, -b, 0.0, -c, a, 0.0]
  m[2] = m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx
  m[5] = m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy
  return m


def _warp(image: tf.Tensor, matrix: list) -> tf.Tensor:
  """Applies a centre-relative inverse affine matrix with nearest sampling, fill 0.

  Follows torchvision's tensor path step by step in float32 (`_gen_affine_grid`, then
  `grid_sample(mode="nearest", padding_mode="zeros", align_corners=False)`): sample at
  pixel centres relative to the image centre, normalise by half the size, unnormalise
  with ((g + 1) * size - 1) / 2 and round half to even (torch's nearbyint; tf.round).
  A gather with this index map is ~3x faster on CPU than ImageProjectiveTransformV3,
  which also rounds ties half away from zero, unlike torch.
  """
  height, width, channels = image.shape
  theta = tf.reshape(tf.cast(tf.stack(matrix), tf.float32), [2, 3])
  rescaled = theta / tf.constant([[0.5 * width], [0.5 * height]], tf.float32)
  xc = tf.constant(np.linspace(-width * 0.5 + 0.5, width * 0.5 - 0.5, width,
                               dtype=np.float32)[None, :])
  yc = tf.constant(np.linspace(-height * 0.5 + 0.5, height * 0.5 - 0.5, height,
                               dtype=np.float32)[:, None])
  gx = xc * rescaled[0, 0] + yc * rescaled[0, 1] + rescaled[0, 2]
  gy = xc * rescaled[1, 0] + yc * rescaled[1, 1] + rescaled[1, 2]
  ix = tf.round(((gx + 1.0) * width - 1.0) * 0.5)
  iy = tf.round(((gy + 1.0) * height - 1.0) * 0.5)
  inside = (ix >= 0.0) & (ix <= width - 1.0) & (iy >= 0.0) & (iy <= height - 1.0)
  # Outside points read an appended zero pixel (torch's zeros padding = fill 0).
  index = tf.where(inside, tf.cast(iy, tf.int32) * width + tf.cast(ix, tf.int32),
                   height * width)
  flat = tf.concat([tf.reshape(image, [height * width, channels]),
                    tf.zeros([1, channels], image.dtype)], axis=0)
  return tf.ensure_shape(tf.gather(flat, index), image.shape)


def _zero() -> tf.Tensor:
  return tf.zeros([], tf.float64)


def _shear(image: tf.Tensor, magnitude: tf.Tensor, axis: int) -> tf.Tensor:
  """Shear by `magnitude` (= tan of the shear angle) about the top-left corner."""
  height, width, _ = image.shape
  angle = tf.atan(tf.cast(magnitude, tf.float64))
  shear = (angle, _zero()) if axis == 0 else (_zero(), angle)
  # torchvision passes center=[0, 0] (pixel coords) -> centre-relative (-w/2, -h/2).
  center = (tf.constant(-width / 2.0, tf.float64), tf.constant(-height / 2.0, tf.float64))
  return _warp(image, _inverse_affine(center, _zero(), (_zero(), _zero()), shear))


def _translate(image: tf.Tensor, magnitude: tf.Tensor, axis: int) -> tf.Tensor:
  """Shift by int(magnitude) pixels (right / down for positive magnitudes), fill 0.

  torchvision warps with the matrix of a whole-pixel translation, which samples exactly
  the shifted pixels; pad-and-slice gives the identical result about 5x faster.
  """
  shift = tf.cast(magnitude, tf.int32)  # truncates toward zero, as Python's int()
  before, after = tf.maximum(shift, 0), tf.maximum(-shift, 0)
  paddings = [[0, 0], [0, 0], [0, 0]]
  paddings[1 - axis] = [before, after]
  padded = tf.pad(image, tf.convert_to_tensor(paddings))
  begin = [0, 0, 0]
  begin[1 - axis] = after
  out = tf.slice(padded, tf.stack(begin), image.shape)
  return tf.ensure_shape(out, image.shape)


def _rotate(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  """Rotate by `magnitude` degrees counter-clockwise about the image centre."""
  # torchvision's rotate passes -angle to the affine helper (its affine is clockwise).
  angle = -tf.cast(magnitude, tf.float64) * (math.pi / 180.0)
  return _warp(image, _inverse_affine((_zero(), _zero()), angle, (_zero(), _zero()),
                                      (_zero(), _zero())))


def _identity(image: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
  del magnitude
  return tf.identity(image)


_OP_FNS = {
    "Identity": _identity,
    "ShearX": lambda image, m: _shear(image, m, 0),
    "ShearY": lambda image, m: _shear(image, m, 1),
    "TranslateX": lambda image, m: _translate(image, m, 0),
    "TranslateY": lambda image, m: _translate(image, m, 1),
    "Rotate": _rotate,
    "Brightness": _brightness,
    "Color": _color,
    "Contrast": _contrast,
    "Sharpness": _sharpness,
    "Posterize": _posterize,
    "Solarize": _solarize,
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
}
assert tuple(_OP_FNS) == OPS


def _check_image(image: tf.Tensor) -> tf.Tensor:
  image = tf.convert_to_tensor(image)
  if image.dtype != tf.uint8:
    raise TypeError(f"expected a uint8 image, got {image.dtype}")
  if image.shape.rank != 3 or not image.shape.is_fully_defined():
    # Static sizes let the Sharpness mask and the warp's centring be built in Python and
    # keep the output shape static for TPU batching.
    raise ValueError(f"expected a (H, W, C) image with static shape, got {image.shape}")
  return image


def apply_op(image: tf.Tensor, op_index: int | tf.Tensor,
             magnitude: TensorLike) -> tf.Tensor:
  """Applies op `OPS[op_index]` with an already-signed magnitude to a uint8 image.

  Always dispatches through `tf.switch_case` (even for a Python int) so that tests of
  single ops exercise the same graph `trivial_augment` runs; only the chosen branch
  executes.

  Args:
    image: uint8 (H, W, C) tensor with a static shape (C = 3; Color/Contrast need RGB).
    op_index: index into `OPS`.
    magnitude: the op's magnitude as `magnitude_bins` defines it, sign applied.

  Returns:
    uint8 tensor of the same static shape.
  """
  image = _check_image(image)
  magnitude = tf.cast(magnitude, tf.float32)
  op_index = tf.cast(op_index, tf.int32)
  branches = [(lambda fn=fn: fn(image, magnitude)) for fn in _OP_FNS.values()]
  out = tf.switch_case(op_index, branches)
  out.set_shape(image.shape)
  return out


def trivial_augment(image: tf.Tensor, seed: tf.Tensor, *,
                    num_magnitude_bins: int = NUM_MAGNITUDE_BINS) -> tf.Tensor:
  """TrivialAugmentWide: one uniformly drawn op at one uniformly drawn magnitude.

  A pure function of (image, seed), built from stateless ops only, so a resumed run
  reproduces the augmentations of an uninterrupted one and the function runs inside
  `tf.data` on any host.

  Args:
    image: uint8 (H, W, 3) tensor with a static shape.
    seed: int32 tensor of shape [2].
    num_magnitude_bins: torchvision's `num_magnitude_bins` (default 31).

  Returns:
    uint8 tensor with the same static shape.
  """
  op_index, magnitude = sample_op_and_magnitude(seed, num_magnitude_bins)
  return apply_op(image, op_index, magnitude)
