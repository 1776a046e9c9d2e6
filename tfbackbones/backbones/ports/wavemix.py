"""WaveMix (Jeevan et al. 2022) in Keras 3, mirroring the official PyTorch code.

The reference is `wavemix.classification.WaveMix` with `Level{1..4}Waveblock`
from github.com/pranavphoenix/WaveMix (pip `wavemix` 0.2.4); the paper uses
WaveMix-192/16 level 3: `WaveMix(num_classes=1000, depth=16, mult=2,
ff_channel=192, final_dim=192, dropout=0.5, level=3, initial_conv='pachify',
patch_size=4)`, 27.86 M parameters. Layer names are the torch module paths
(`conv.2`, `layers.7.feedforward3.4`, `pool.2`) so state_dicts map one to one.

The 2-D Haar DWT (pytorch_wavelets' DWTForward(J, wave='db1', mode='zero'),
copied into the official package) is `HaarDWT`: a fixed 2x2 depthwise conv
with stride 2, no weights. Its output matches the official channel layout:
per level `cat(LL, reshape(Yh))`, where torch's reshape of Yh (B, C, 3, h, w)
interleaves the three detail bands per channel (c0:LH,HL,HH, c1:...).

Only even feature maps down to the last level are valid (the official code
reshapes with int(h/2) and fails otherwise): the input size must make
(size // patch_size) divisible by 2**level, e.g. a multiple of 32 here.

The converter fills the ConvTranspose2d weights, (in, out, kh, kw) -> (kh, kw, out,
in); everything else maps by name (see `transformer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tfbackbones import imagesize
from tfbackbones.backbones.ports import blocks, transformer
from tfbackbones.backbones.ports.blocks import torch_conv_init
from tfbackbones.convert import common
from tfbackbones.convert.registry import ConversionError

if TYPE_CHECKING:
  import keras

# Haar analysis on a 2x2 block [[a, b], [c, d]] (rows = height), as
# pytorch_wavelets computes it (row filtering along the width first, then
# columns; h0 = [1, 1]/sqrt2, h1 = [1, -1]/sqrt2 after its filter reversal):
# band 0 LL, 1 width-low/height-high, 2 width-high/height-low, 3 HH.
_HAAR = np.array([
    [[0.5, 0.5], [0.5, 0.5]],
    [[0.5, 0.5], [-0.5, -0.5]],
    [[0.5, -0.5], [0.5, -0.5]],
    [[0.5, -0.5], [-0.5, 0.5]],
], np.float32).transpose(1, 2, 0)[:, :, None, :]  # (2, 2, 1, 4)


class _HaarDWTMixin:
  """Multi-level 2-D Haar DWT returning WaveMix's per-level token maps.

  Level j (1-based) is computed from the LL band of level j-1, which is what
  the official xf1/xf2/xf3 (J=1, 2, 3) calls compute. Output j has 4*C
  channels: LL (C) then the detail bands (3*C) in torch's order.
  """

  def __init__(self, levels: int, **kwargs):
    super().__init__(**kwargs)
    self.levels = int(levels)

  def call(self, x):
    ops = blocks.keras_ops()
    channels = x.shape[-1]
    kernel = ops.cast(np.tile(_HAAR, (1, 1, channels, 1)), x.dtype)
    outputs = []
    low = x
    for _ in range(self.levels):
      bands = ops.depthwise_conv(low, kernel, strides=2, padding="valid")
      h, w = bands.shape[1], bands.shape[2]
      bands = ops.reshape(bands, (-1, h, w, channels, 4))
      low = bands[..., 0]
      high = ops.reshape(bands[..., 1:], (-1, h, w, 3 * channels))
      outputs.append(ops.concatenate([low, high], axis=-1))
    return outputs

  def compute_output_shape(self, input_shape):
    b, h, w, c = input_shape
    shapes = []
    for _ in range(self.levels):
      h, w = h // 2, w // 2
      shapes.append((b, h, w, 4 * c))
    return shapes

  def get_config(self):
    return {**super().get_config(), "levels": self.levels}


# The one custom layer, made a Keras layer on first use (see blocks).
layer_classes = blocks.layer_classes(__name__, {"HaarDWT": _HaarDWTMixin})


def _feedforward(x, prefix: str, *, final_dim: int, mult: int,
                 ff_channel: int, out_dim: int, dropout: float):
  """The official `feedforward{j}` Sequential: 1x1, GELU, drop, 1x1, up, BN."""
  import keras

  in_dim = x.shape[-1]
  x = keras.layers.Conv2D(final_dim * mult, 1, name=f"{prefix}.0",
                          **torch_conv_init(in_dim))(x)
  x = keras.layers.Activation("gelu", name=f"{prefix}.1")(x)
  x = keras.layers.Dropout(dropout, name=f"{prefix}.2")(x)
  x = keras.layers.Conv2D(ff_channel, 1, name=f"{prefix}.3",
                          **torch_conv_init(
                              final_dim * mult))(x)
  # ConvTranspose2d(k=4, stride=2, padding=1) == 'same' transposed conv.
  # torch computes this layer's init fan-in from weight.size(1) = out_dim.
  x = keras.layers.Conv2DTranspose(out_dim, 4, strides=2, padding="same",
                                   name=f"{prefix}.4",
                                   **torch_conv_init(
                                       out_dim * 16))(x)
  return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5,
                                         name=f"{prefix}.5")(x)


def _waveblock(x, prefix: str, *, level: int, final_dim: int, mult: int,
               ff_channel: int, dropout: float):
  """The official Level{level}Waveblock (without the outer residual)."""
  import keras

  reduced = keras.layers.Conv2D(final_dim // 4, 1, name=f"{prefix}.reduction",
                                **torch_conv_init(
                                    final_dim))(x)
  maps = layer_classes().HaarDWT(level, name=f"{prefix}.dwt")(reduced)
  if level == 1:
    maps = [maps] if not isinstance(maps, (list, tuple)) else maps
  ff = dict(final_dim=final_dim, mult=mult, ff_channel=ff_channel,
            dropout=dropout)
  y = None
  for j in range(level, 0, -1):  # coarsest first, as the official forward
    z = maps[j - 1]
    if y is not None:
      z = keras.layers.Concatenate(name=f"{prefix}.cat{j}")([z, y])
    y = _feedforward(z, f"{prefix}.feedforward{j}",
                     out_dim=final_dim if j == 1 else final_dim // 2, **ff)
  return y


def build_wavemix(image_size, *, include_top: bool = False,
                  num_classes: int = 1000, name: str = "wavemix_192_16",
                  depth: int = 16, mult: int = 2, ff_channel: int = 192,
                  final_dim: int = 192, dropout: float = 0.5, level: int = 3,
                  patch_size: int = 4) -> keras.Model:
  """Builds official WaveMix with initial_conv='pachify' (defaults: 192/16).

  Args:
    image_size: (height, width) or an int; each side // patch_size must be
      divisible by 2**level.
    include_top: Add the official `pool` head (average pool, Dense `pool.2`).
    num_classes: Head width.
    name: Model name.
    depth: Number of WaveMix blocks.
    mult: Feed-forward expansion.
    ff_channel: Feed-forward bottleneck width.
    final_dim: Token channels.
    dropout: Dropout inside the feed-forward (active in training only).
    level: DWT levels per block (1-4).
    patch_size: Stride of the patchifying conv.

  Returns:
    Model (B, H, W, 3) -> (B, H/4, W/4, final_dim) features, or logits.
  """
  import keras

  if not 1 <= level <= 4:
    raise ValueError(f"WaveMix level must be 1-4, got {level}.")
  height, width = imagesize.require(image_size)
  for side in (height, width):
    tokens = side // patch_size
    if tokens < 2**level or tokens % 2**level:
      raise ValueError(
          f"WaveMix level {level} needs (side // {patch_size}) divisible "
          f"by {2**level} for height and width (the official blocks fail "
          f"otherwise); got image_size {imagesize.text(image_size)}. Use "
          f"multiples of {patch_size * 2**level}.")
  inputs = keras.Input((height, width, 3), name="images")
  init = torch_conv_init
  x = keras.layers.Conv2D(final_dim // 4, 3, padding="same", name="conv.0",
                          **init(3 * 9))(inputs)
  x = keras.layers.Conv2D(final_dim // 2, 3, padding="same", name="conv.1",
                          **init(final_dim // 4 * 9))(x)
  x = keras.layers.Conv2D(final_dim, patch_size, strides=patch_size,
                          name="conv.2",
                          **init(final_dim // 2 * patch_size**2))(x)
  x = keras.layers.Activation("gelu", name="conv.3")(x)
  x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5,
                                      name="conv.4")(x)
  for i in range(depth):
    y = _waveblock(x, f"layers.{i}", level=level, final_dim=final_dim,
                   mult=mult, ff_channel=ff_channel, dropout=dropout)
    x = keras.layers.Add(name=f"layers.{i}.add")([y, x])
  if include_top:
    x = keras.layers.GlobalAveragePooling2D(name="pool.0")(x)
    x = keras.layers.Dense(num_classes, name="pool.2",
                           **init(final_dim))(x)
  return keras.Model(inputs, x, name=name)


# Converter: the transposed convolutions; the rest maps by name.


def assign_conv_transpose(layer, state: common.StateDict, prefix: str) -> list:
  """Conv2DTranspose <- ConvTranspose2d: (in, out, kh, kw) -> (kh, kw, out, in).

  Same axis permutation as a Conv2d weight, but the torch axes mean
  (in, out), not (out, in); the shape check catches a swapped layer.
  """
  key = f"{prefix}.weight"
  weight = state.take(key, context=layer.name)
  if weight.ndim != 4:
    raise ConversionError(
        f"torch tensor {key!r} has shape {tuple(weight.shape)}; Keras layer "
        f"{layer.name!r} needs a 4-D ConvTranspose2d weight.")
  common.assign(layer.kernel, np.transpose(weight, (2, 3, 1, 0)), key,
                layer.name)
  done = [layer.kernel]
  if layer.bias is not None:
    bias_key = f"{prefix}.bias"
    common.assign(layer.bias, state.take(bias_key, context=layer.name),
                  bias_key, layer.name)
    done.append(layer.bias)
  return done


def _assigners() -> list:
  import keras

  return [(keras.layers.Conv2DTranspose, assign_conv_transpose)]


transformer.register(
    "wavemix_192_16",
    transformer.Port(
        build=build_wavemix,
        torch_url=("https://huggingface.co/cloudwalker/wavemix/resolve/main/"
                   "Saved_Models_Weights/ImageNet/wavemix_192_16_75.06.pth"),
        head="pool.2", assigners=_assigners),
    params_m=27.9, imagenet_top1=75.32, feature_dim=192,
    description=("WaveMix-192/16 level 3 (Jeevan et al. 2022), Keras "
                 "port of the official code; size a multiple of 32 "
                 "(paper backbone)"))
