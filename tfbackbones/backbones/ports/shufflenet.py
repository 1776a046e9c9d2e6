"""ShuffleNetV2 2.0x: a Keras port of torchvision's shufflenetv2.py, with its converter.

Why a port: ShuffleNetV2 was never in keras.applications. Its channel shuffle and
channel split are the two custom layers of the CNN ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfbackbones.backbones.ports import blocks, cnn
from tfbackbones.backbones.ports.blocks import (
    ANY_SIZE,
    InputShape,
    batchnorm,
    conv,
    depthwise,
    finish,
    max_pool_3x3_s2,
)

if TYPE_CHECKING:
  import keras


class _ChannelShuffleMixin:
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
    ops = blocks.keras_ops()
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


class _ChannelSliceMixin:
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


# The two custom layers, made Keras layers on first use (see blocks).
layer_classes = blocks.layer_classes(__name__, {
    "ChannelShuffle": _ChannelShuffleMixin,
    "ChannelSlice": _ChannelSliceMixin,
})


def channel_shuffle(x, groups: int, name: str):
  """Adds a `ChannelShuffle` layer named `name`."""
  return layer_classes().ChannelShuffle(groups, name=name)(x)


def channel_slice(x, start: int, stop: int, name: str):
  """Adds a `ChannelSlice` layer named `name`: channels [start, stop)."""
  return layer_classes().ChannelSlice(start, stop, name=name)(x)


def shufflenet_v2_x2_0(input_shape: InputShape = ANY_SIZE,
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

  return finish(inputs, x, include_top=include_top, num_classes=num_classes,
                name=name, head="fc")


cnn.register(
    "shufflenet_v2_x2_0", shufflenet_v2_x2_0,
    torchvision_file="shufflenetv2_x2_0-8be3c8ee.pth",
    heads=("fc.",),
    params_m=7.4, imagenet_top1=76.23,
    feature_dim=2048,
    description=f"ShuffleNetV2 2.0x (Ma et al. 2018), {cnn.TV} "
    "shufflenet_v2_x2_0 (paper backbone)")
