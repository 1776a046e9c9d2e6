"""EfficientNetV2-S: a Keras port of torchvision's efficientnet.py, with its converter.

Why a port: keras.applications.EfficientNetV2S is a different function from
torchvision's. Keras pads stride-2 convolutions asymmetrically (TF "same": 0 before, 1
after), torchvision symmetrically, so the sampling grids differ; Keras also rescales
inputs to [-1, 1] inside the model while torchvision expects ImageNet mean/std. Ported
as `efficientnetv2_s_torchvision`; converter aliases `efficientnetv2_s` (the Keras name,
whose network torchvision's weights do not fit) and `efficientnet_v2_s` (torchvision's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfbackbones.backbones.ports import cnn
from tfbackbones.backbones.ports.blocks import (
    ANY_SIZE,
    InputShape,
    conv_norm_act,
    finish,
    make_divisible,
    squeeze_excitation,
)

if TYPE_CHECKING:
  import keras


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
    input_shape: InputShape = ANY_SIZE, include_top: bool = False,
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
      expanded = make_divisible(cin * expand, 8)
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
  return finish(inputs, x, include_top=include_top, num_classes=num_classes,
                name=name, head=head)


cnn.register(
    "efficientnetv2_s_torchvision", efficientnetv2_s_torchvision,
    torchvision_file="efficientnet_v2_s-dd5fe13b.pth",
    heads=("classifier.",),
    aliases=("efficientnetv2_s", "efficientnet_v2_s"),
    params_m=21.5, imagenet_top1=84.23,
    feature_dim=1280, default_size=384,
    description=f"EfficientNetV2-S, {cnn.TV} efficientnet_v2_s (the paper's; "
    "Keras pads stride-2 convs differently)")
