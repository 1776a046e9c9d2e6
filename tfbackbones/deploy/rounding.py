"""Round a model's weights to the INT8 grid with the calibration data, before conversion.

  copy = rounding.round_weights(model, calibration_images)   # `model` is not changed

Why: TFLite's converter quantizes each output channel of a convolution or dense kernel
(after folding the BatchNorm that follows it) to `round(w / s)`, `s = max|w| / 127`.
Rounding each weight to its nearest grid point is optimal only if every weight's error
reaches the output independently. When the layer's inputs are correlated, the errors add
up instead. The extreme case, measured on the project's quickstart (EfficientNet-Lite0 on
lfw_subset, which is grayscale): the stem sees R = G = B, so each output channel responds
only to the sum of its R, G and B weights. Its colour-difference channels have large
weights that nearly cancel (|sum| down to 3% of max|w|), and BatchNorm, re-estimated on
grayscale data, scales them up by gamma/std up to 320. Nearest rounding put up to 26% error
on what those channels compute; quantizing the stem's weights alone (in Keras, activations
in float) changed 11 of 100 test predictions, about as many as the whole INT8 file did.
More or augmented calibration images did not help (activation ranges were not the issue).

What this module does is GPTQ (Frantar et al., 2022, "Accurate Post-Training Quantization
for Generative Pre-trained Transformers"; the Optimal Brain Quantizer rule): for each layer
it accumulates H = E[x x^T] of the layer's inputs over the calibration images (im2col
patches for convolutions, per channel for depthwise ones), then rounds the weights one
input at a time, each time moving the rounding error onto the not yet rounded weights
along H's inverse so that `x . w` changes least. Then it writes the rounded weights,
unfolded from the BatchNorm, into a copy of the model. The grid is the converter's own
(same per-channel scale), so the converter's `round(w / s)` returns exactly our integers
(`tests/test_export_rounding.py` reads them back from the .tflite). The graph, the ops, the
int8 kernels and so the latency are unchanged; only which integers the kernels hold
differs.

Measured (docs/export.md): on the three ImageNet-initialised quickstart runs the stem's
output error fell from 5.7 to 0.25 quantization steps and INT8 top-1 agreement with Keras
rose from 87/94/91% to 97/95/95%. On the three random-init runs, where weight rounding
was not the problem, it changed 0, 2 and 6 of 100 test images for the worse.

Scope: Conv2D (groups 1), DepthwiseConv2D (depth multiplier 1) and Dense layers of a
functional model (nested models included), each with the BatchNormalization that reads
its output, if any. A layer whose input dimension is above `max_inputs` keeps the
converter's nearest rounding (H would be too big to invert quickly), and so does one whose
H rests on fewer than `min_rows_per_input` calibration rows per input (deep layers at
small resolution, a dense head: 80 images give 80 rows for 1280 inputs), where GPTQ would
fit the calibration images rather than the data.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tfbackbones import layer_walk

QMAX = 127          # TFLite's symmetric int8 weight range is [-127, 127]
DAMP = 0.01         # GPTQ's dampening: 1% of H's mean diagonal, for inputs that barely vary
MAX_INPUTS = 4096   # k*k*C_in above this: keep nearest rounding
# Calibration rows (images x output positions) per input below this: H is estimated from
# too few samples, GPTQ would fit the rounding to the calibration images themselves (it
# can move error into directions they happen not to span), so keep nearest rounding.
MIN_ROWS_PER_INPUT = 20


@dataclasses.dataclass
class Target:
  """One layer whose kernel the converter quantizes per output channel."""
  layer: keras.layers.Layer
  kind: str                                 # "conv", "depthwise" or "dense"
  bn: keras.layers.Layer | None = None      # the BatchNormalization the converter folds in
  hessian: np.ndarray | None = None         # (d, d), or (C, d, d) for depthwise
  count: int = 0


def _kind(layer) -> str | None:
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    return "depthwise" if layer.depth_multiplier == 1 else None
  if isinstance(layer, keras.layers.Conv2D):
    ok = getattr(layer, "groups", 1) == 1 and layer.data_format == "channels_last"
    return "conv" if ok else None
  if isinstance(layer, keras.layers.Dense):
    return "dense" if len(layer.kernel.shape) == 2 else None
  return None


def targets(model) -> list[Target]:
  """The layers to round, each with the BatchNorm that directly follows it, if any."""
  leaves = layer_walk.walk(model, into="models", containers=False)
  found = []
  for layer, after in zip(leaves, leaves[1:] + [None]):
    kind = _kind(layer)
    if kind is None:
      continue
    bn = None
    if isinstance(after, keras.layers.BatchNormalization):
      try:
        bn = after if after.input is layer.output else None
      except (AttributeError, ValueError):  # a layer used twice has no single input
        bn = None
    found.append(Target(layer, kind, bn))
  return found


def _patches(layer, x):
  """im2col of a convolution's input: (positions, kh * kw * C) in the kernel's order."""
  import tensorflow as tf
  kh, kw = layer.kernel_size
  sh, sw = layer.strides
  dh, dw = layer.dilation_rate
  if (kh, kw, sh, sw) == (1, 1, 1, 1):
    return tf.reshape(x, (-1, x.shape[-1]))
  patches = tf.image.extract_patches(
      x, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1], rates=[1, dh, dw, 1],
      padding=layer.padding.upper())
  return tf.reshape(patches, (-1, patches.shape[-1]))


def _accumulate(target: Target, x) -> None:
  import tensorflow as tf
  x = tf.cast(x, tf.float64)
  if target.kind == "dense":
    rows = tf.reshape(x, (-1, x.shape[-1]))
    h = tf.matmul(rows, rows, transpose_a=True)
  elif target.kind == "conv":
    rows = _patches(target.layer, x)
    h = tf.matmul(rows, rows, transpose_a=True)
  else:  # depthwise: every channel is its own k*k-input layer
    channels = x.shape[-1]
    rows = tf.reshape(_patches(target.layer, x), (-1, int(np.prod(target.layer.kernel_size)),
                                                  channels))
    h = tf.einsum("nkc,nlc->ckl", rows, rows)
    rows = rows[..., 0]
  target.hessian = h.numpy() + (0 if target.hessian is None else target.hessian)
  target.count += int(rows.shape[0])


def collect_hessians(model, found: list[Target], images: np.ndarray,
                     batch_size: int = 16) -> None:
  """Runs `model` on `images` and sums E[x x^T] of every target's input."""
  hooked = {}
  for target in found:
    layer = target.layer
    original = layer.call

    def call(x, *args, _target=target, _original=original, **kwargs):
      _accumulate(_target, x)
      return _original(x, *args, **kwargs)

    hooked[id(layer)] = (layer, original)
    layer.call = call
  try:
    for i in range(0, len(images), batch_size):
      model(np.asarray(images[i:i + batch_size], np.float32), training=False)
  finally:
    for layer, _ in hooked.values():
      del layer.call  # the class's own method again
  for target in found:
    target.hessian = target.hessian / max(target.count, 1)


