"""RegNetY-3.2GF: a Keras port of torchvision's regnet.py, with its converter.

Why a port: RegNetY left keras.applications with Keras 3. Converter aliases:
`regnet_y_3_2gf` (torchvision's name).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

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
  ws_bot = [make_divisible(w, g) for w, g in zip(widths, group_widths)]
  stage_widths = [int(w / bottleneck_multiplier) for w in ws_bot]
  return [(w, d, g, 2) for w, d, g in zip(stage_widths, stage_depths,
                                          group_widths)]


# torchvision regnet_y_3_2gf's arguments to BlockParams.from_init_params.
# (depth=21, w_0=88, w_a=26.31, w_m=2.25, group_width=48 -- RegNetX-3.2GF's
# width parameters -- gives a 3-stage, 10.1M-parameter network instead.)
REGNETY_032 = dict(depth=21, w_0=80, w_a=42.63, w_m=2.66, group_width=24)


def regnety_032(input_shape: InputShape = ANY_SIZE,
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

  return finish(inputs, x, include_top=include_top, num_classes=num_classes,
                name=name, head="fc")


cnn.register(
    "regnety_032", regnety_032,
    torchvision_file="regnet_y_3_2gf-9180c971.pth",
    heads=("fc.",),
    aliases=("regnet_y_3_2gf",),
    params_m=19.4, imagenet_top1=81.98, feature_dim=1512,
    description=f"RegNetY-3.2GF (Radosavovic et al. 2020), {cnn.TV} "
    "regnet_y_3_2gf (paper backbone)")
