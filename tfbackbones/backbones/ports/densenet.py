"""DenseNet-161: a Keras port of torchvision's densenet.py, with its converter.

Why a port: keras.applications has DenseNet-121/169/201 only. torchvision's released
DenseNet files use pre-0.4 key names; the converter renames them as torchvision does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfbackbones.backbones.ports import cnn
from tfbackbones.backbones.ports.blocks import (
  ANY_SIZE,
  InputShape,
  batchnorm,
  conv,
  finish,
  max_pool_3x3_s2,
)
from tfbackbones.convert import common

if TYPE_CHECKING:
  import keras

# torchvision's released DenseNet files use pre-0.4 names ('norm.1' for
# 'norm1'); torchvision renames them on load with this very pattern.
_DENSENET_LEGACY = common.regex_renamer([(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var))$", r"\1\2")])


def densenet161(input_shape: InputShape = ANY_SIZE,
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

  return finish(inputs, x, include_top=include_top, num_classes=num_classes,
                name=name, head="classifier")


cnn.register(
    "densenet161", densenet161,
    torchvision_file="densenet161-8d451a50.pth",
    heads=("classifier.",),
    rename=_DENSENET_LEGACY,
    params_m=28.7, imagenet_top1=77.14, feature_dim=2208,
    description=f"DenseNet-161 (Huang et al. 2017), {cnn.TV} densenet161 "
    "(paper backbone)")
