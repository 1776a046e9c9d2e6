"""MobileNetV3-Large: a Keras port of torchvision's mobilenetv3.py, with its converter.

Why a port: keras.applications.MobileNetV3Large is a different function from
torchvision's. Its depthwise convolutions pad with `correct_pad`, asymmetrically, where
torchvision pads symmetrically, so the sampling grids differ; Keras also rescales
inputs inside the model while torchvision expects ImageNet mean/std. Ported as
`mobilenet_v3_large_torchvision`; converter alias `mobilenet_v3_large` (the Keras name,
whose network torchvision's weights do not fit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfbackbones.backbones.ports import cnn
from tfbackbones.backbones.ports.blocks import (
    ANY_SIZE,
    InputShape,
    activation,
    conv_norm_act,
    finish,
    make_divisible,
    squeeze_excitation,
)

if TYPE_CHECKING:
  import keras


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
    input_shape: InputShape = ANY_SIZE, include_top: bool = False,
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
      y = squeeze_excitation(y, make_divisible(expanded // 4, 8),
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
  return finish(inputs, x, include_top=include_top, num_classes=num_classes,
                name=name, head=head)


cnn.register(
    "mobilenet_v3_large_torchvision", mobilenet_v3_large_torchvision,
    torchvision_file="mobilenet_v3_large-5c1a4163.pth",
    heads=("classifier.",),
    aliases=("mobilenet_v3_large",),
    params_m=5.5, imagenet_top1=75.27,
    feature_dim=960,
    description=f"MobileNetV3-Large, {cnn.TV} mobilenet_v3_large (the paper's; "
    "Keras pads stride-2 convs differently)")