def gptq_round(weights: np.ndarray, hessian: np.ndarray, scale: np.ndarray,
               damp: float = DAMP) -> np.ndarray:
  """Integers for `weights` on the grid `scale` that keep `x . w` closest under E[xx^T].

  Args:
    weights: (d, m): m output channels sharing the input statistics `hessian` (d, d).
    hessian: E[x x^T] of the layer's inputs.
    scale: (m,) grid step of each output channel; each channel's largest weight must be
      at least QMAX steps (it lands on +-QMAX, which is how the converter finds the grid).

  Returns:
    (d, m) integers in [-QMAX, QMAX], each channel's largest weight at +-QMAX.
  """
  w = np.array(weights, np.float64)
  h = np.array(hessian, np.float64)
  dead = np.diag(h) <= 0
  h[dead, dead] = 1.0
  h += damp * np.mean(np.diag(h)) * np.eye(len(h))
  # Upper Cholesky factor of H^-1: row i holds how the remaining weights should move to
  # absorb the error of weight i (GPTQ's formulation of the OBQ update).
  upper = np.linalg.cholesky(np.linalg.inv(h)).T
  # Each channel's largest weight stays where it is, so it is rounded to +-QMAX and the
  # converter derives the same grid from the written weights.
  peak_rows = np.abs(w).argmax(axis=0)
  columns = np.arange(w.shape[1])
  peak_values = w[peak_rows, columns]
  q = np.zeros_like(w)
  for i in range(len(w)):
    q[i] = np.clip(np.round(w[i] / scale), -QMAX, QMAX)
    error = (w[i] - q[i] * scale) / upper[i, i]
    w[i + 1:] -= np.outer(upper[i, i + 1:], error)
    later = peak_rows > i
    w[peak_rows[later], columns[later]] = peak_values[later]
  return q


