"""What the ports are built from: torch modules as Keras layers, torch's initialiser, and
the one way a port defines a custom Keras layer.

**Torch modules mirrored** (the CNN ports): each function adds the Keras layers that
compute what one torch module computes. They are plain functions over Keras's own layers
(no custom layer, so nothing to register for saving). Conventions that make the
conversion one-to-one and obviously right:

* Every Keras layer that has weights is named exactly like the torchvision module that
  owns them (`layer1.0.conv2`, `features.3.0.block.2.fc1`), so
  `convert.common.convert_by_name` maps a state_dict by name alone.
* Channels last (NHWC). A torch conv with kernel k, stride 1 and padding (k-1)/2 is
  Keras padding="same" (symmetric for odd k at stride 1); every strided conv or pool
  with padding gets an explicit `ZeroPadding2D` and a "valid" op, because TF's "same"
  pads asymmetrically at stride 2.
* BatchNorm epsilon as torchvision (1e-5; 1e-3 for EfficientNetV2 and MobileNetV3) and
  Keras momentum = 1 - torch momentum.

Max-pool padding: torch pads max-pooling with -inf, ZeroPadding2D with 0. The ports
only max-pool right after a ReLU (values >= 0), where the two agree.

**Custom layers** (`layer_classes`): where no Keras layer computes what torch does
(channel shuffle, shifted-window attention, the Haar DWT), a port writes the layer's
methods as a plain "mixin" class at module level and gets the Keras class from
`layer_classes`. Why not `class X(keras.layers.Layer)` directly: a family module
registers its spec when `tfbackbones.backbones` is imported, and that import must not
import Keras (listing backbones stays instant); a Keras base class would need Keras at
import. Each class is registered for saving as `tfbackbones>Name` (the names saved
`model.keras` files refer to), once, on first use.

Keras is imported inside the functions for the same reason.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable
from typing import Any

InputShape = tuple[int | None, int | None, int]
ANY_SIZE: InputShape = (None, None, 3)


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


def finish(inputs, x, *, include_top: bool, num_classes: int, name: str,
           head: str | Callable):
  """Returns the functional model: features, or avgpool + classifier.

  Args:
    inputs: The model's input.
    x: The feature map torchvision average-pools.
    include_top: Append average pooling and the classifier.
    num_classes: The classifier's width.
    name: The model's name (with the classifier: `_imagenet` or `_classifier` added).
    head: The torch name of a plain Linear classifier (`fc`, `classifier`), or
      `f(pooled, num_classes)` for a longer one.
  """
  import keras

  if include_top:
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    if isinstance(head, str):
      x = keras.layers.Dense(num_classes, name=head)(x)
    else:
      x = head(x, num_classes)
    name = f"{name}_imagenet" if num_classes == 1000 else f"{name}_classifier"
  return keras.Model(inputs, x, name=name)


def make_divisible(v: float, divisor: int, min_value: int | None = None
                    ) -> int:
  """torchvision.models._utils._make_divisible, verbatim."""
  if min_value is None:
    min_value = divisor
  new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


def torch_conv_init(fan_in: int) -> dict[str, Any]:
  """Initializers equal in distribution to torch's Conv/Linear defaults.

  torch draws both weight (kaiming_uniform, a=sqrt(5)) and bias from
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)); used where the reference keeps them, so that a
  port trained from scratch starts where the reference would.

  Args:
    fan_in: Fan-in of the torch layer (in_channels * kernel area).

  Returns:
    Keyword arguments for a Keras Conv/Dense layer.
  """
  import keras

  bound = 1 / math.sqrt(fan_in)
  return dict(
      kernel_initializer=keras.initializers.VarianceScaling(
          1 / 3, mode="fan_in", distribution="uniform"),
      bias_initializer=keras.initializers.RandomUniform(-bound, bound))


def keras_ops():
  """`keras.ops`, imported when a custom layer first runs (see the module docstring)."""
  from keras import ops
  return ops


def layer_classes(module: str, mixins: dict[str, type]
                  ) -> Callable[[], types.SimpleNamespace]:
  """Returns a function that makes a port's custom Keras layers, once, on first call.

  Each class is `class Name(mixin, keras.layers.Layer)`, registered for saving as
  `tfbackbones>Name`; the name is the key in `mixins`, so it must stay what saved
  models say.

  Args:
    module: The port's module name (`__name__`), recorded as the classes' module.
    mixins: {class name: mixin holding the layer's methods}.

  Returns:
    A cached function returning a namespace with one attribute per class name.
  """

  @functools.cache
  def make() -> types.SimpleNamespace:
    import keras

    classes = {}
    for cls_name, mixin in mixins.items():
      cls = type(cls_name, (mixin, keras.layers.Layer),
                 {"__module__": module, "__doc__": mixin.__doc__})
      classes[cls_name] = keras.saving.register_keras_serializable(
          package="tfbackbones")(cls)
    return types.SimpleNamespace(**classes)

  return make
