"""ResNet-50 v1.5 and ResNeXt-50 32x4d: Keras ports of torchvision's resnet.py, with converter.

Why ports: ResNeXt-50 was never in keras.applications, and Keras's ResNet50 is a
different network from torchvision's, so torchvision weights cannot be loaded into it:
Keras is ResNet v1 (stride on the first 1x1 conv of a bottleneck, convs with biases);
torchvision is v1.5 (stride on the 3x3 conv, no conv biases). Ported as
`resnet50_torchvision` (converter alias `resnet50`, the name a user of the paper would
try first) and `resnext50_32x4d`.
"""

from __future__ import annotations

from collections.abc import Sequence
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

if TYPE_CHECKING:
  import keras


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

  return finish(inputs, x, include_top=include_top, num_classes=num_classes,
                name=name, head="fc")


def resnet50_torchvision(input_shape: InputShape = ANY_SIZE,
                         include_top: bool = False, num_classes: int = 1000,
                         name: str = "resnet50_torchvision") -> keras.Model:
  """torchvision resnet50 (v1.5): 25.56M parameters with the ImageNet head."""
  return _resnet((3, 4, 6, 3), groups=1, width_per_group=64,
                 input_shape=input_shape, include_top=include_top,
                 num_classes=num_classes, name=name)


def resnext50_32x4d(input_shape: InputShape = ANY_SIZE,
                    include_top: bool = False, num_classes: int = 1000,
                    name: str = "resnext50_32x4d") -> keras.Model:
  """torchvision resnext50_32x4d: 25.03M parameters with the ImageNet head."""
  return _resnet((3, 4, 6, 3), groups=32, width_per_group=4,
                 input_shape=input_shape, include_top=include_top,
                 num_classes=num_classes, name=name)


cnn.register(
    "resnext50_32x4d", resnext50_32x4d,
    torchvision_file="resnext50_32x4d-1a0047aa.pth",
    heads=("fc.",),
    params_m=25.0, imagenet_top1=81.20, feature_dim=2048,
    description=f"ResNeXt-50 32x4d (Xie et al. 2017), {cnn.TV} resnext50_32x4d "
    "(paper backbone)")
cnn.register(
    "resnet50_torchvision", resnet50_torchvision,
    torchvision_file="resnet50-0676ba61.pth",
    heads=("fc.",),
    aliases=("resnet50",),
    params_m=25.6, imagenet_top1=76.13,
    feature_dim=2048,
    description=f"ResNet-50 v1.5, {cnn.TV} resnet50 (the paper's ResNet-50; "
    "Keras ResNet50 is v1)")
