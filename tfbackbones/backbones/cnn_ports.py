"""Keras 3 ports of torchvision CNNs, layer for layer, for exact weight parity.

Why ports: the paper fine-tunes torchvision models. Four of its CNNs have no
Keras 3 implementation at all (RegNetY-3.2GF left keras.applications with
Keras 3; ResNeXt-50, ShuffleNetV2 and DenseNet-161 were never there), and
three that keras.applications does have are *different networks* from the
torchvision ones, so torchvision weights cannot be loaded into them:

* ResNet50: Keras is ResNet v1 (stride on the first 1x1 conv of a bottleneck,
  convs with biases); torchvision is v1.5 (stride on the 3x3 conv, no conv
  biases). Ported as `resnet50_torchvision`.
* EfficientNetV2-S and MobileNetV3-Large: Keras pads stride-2 convolutions
  asymmetrically (TF "same": 0 before, 1 after; MobileNetV3's depthwise uses
  `correct_pad`, also asymmetric), torchvision symmetrically, so the sampling
  grids differ; Keras also rescales inputs to [-1, 1] inside the model while
  torchvision expects ImageNet mean/std. Ported as
  `efficientnetv2_s_torchvision` and `mobilenet_v3_large_torchvision`.
  (ConvNeXt-Tiny needs no port: keras.applications.ConvNeXtTiny computes the
  same function as torchvision's; see tfbackbones/backbones/ports/convnext.py.)

Conventions that make the conversion one-to-one and obviously right:
* Every Keras layer that has weights is named exactly like the torchvision
  module that owns them (`layer1.0.conv2`, `features.3.0.block.2.fc1`), so
  `convert.common.convert_by_name` maps a state_dict by name alone.
* Channels last (NHWC). A torch conv with kernel k, stride 1 and padding
  (k-1)/2 is Keras padding="same" (symmetric for odd k at stride 1); every
  strided conv or pool with padding gets an explicit `ZeroPadding2D` and a
  "valid" op, because TF's "same" pads asymmetrically at stride 2.
* BatchNorm epsilon as torchvision (1e-5; 1e-3 for EfficientNetV2 and
  MobileNetV3) and Keras momentum = 1 - torch momentum.
* The backbone (include_top=False) outputs the spatial feature map that
  torchvision average-pools; include_top=True appends global average pooling
  and the classifier exactly as torchvision does (for parity tests and for
  checking ImageNet accuracy of converted weights).
* Inputs are normalised outside the model with ImageNet mean/std on [0, 1]
  (preprocessing kind "torch"), as torchvision's transforms do.

Max-pool padding: torch pads max-pooling with -inf, ZeroPadding2D with 0. The
ports only max-pool right after a ReLU (values >= 0), where the two agree.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib

if TYPE_CHECKING:
  import keras

InputShape = tuple[int | None, int | None, int]
_ANY_SIZE: InputShape = (None, None, 3)


# ----------------------------------------------------------------------------
# Building blocks mirroring torch modules.


def _layers():
  import keras
  return keras.layers


def conv(x, filters: int, kernel: int, *, stride: int = 1, groups: int = 1,
         bias: bool = False, name: str, padding: int | None = None):
  """torch nn.Conv2d(k, stride, padding=(k-1)//2, groups) in NHWC.

  Args:
    x: Input tensor.
    filters: Output channels.
    kernel: Square kernel size.
    stride: Stride.
    groups: Groups (in == out == groups is still a grouped Conv2D here; use
      `depthwise` for the faster DepthwiseConv2D).
    bias: Whether the torch conv has a bias.
    name: The torch module name (weights are looked up by it).
    padding: torch padding; default (kernel - 1) // 2.
  """
  layers = _layers()
  pad = (kernel - 1) // 2 if padding is None else padding
  if stride == 1 and 2 * pad == kernel - 1:
    mode = "same" if pad else "valid"
  else:
    if pad:
      x = layers.ZeroPadding2D(pad, name=f"{name}.pad")(x)
    mode = "valid"
  return layers.Conv2D(filters, kernel, strides=stride, padding=mode,
                       groups=groups, use_bias=bias, name=name)(x)


def depthwise(x, kernel: int, *, stride: int = 1, bias: bool = False,
              name: str):
  """torch nn.Conv2d(C, C, k, stride, (k-1)//2, groups=C) in NHWC."""
  layers = _layers()
  pad = (kernel - 1) // 2
  if stride == 1:
    mode = "same"
  else:
    x = layers.ZeroPadding2D(pad, name=f"{name}.pad")(x)
    mode = "valid"
  return layers.DepthwiseConv2D(kernel, strides=stride, padding=mode,
                                use_bias=bias, name=name)(x)


def batchnorm(x, name: str, *, eps: float = 1e-5, torch_momentum: float = 0.1):
  """torch nn.BatchNorm2d(eps, momentum) in NHWC (Keras momentum = 1 - m)."""
  return _layers().BatchNormalization(
      axis=-1, epsilon=eps, momentum=1.0 - torch_momentum, name=name)(x)


def activation(x, kind: str | None, name: str | None = None):
  """ReLU / SiLU / Hardswish / Sigmoid / Hardsigmoid, or None for identity.

  Keras's hard_sigmoid is relu6(x + 3) / 6 and hard_silu is x times that,
  exactly torch's Hardsigmoid / Hardswish.
  """
  if kind is None:
    return x
  fn = {"relu": "relu", "silu": "silu", "hardswish": "hard_silu",
        "sigmoid": "sigmoid", "hardsigmoid": "hard_sigmoid"}[kind]
  return _layers().Activation(fn, name=name)(x)


def conv_norm_act(x, filters: int, kernel: int, *, stride: int = 1,
                  groups: int = 1, act: str | None = "relu", name: str,
                  eps: float = 1e-5, torch_momentum: float = 0.1,
                  dw: bool = False):
  """torchvision ops.Conv2dNormActivation: `name.0` conv, `name.1` BN, act."""
  if dw:
    x = depthwise(x, kernel, stride=stride, name=f"{name}.0")
  else:
    x = conv(x, filters, kernel, stride=stride, groups=groups,
             name=f"{name}.0")
  x = batchnorm(x, f"{name}.1", eps=eps, torch_momentum=torch_momentum)
  return activation(x, act, name=f"{name}.2" if act else None)


def squeeze_excitation(x, squeeze: int, *, name: str, act: str = "relu",
                       scale_act: str = "sigmoid"):
  """torchvision ops.SqueezeExcitation: avgpool, fc1, act, fc2, scale * x."""
  layers = _layers()
  channels = int(x.shape[-1])
  s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.avgpool")(x)
  s = layers.Conv2D(squeeze, 1, use_bias=True, name=f"{name}.fc1")(s)
  s = activation(s, act)
  s = layers.Conv2D(channels, 1, use_bias=True, name=f"{name}.fc2")(s)
  s = activation(s, scale_act)
  return layers.Multiply(name=f"{name}.scale")([x, s])


def max_pool_3x3_s2(x, name: str):
  """torch nn.MaxPool2d(3, 2, padding=1) on non-negative inputs."""
  layers = _layers()
  x = layers.ZeroPadding2D(1, name=f"{name}.pad")(x)
  return layers.MaxPooling2D(3, strides=2, padding="valid", name=name)(x)


def _finish(inputs, x, *, include_top: bool, num_classes: int, name: str,
            head: Callable | None = None):
  """Returns the functional model: features, or avgpool + classifier."""
  import keras

  if include_top:
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = head(x, num_classes)
    name = f"{name}_imagenet" if num_classes == 1000 else f"{name}_classifier"
  return keras.Model(inputs, x, name=name)


def _make_divisible(v: float, divisor: int, min_value: int | None = None
                    ) -> int:
  """torchvision.models._utils._make_divisible, verbatim."""
  if min_value is None:
    min_value = divisor
  new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


# ----------------------------------------------------------------------------
# ResNet v1.5 / ResNeXt (torchvision resnet.py).


def _resnet(layers_per_stage: Sequence[int], *, groups: int,
            width_per_group: int, input_shape: InputShape, include_top: bool,
            num_classes: int, name: str) -> keras.Model:
  """torchvision ResNet with Bottleneck blocks (stride on the 3x3 conv)."""
  import keras
  layers = keras.layers

  inputs = keras.Input(input_shape)
  x = conv(inputs, 64, 7, stride=2, name="conv1")
  x = batchnorm(x, "bn1")
  x = layers.ReLU(name="relu")(x)
  x = max_pool_3x3_s2(x, "maxpool")
  in_ch = 64
  for stage, (planes, blocks) in enumerate(
      zip((64, 128, 256, 512), layers_per_stage), start=1):
    width = int(planes * (width_per_group / 64.0)) * groups
    out_ch = planes * 4
    for b in range(blocks):
      p = f"layer{stage}.{b}"
      stride = 2 if (b == 0 and stage > 1) else 1
      identity = x
      y = conv(x, width, 1, name=f"{p}.conv1")
      y = layers.ReLU()(batchnorm(y, f"{p}.bn1"))
      y = conv(y, width, 3, stride=stride, groups=groups, name=f"{p}.conv2")
      y = layers.ReLU()(batchnorm(y, f"{p}.bn2"))
      y = conv(y, out_ch, 1, name=f"{p}.conv3")
      y = batchnorm(y, f"{p}.bn3")
      if b == 0 and (stride != 1 or in_ch != out_ch):
        identity = conv(x, out_ch, 1, stride=stride,
                        name=f"{p}.downsample.0")
        identity = batchnorm(identity, f"{p}.downsample.1")
      x = layers.ReLU(name=f"{p}.relu")(layers.Add()([y, identity]))
      in_ch = out_ch

  def head(v, n):
    return layers.Dense(n, name="fc")(v)
  return _finish(inputs, x, include_top=include_top, num_classes=num_classes,
                 name=name, head=head)


def resnet50_torchvision(input_shape: InputShape = _ANY_SIZE,
                         include_top: bool = False, num_classes: int = 1000,
                         name: str = "resnet50_torchvision") -> keras.Model:
  """torchvision resnet50 (v1.5): 25.56M parameters with the ImageNet head."""
  return _resnet((3, 4, 6, 3), groups=1, width_per_group=64,
                 input_shape=input_shape, include_top=include_top,
                 num_classes=num_classes, name=name)


def resnext50_32x4d(input_shape: InputShape = _ANY_SIZE,
                    include_top: bool = False, num_classes: int = 1000,
                    name: str = "resnext50_32x4d") -> keras.Model:
  """torchvision resnext50_32x4d: 25.03M parameters with the ImageNet head."""
  return _resnet((3, 4, 6, 3), groups=32, width_per_group=4,
                 input_shape=input_shape, include_top=include_top,
                 num_classes=num_classes, name=name)


# ----------------------------------------------------------------------------
# RegNetY (torchvision regnet.py).


def regnet_block_params(depth: int, w_0: int, w_a: float, w_m: float,
                        group_width: int, bottleneck_multiplier: float = 1.0
                        ) -> list[tuple[int, int, int, int]]:
  """torchvision BlockParams.from_init_params, in float32 like torch.

  Returns:
    Per stage: (width_out, depth, group_width, stride).
  """
  quant = 8
  widths_cont = np.arange(depth, dtype=np.float32) * np.float32(w_a) \
      + np.float32(w_0)
  block_capacity = np.round(
      np.log(widths_cont / np.float32(w_0)) / np.float32(math.log(w_m)))
  block_widths = (np.round(
      np.float32(w_0) * np.power(np.float32(w_m), block_capacity) / quant)
                  * quant).astype(np.int32).tolist()
  splits = [w != wp or r != rp for w, wp, r, rp in zip(
      block_widths + [0], [0] + block_widths, block_widths + [0],
      [0] + block_widths)]
  stage_widths = [w for w, t in zip(block_widths, splits[:-1]) if t]
  stage_depths = np.diff([d for d, t in enumerate(splits) if t]).tolist()
  widths = [int(w * bottleneck_multiplier) for w in stage_widths]
  group_widths = [min(group_width, w) for w in widths]
  ws_bot = [_make_divisible(w, g) for w, g in zip(widths, group_widths)]
  stage_widths = [int(w / bottleneck_multiplier) for w in ws_bot]
  return [(w, d, g, 2) for w, d, g in zip(stage_widths, stage_depths,
                                          group_widths)]


# torchvision regnet_y_3_2gf's arguments to BlockParams.from_init_params.
# (depth=21, w_0=88, w_a=26.31, w_m=2.25, group_width=48 -- RegNetX-3.2GF's
# width parameters -- gives a 3-stage, 10.1M-parameter network instead.)
REGNETY_032 = dict(depth=21, w_0=80, w_a=42.63, w_m=2.66, group_width=24)


def regnety_032(input_shape: InputShape = _ANY_SIZE,
                include_top: bool = False, num_classes: int = 1000,
                name: str = "regnety_032") -> keras.Model:
  """torchvision regnet_y_3_2gf: 19.44M parameters with the ImageNet head.

  Stem 3x3/2 conv to 32 channels; four stages (widths 72, 216, 576, 1512;
  depths 2, 5, 13, 1) of ResBottleneckBlocks (1x1, grouped 3x3 with group
  width 24, squeeze-excite with ratio 0.25 of the
  block's *input* width, 1x1), bottleneck multiplier 1.
  """
  import keras
  layers = keras.layers

  se_ratio = 0.25
  inputs = keras.Input(input_shape)
  x = conv_norm_act(inputs, 32, 3, stride=2, name="stem")
  width_in = 32
  for i, (width_out, depth, group_width, stride) in enumerate(
      regnet_block_params(**REGNETY_032), start=1):
    for j in range(depth):
      p = f"trunk_output.block{i}.block{i}-{j}"
      s = stride if j == 0 else 1
      w_b = width_out  # bottleneck multiplier 1
      f = conv_norm_act(x, w_b, 1, name=f"{p}.f.a")
      f = conv_norm_act(f, w_b, 3, stride=s, groups=w_b // group_width,
                        name=f"{p}.f.b")
      f = squeeze_excitation(f, int(round(se_ratio * width_in)),
                             name=f"{p}.f.se")
      f = conv_norm_act(f, width_out, 1, act=None, name=f"{p}.f.c")
      if width_in != width_out or s != 1:
        shortcut = conv_norm_act(x, width_out, 1, stride=s, act=None,
                                 name=f"{p}.proj")
      else:
        shortcut = x
      x = layers.ReLU(name=f"{p}.activation")(layers.Add()([shortcut, f]))
      width_in = width_out

  def head(v, n):
    return layers.Dense(n, name="fc")(v)
  return _finish(inputs, x, include_top=include_top, num_classes=num_classes,
                 name=name, head=head)


# ----------------------------------------------------------------------------
# ShuffleNetV2 (torchvision shufflenetv2.py).


@functools.cache
def layer_classes() -> types.SimpleNamespace:
  """Defines the two custom layers once (lazily: this module must not import
  Keras at import time, so that listing backbones stays fast)."""
  import keras

  @keras.saving.register_keras_serializable(package="tfbackbones")
  class ChannelShuffle(keras.layers.Layer):
    """torchvision channel_shuffle(x, groups) on NHWC tensors.

    torch views NCHW channels as (groups, C/groups), transposes to
    (C/groups, groups) and flattens: output channel j*groups + g is input
    channel g*(C/groups) + j. The same reshape/transpose on the last axis
    gives the same order in NHWC.
    """

    def __init__(self, groups: int = 2, **kwargs):
      super().__init__(**kwargs)
      self.groups = groups

    def call(self, x):
      ops = keras.ops
      shape = ops.shape(x)
      channels = x.shape[-1]
      y = ops.reshape(x, (shape[0], shape[1], shape[2], self.groups,
                          channels // self.groups))
      y = ops.transpose(y, (0, 1, 2, 4, 3))
      return ops.reshape(y, (shape[0], shape[1], shape[2], channels))

    def compute_output_shape(self, input_shape):
      return input_shape

    def get_config(self):
      return {**super().get_config(), "groups": self.groups}

  @keras.saving.register_keras_serializable(package="tfbackbones")
  class ChannelSlice(keras.layers.Layer):
    """x[..., start:stop]: torch's `x.chunk(2, dim=1)` in NHWC.

    A layer rather than a Lambda so that models stay serialisable.
    """

    def __init__(self, start: int, stop: int, **kwargs):
      super().__init__(**kwargs)
      self.start = start
      self.stop = stop

    def call(self, x):
      return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
      return tuple(input_shape[:-1]) + (self.stop - self.start,)

    def get_config(self):
      return {**super().get_config(), "start": self.start,
              "stop": self.stop}

  return types.SimpleNamespace(ChannelShuffle=ChannelShuffle,
                               ChannelSlice=ChannelSlice)


def channel_shuffle(x, groups: int, name: str):
  return layer_classes().ChannelShuffle(groups, name=name)(x)


def channel_slice(x, start: int, stop: int, name: str):
  return layer_classes().ChannelSlice(start, stop, name=name)(x)


def shufflenet_v2_x2_0(input_shape: InputShape = _ANY_SIZE,
                       include_top: bool = False, num_classes: int = 1000,
                       name: str = "shufflenet_v2_x2_0") -> keras.Model:
  """torchvision shufflenet_v2_x2_0: 7.39M parameters with the ImageNet head.

  Stride-1 units split channels in halves (x1 passes through, x2 goes through
  branch2); stride-2 units feed the whole input to both branches; both then
  concatenate [branch1-or-x1, branch2] and channel-shuffle with 2 groups.
  """
  import keras
  layers = keras.layers

  repeats = (4, 8, 4)
  channels = (24, 244, 488, 976, 2048)
  inputs = keras.Input(input_shape)
  x = conv(inputs, channels[0], 3, stride=2, name="conv1.0")
  x = layers.ReLU(name="conv1.2")(batchnorm(x, "conv1.1"))
  x = max_pool_3x3_s2(x, "maxpool")
  in_ch = channels[0]
  for stage, (n, out_ch) in enumerate(zip(repeats, channels[1:4]), start=2):
    half = out_ch // 2
    for i in range(n):
      p = f"stage{stage}.{i}"
      stride = 2 if i == 0 else 1
      if stride == 1:
        x1 = channel_slice(x, 0, in_ch // 2, name=f"{p}.chunk0")
        b2_in = channel_slice(x, in_ch // 2, in_ch, name=f"{p}.chunk1")
      else:
        b1 = depthwise(x, 3, stride=2, name=f"{p}.branch1.0")
        b1 = batchnorm(b1, f"{p}.branch1.1")
        b1 = conv(b1, half, 1, name=f"{p}.branch1.2")
        x1 = layers.ReLU()(batchnorm(b1, f"{p}.branch1.3"))
        b2_in = x
      b2 = conv(b2_in, half, 1, name=f"{p}.branch2.0")
      b2 = layers.ReLU()(batchnorm(b2, f"{p}.branch2.1"))
      b2 = depthwise(b2, 3, stride=stride, name=f"{p}.branch2.3")
      b2 = batchnorm(b2, f"{p}.branch2.4")
      b2 = conv(b2, half, 1, name=f"{p}.branch2.5")
      b2 = layers.ReLU()(batchnorm(b2, f"{p}.branch2.6"))
      x = layers.Concatenate(axis=-1, name=f"{p}.cat")([x1, b2])
      x = channel_shuffle(x, 2, name=f"{p}.shuffle")
      in_ch = out_ch
  x = conv(x, channels[4], 1, name="conv5.0")
  x = layers.ReLU(name="conv5.2")(batchnorm(x, "conv5.1"))

  def head(v, n):
    return layers.Dense(n, name="fc")(v)
  return _finish(inputs, x, include_top=include_top, num_classes=num_classes,
                 name=name, head=head)


# ----------------------------------------------------------------------------
# DenseNet-161 (torchvision densenet.py).


def densenet161(input_shape: InputShape = _ANY_SIZE,
                include_top: bool = False, num_classes: int = 1000,
                name: str = "densenet161") -> keras.Model:
  """torchvision densenet161: 28.68M parameters with the ImageNet head.

  Growth rate 48, blocks (6, 12, 36, 24), 96 stem channels, bottleneck 4x.
  The features end with norm5 and the ReLU torchvision applies in forward().
  """
  import keras
  layers = keras.layers

  growth, blocks, init, bn_size = 48, (6, 12, 36, 24), 96, 4
  inputs = keras.Input(input_shape)
  x = conv(inputs, init, 7, stride=2, name="features.conv0")
  x = layers.ReLU(name="features.relu0")(batchnorm(x, "features.norm0"))
  x = max_pool_3x3_s2(x, "features.pool0")
  channels = init
  for i, n in enumerate(blocks, start=1):
    for j in range(1, n + 1):
      p = f"features.denseblock{i}.denselayer{j}"
      y = layers.ReLU()(batchnorm(x, f"{p}.norm1"))
      y = conv(y, bn_size * growth, 1, name=f"{p}.conv1")
      y = layers.ReLU()(batchnorm(y, f"{p}.norm2"))
      y = conv(y, growth, 3, name=f"{p}.conv2")
      x = layers.Concatenate(axis=-1, name=f"{p}.cat")([x, y])
      channels += growth
    if i != len(blocks):
      p = f"features.transition{i}"
      x = layers.ReLU()(batchnorm(x, f"{p}.norm"))
      channels //= 2
      x = conv(x, channels, 1, name=f"{p}.conv")
      x = layers.AveragePooling2D(2, strides=2, name=f"{p}.pool")(x)
  x = layers.ReLU(name="features.relu5")(batchnorm(x, "features.norm5"))

  def head(v, n):
    return layers.Dense(n, name="classifier")(v)
  return _finish(inputs, x, include_top=include_top, num_classes=num_classes,
                 name=name, head=head)


# ----------------------------------------------------------------------------
# EfficientNetV2-S (torchvision efficientnet.py).

# (block, expand_ratio, kernel, stride, in, out, layers); F = FusedMBConv.
_EFFNETV2_S = (
    ("F", 1, 3, 1, 24, 24, 2),
    ("F", 4, 3, 2, 24, 48, 4),
    ("F", 4, 3, 2, 48, 64, 4),
    ("M", 4, 3, 2, 64, 128, 6),
    ("M", 6, 3, 1, 128, 160, 9),
    ("M", 6, 3, 2, 160, 256, 15),
)


def efficientnetv2_s_torchvision(
    input_shape: InputShape = _ANY_SIZE, include_top: bool = False,
    num_classes: int = 1000, name: str = "efficientnetv2_s_torchvision",
    dropout: float = 0.2) -> keras.Model:
  """torchvision efficientnet_v2_s: 21.46M parameters with the ImageNet head.

  BatchNorm eps 1e-3, SiLU everywhere, squeeze-excite (ratio 1/4 of the
  block's input channels) in MBConv blocks only; stochastic depth is a no-op
  at inference and omitted.
  """
  import keras
  layers = keras.layers

  bn = dict(eps=1e-3, torch_momentum=0.1)
  inputs = keras.Input(input_shape)
  x = conv_norm_act(inputs, 24, 3, stride=2, act="silu", name="features.0",
                    **bn)
  stage_index = 1
  for kind, expand, kernel, stride, c_in, c_out, n in _EFFNETV2_S:
    for i in range(n):
      p = f"features.{stage_index}.{i}.block"
      cin = c_in if i == 0 else c_out
      s = stride if i == 0 else 1
      expanded = _make_divisible(cin * expand, 8)
      inp = x
      if kind == "F":
        if expanded != cin:
          y = conv_norm_act(x, expanded, kernel, stride=s, act="silu",
                            name=f"{p}.0", **bn)
          y = conv_norm_act(y, c_out, 1, act=None, name=f"{p}.1", **bn)
        else:
          y = conv_norm_act(x, c_out, kernel, stride=s, act="silu",
                            name=f"{p}.0", **bn)
      else:
        k = 0
        y = x
        if expanded != cin:
          y = conv_norm_act(y, expanded, 1, act="silu", name=f"{p}.0", **bn)
          k = 1
        y = conv_norm_act(y, expanded, kernel, stride=s, act="silu", dw=True,
                          name=f"{p}.{k}", **bn)
        y = squeeze_excitation(y, max(1, cin // 4), act="silu",
                               name=f"{p}.{k + 1}")
        y = conv_norm_act(y, c_out, 1, act=None, name=f"{p}.{k + 2}", **bn)
      if s == 1 and cin == c_out:
        y = layers.Add()([y, inp])
      x = y
    stage_index += 1
  x = conv_norm_act(x, 1280, 1, act="silu", name=f"features.{stage_index}",
                    **bn)

  def head(v, n):
    v = layers.Dropout(dropout, name="classifier.0")(v)
    return layers.Dense(n, name="classifier.1")(v)
  return _finish(inputs, x, include_top=include_top, num_classes=num_classes,
                 name=name, head=head)


# ----------------------------------------------------------------------------
# MobileNetV3-Large (torchvision mobilenetv3.py).

# (in, kernel, expanded, out, use_se, activation, stride)
_MBV3_LARGE = (
    (16, 3, 16, 16, False, "relu", 1),
    (16, 3, 64, 24, False, "relu", 2),
    (24, 3, 72, 24, False, "relu", 1),
    (24, 5, 72, 40, True, "relu", 2),
    (40, 5, 120, 40, True, "relu", 1),
    (40, 5, 120, 40, True, "relu", 1),
    (40, 3, 240, 80, False, "hardswish", 2),
    (80, 3, 200, 80, False, "hardswish", 1),
    (80, 3, 184, 80, False, "hardswish", 1),
    (80, 3, 184, 80, False, "hardswish", 1),
    (80, 3, 480, 112, True, "hardswish", 1),
    (112, 3, 672, 112, True, "hardswish", 1),
    (112, 5, 672, 160, True, "hardswish", 2),
    (160, 5, 960, 160, True, "hardswish", 1),
    (160, 5, 960, 160, True, "hardswish", 1),
)


def mobilenet_v3_large_torchvision(
    input_shape: InputShape = _ANY_SIZE, include_top: bool = False,
    num_classes: int = 1000, name: str = "mobilenet_v3_large_torchvision",
    dropout: float = 0.2) -> keras.Model:
  """torchvision mobilenet_v3_large: 5.48M parameters with the ImageNet head.

  BatchNorm eps 1e-3, momentum 0.01 (torch). The backbone ends at the
  960-channel 1x1 conv, like keras.applications' include_top=False; the
  ImageNet head is avgpool, Linear(960, 1280), Hardswish, Dropout, Linear.
  """
  import keras
  layers = keras.layers

  bn = dict(eps=1e-3, torch_momentum=0.01)
  inputs = keras.Input(input_shape)
  x = conv_norm_act(inputs, 16, 3, stride=2, act="hardswish",
                    name="features.0", **bn)
  for i, (cin, kernel, expanded, cout, use_se, act, stride) in enumerate(
      _MBV3_LARGE, start=1):
    p = f"features.{i}.block"
    inp = x
    k = 0
    y = x
    if expanded != cin:
      y = conv_norm_act(y, expanded, 1, act=act, name=f"{p}.0", **bn)
      k += 1
    y = conv_norm_act(y, expanded, kernel, stride=stride, act=act, dw=True,
                      name=f"{p}.{k}", **bn)
    k += 1
    if use_se:
      y = squeeze_excitation(y, _make_divisible(expanded // 4, 8),
                             act="relu", scale_act="hardsigmoid",
                             name=f"{p}.{k}")
      k += 1
    y = conv_norm_act(y, cout, 1, act=None, name=f"{p}.{k}", **bn)
    if stride == 1 and cin == cout:
      y = layers.Add()([y, inp])
    x = y
  x = conv_norm_act(x, 960, 1, act="hardswish",
                    name=f"features.{len(_MBV3_LARGE) + 1}", **bn)

  def head(v, n):
    v = layers.Dense(1280, name="classifier.0")(v)
    v = activation(v, "hardswish", name="classifier.1")
    v = layers.Dropout(dropout, name="classifier.2")(v)
    return layers.Dense(n, name="classifier.3")(v)
  return _finish(inputs, x, include_top=include_top, num_classes=num_classes,
                 name=name, head=head)


# ----------------------------------------------------------------------------
# Registry.

# name -> constructor; the converters in tfbackbones.convert.torchvision_cnn
# build through this table too, so a spec and its converter cannot diverge.
CONSTRUCTORS: dict[str, Callable[..., keras.Model]] = {
    "regnety_032": regnety_032,
    "resnext50_32x4d": resnext50_32x4d,
    "shufflenet_v2_x2_0": shufflenet_v2_x2_0,
    "densenet161": densenet161,
    "resnet50_torchvision": resnet50_torchvision,
    "efficientnetv2_s_torchvision": efficientnetv2_s_torchvision,
    "mobilenet_v3_large_torchvision": mobilenet_v3_large_torchvision,
}

# Where torchvision publishes the weights each spec's imagenet_top1 refers to.
TORCHVISION_WEIGHTS: dict[str, str] = {
    "regnety_032": "https://download.pytorch.org/models/"
                   "regnet_y_3_2gf-9180c971.pth",
    "resnext50_32x4d": "https://download.pytorch.org/models/"
                       "resnext50_32x4d-1a0047aa.pth",
    "shufflenet_v2_x2_0": "https://download.pytorch.org/models/"
                          "shufflenetv2_x2_0-8be3c8ee.pth",
    "densenet161": "https://download.pytorch.org/models/"
                   "densenet161-8d451a50.pth",
    "resnet50_torchvision": "https://download.pytorch.org/models/"
                            "resnet50-0676ba61.pth",
    "efficientnetv2_s_torchvision": "https://download.pytorch.org/models/"
                                    "efficientnet_v2_s-dd5fe13b.pth",
    "mobilenet_v3_large_torchvision": "https://download.pytorch.org/models/"
                                      "mobilenet_v3_large-5c1a4163.pth",
}


def build_port(spec: registry.BackboneSpec, image_size: tuple,
               weights: str) -> keras.Model:
  """Builder for the ported backbones (`BackboneSpec.builder`).

  There are no Keras ImageNet weights to download for these models: the
  pretrained weights are torchvision's, converted once with
  `python -m tfbackbones.convert` into the Keras cache (then `--weights=imagenet`)
  or anywhere (then `--weights=PATH`).

  Args:
    spec: The spec.
    image_size: (height, width); square or not.
    weights: "none", a path to a converted `.weights.h5`, or "imagenet" (the
      converted file in the Keras cache, or an error saying how to make it).

  Returns:
    Functional model named `spec.name`: (B, H, W, 3) -> (B, h, w, C).

  Raises:
    WeightsNotAvailableError: "imagenet" not converted yet, or a missing file.
    WeightsMismatchError: If the file does not fit.
  """
  choice = weights_lib.parse_weights_arg(weights)
  user_path = None
  if choice == "imagenet":
    user_path = weights_lib.ported_imagenet_path(
        spec, TORCHVISION_WEIGHTS.get(spec.name, "<torchvision .pth>"))
  elif choice != "none":
    user_path = weights_lib.check_weights_path(choice)
  model = CONSTRUCTORS[spec.name](
      input_shape=(*image_size, 3), include_top=False,
      name=spec.name)
  if user_path is not None:
    weights_lib.load_weights_file(model, user_path, spec.name)
  return model


def _add(name: str, *, params_m: float, imagenet_top1: float,
         feature_dim: int, description: str, default_size: int = 224) -> None:
  registry.register(registry.BackboneSpec(
      name=name,
      source="tfbackbones",
      default_size=default_size,
      preprocessing="torch",
      params_m=params_m,
      imagenet_top1=imagenet_top1,
      feature_dim=feature_dim,
      weights_file=weights_lib.ported_weights_file(name),
      description=description,
      builder=build_port,
  ))


# params_m and imagenet_top1 are docs/protocol.md's (the paper's torchvision
# weights; for RegNetY, ResNeXt and MobileNetV3 these are torchvision's
# IMAGENET1K_V2 weights, for the others IMAGENET1K_V1).
_TV = "Keras port of torchvision"
_add("regnety_032", params_m=19.4, imagenet_top1=81.98, feature_dim=1512,
     description=f"RegNetY-3.2GF (Radosavovic et al. 2020), {_TV} "
     "regnet_y_3_2gf (paper backbone)")
_add("resnext50_32x4d", params_m=25.0, imagenet_top1=81.20, feature_dim=2048,
     description=f"ResNeXt-50 32x4d (Xie et al. 2017), {_TV} resnext50_32x4d "
     "(paper backbone)")
_add("shufflenet_v2_x2_0", params_m=7.4, imagenet_top1=76.23,
     feature_dim=2048,
     description=f"ShuffleNetV2 2.0x (Ma et al. 2018), {_TV} "
     "shufflenet_v2_x2_0 (paper backbone)")
_add("densenet161", params_m=28.7, imagenet_top1=77.14, feature_dim=2208,
     description=f"DenseNet-161 (Huang et al. 2017), {_TV} densenet161 "
     "(paper backbone)")
_add("resnet50_torchvision", params_m=25.6, imagenet_top1=76.13,
     feature_dim=2048,
     description=f"ResNet-50 v1.5, {_TV} resnet50 (the paper's ResNet-50; "
     "Keras ResNet50 is v1)")
_add("efficientnetv2_s_torchvision", params_m=21.5, imagenet_top1=84.23,
     feature_dim=1280, default_size=384,
     description=f"EfficientNetV2-S, {_TV} efficientnet_v2_s (the paper's; "
     "Keras pads stride-2 convs differently)")
_add("mobilenet_v3_large_torchvision", params_m=5.5, imagenet_top1=75.27,
     feature_dim=960,
     description=f"MobileNetV3-Large, {_TV} mobilenet_v3_large (the paper's; "
     "Keras pads stride-2 convs differently)")
