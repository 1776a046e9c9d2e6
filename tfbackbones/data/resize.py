"""TF's antialiased bilinear resize, computed as two gathers: the same pixels, less CPU.

Why: `tf.image.resize(..., "bilinear", antialias=True)` (TF's ScaleAndTranslate op with a
triangle kernel) is the resize the training pipeline has always used, so the fine-tuned
models, the recommender's features and the exported models' preprocessing
(`deploy/images.py`, NumPy) all see its pixels. On CPU that op costs more than decoding
the JPEG: 1.8 ms against 1.2 ms for a 500x375 photo to 224x224, one thread. Here the
same filter runs as a gather of the source rows each output row needs (uint8, then cast)
and a weighted sum, then the same along the columns, in the op's own float order: the
float result is bit for bit the op's on every shape tests/test_resize.py draws (up- and
downscaling, unit sizes, one axis each way). It costs about 1.1 ms for the same photo.

The gathered block is (output rows, taps, input row length), and the number of taps grows
with the downscale factor (2 x factor + 1). Past `MAX_TAPS` (a factor of about 4, e.g. a
4000x3000 photo straight to 224 px) that block would be hundreds of MB, so those images
keep the op, which never materialises it.

The span rule follows `ComputeSpansCore` in
tensorflow/core/kernels/image/scale_and_translate_op.cc (translation 0, kernel radius 1):
output pixel x samples the input at (x + 0.5) / scale; when shrinking the kernel is
widened by 1 / scale; each output's weights are normalised to sum 1.
"""

from __future__ import annotations

import tensorflow as tf

# Taps per output pixel above which the op is used instead (see the module docstring).
MAX_TAPS = 9


def _spans(in_size: tf.Tensor, out_size: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """(sources (out, taps) int32, weights (out, taps) float32, taps) along one axis."""
  # 1 / (out / in), as ComputeSpansCore computes it: in / out rounds differently in
  # float32 and the weights, hence the pixels, stop being the op's (tests/test_resize.py).
  inv_scale = 1.0 / (tf.cast(out_size, tf.float32) / tf.cast(in_size, tf.float32))
  kernel_scale = tf.maximum(inv_scale, 1.0)
  # A span holds at most floor(2 * kernel_scale) + 1 sources (start and end below).
  taps = tf.minimum(tf.cast(tf.math.floor(2.0 * kernel_scale), tf.int32) + 1, in_size)
  sample = (tf.range(out_size, dtype=tf.float32) + 0.5) * inv_scale
  start = tf.clip_by_value(tf.cast(tf.math.ceil(sample - kernel_scale - 0.5), tf.int32),
                           0, in_size - 1)
  end = tf.clip_by_value(tf.cast(tf.math.floor(sample + kernel_scale - 0.5), tf.int32),
                         0, in_size - 1) + 1
  sources = start[:, None] + tf.range(taps)[None, :]
  position = tf.cast(sources, tf.float32) + 0.5 - sample[:, None]
  weights = tf.maximum(0.0, 1.0 - tf.abs(position * (1.0 / kernel_scale)))
  weights = tf.where(sources < end[:, None], weights, 0.0)
  weights = weights * (1.0 / tf.reduce_sum(weights, axis=1, keepdims=True))
  return tf.minimum(sources, in_size - 1), weights, taps


def _along_rows(image: tf.Tensor, out_size: int, sources, weights) -> tf.Tensor:
  """(in, M) -> (out, M) float32: each output row the weighted sum of its source rows."""
  gathered = tf.cast(tf.gather(image, sources), tf.float32)  # (out, taps, M)
  return tf.reduce_sum(gathered * weights[:, :, None], axis=1)


def antialiased_bilinear(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
  """(H, W, C) image (any real dtype, C static) -> (height, width, C) float32.

  The same floats as `tf.image.resize(image, (height, width), "bilinear",
  antialias=True)` on every shape the tests draw.
  """
  channels = image.shape[-1]
  if channels is None:
    raise ValueError("antialiased_bilinear needs a static channel count")
  shape = tf.shape(image)
  in_height, in_width = shape[0], shape[1]
  row_sources, row_weights, row_taps = _spans(in_height, height)
  col_sources, col_weights, col_taps = _spans(in_width, width)

  def gathers():
    rows = _along_rows(tf.reshape(image, [in_height, in_width * channels]), height,
                       row_sources, row_weights)                 # (height, W * C)
    columns = tf.reshape(tf.transpose(tf.reshape(rows, [height, in_width, channels]),
                                      [1, 0, 2]), [in_width, height * channels])
    out = _along_rows(columns, width, col_sources, col_weights)  # (width, height * C)
    return tf.transpose(tf.reshape(out, [width, height, channels]), [1, 0, 2])

  def op():
    return tf.image.resize(image, (height, width), method="bilinear", antialias=True)

  small = tf.logical_and(row_taps <= MAX_TAPS, col_taps <= MAX_TAPS)
  return tf.ensure_shape(tf.cond(small, gathers, op), (height, width, channels))