def _fold(target: Target) -> np.ndarray:
  """Per-output-channel factor the converter multiplies the kernel by (BN's gamma/std)."""
  channels = target.layer.kernel.shape[-2 if target.kind == "depthwise" else -1]
  if target.bn is None:
    return np.ones(channels)
  bn = target.bn
  var = np.asarray(bn.moving_variance.numpy(), np.float64)
  gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones_like(var)
  return gamma / np.sqrt(var + bn.epsilon)


def round_layer(target: Target, damp: float = DAMP) -> dict:
  """Writes GPTQ-rounded weights into `target.layer`; returns what changed."""
  kernel = np.asarray(target.layer.kernel.numpy(), np.float64)
  fold = _fold(target)
  if target.kind == "depthwise":  # (kh, kw, C, 1) -> C layers of kh*kw inputs
    folded = kernel[..., 0].reshape(-1, kernel.shape[2]) * fold
  else:                           # (kh, kw, C_in, C_out) or (C_in, C_out) -> (d, C_out)
    folded = kernel.reshape(-1, kernel.shape[-1]) * fold
  peak = np.abs(folded).max(axis=0)
  scale = np.where(peak > 0, peak / QMAX, 1.0)  # the converter's grid
  nearest = np.clip(np.round(folded / scale), -QMAX, QMAX)
  if target.kind == "depthwise":
    q = np.concatenate([gptq_round(folded[:, c:c + 1], target.hessian[c], scale[c:c + 1], damp)
                        for c in range(folded.shape[1])], axis=1)
  else:
    q = gptq_round(folded, target.hessian, scale, damp)
  # The converter derives each channel's grid from its largest weight again; a channel
  # whose largest integer is not +-QMAX would be re-rounded on another grid. gptq_round
  # keeps the peak, so this is only a guard.
  lost_peak = (np.abs(q).max(axis=0) != QMAX) & (peak > 0)
  q[:, lost_peak] = nearest[:, lost_peak]
  safe_fold = np.where(fold == 0, 1.0, fold)
  unfolded = np.where(fold == 0, folded, q * scale) / safe_fold
  if target.kind == "depthwise":
    new = unfolded.reshape(kernel.shape[:3])[..., None]
  else:
    new = unfolded.reshape(kernel.shape)
  target.layer.kernel.assign(new.astype(target.layer.kernel.dtype))
  return {"changed": int(np.sum(q != nearest)), "weights": int(q.size),
          "kept_nearest_channels": int(lost_peak.sum())}


def _copy(model):
  copy = keras.models.clone_model(model)
  copy.set_weights(model.get_weights())
  return copy


def round_weights(model, calibration: np.ndarray, *, damp: float = DAMP,
                  max_inputs: int = MAX_INPUTS, min_rows_per_input: float = MIN_ROWS_PER_INPUT,
                  batch_size: int = 16):
  """A copy of `model` whose kernels sit on the INT8 grid, rounded with `calibration`.

  Args:
    model: a functional Keras model taking what `calibration` holds (float pixels).
    calibration: (N, H, W, 3) the INT8 representative images (training split only).
    damp: GPTQ's dampening, a share of H's mean diagonal.
    max_inputs: layers with more inputs per output (k*k*C_in) keep nearest rounding.
    min_rows_per_input: layers whose statistics come from fewer calibration rows (images
      x output positions) per input keep nearest rounding.
    batch_size: images per forward pass while collecting statistics.

  Returns:
    (copy, stats): stats has `layers` rounded, `weights_changed` (integers that differ
    from nearest rounding) and `weights` in them, and `nearest_layers` left to the
    converter's nearest rounding (too many inputs, or too few calibration rows).
  """
  copy = _copy(model)
  every = targets(copy)
  found = [t for t in every if _inputs(t) <= max_inputs]
  collect_hessians(copy, found, calibration, batch_size)
  stats = {"method": "gptq", "layers": 0, "weights": 0, "weights_changed": 0,
           "kept_nearest_channels": 0, "nearest_layers": len(every) - len(found)}
  for target in found:
    if target.count < min_rows_per_input * _inputs(target):
      stats["nearest_layers"] += 1
      continue
    changed = round_layer(target, damp)
    stats["layers"] += 1
    stats["weights"] += changed["weights"]
    stats["weights_changed"] += changed["changed"]
    stats["kept_nearest_channels"] += changed["kept_nearest_channels"]
    target.hessian = None
  return copy, stats


def _inputs(target: Target) -> int:
  shape = target.layer.kernel.shape
  if target.kind == "depthwise":
    return int(shape[0] * shape[1])
  return int(np.prod(shape[:-1]))
