"""Converters from torchvision CNN state_dicts to tfbackbones Keras models.

Registered architecture names are the backbone names the weights load into
(`tfbackbones.backbones.get(name).build(size, weights=PATH)`):

  regnety_032, resnext50_32x4d, shufflenet_v2_x2_0, densenet161,
  resnet50_torchvision, efficientnetv2_s_torchvision,
  mobilenet_v3_large_torchvision  -> the ports in backbones/cnn_ports.py
  convnext_tiny                   -> keras.applications.ConvNeXtTiny

plus aliases for the keras.applications names a user of the paper would try
first: `resnet50`, `efficientnetv2_s`, `mobilenet_v3_large` convert to the
*_torchvision ports, because torchvision's weights do not fit the Keras
networks of those names (see cnn_ports.py for why), and
`regnet_y_3_2gf` / `efficientnet_v2_s` (torchvision's own names). The command
line prints which backbone the result belongs to.

ConvNeXt-Tiny maps onto keras.applications directly: same stem (4x4/4 conv +
LayerNorm eps 1e-6), same blocks (depthwise 7x7 conv with bias, LayerNorm,
Linear 4x, exact GELU, Linear, per-channel layer scale), same downsampling
(LayerNorm then 2x2/2 conv), and Keras's built-in input normalisation is
torchvision's ImageNet mean/std on 0..255 inputs. One Keras quirk: with
include_top=False Keras ends the backbone with a per-position LayerNorm (its
ImageNet files put the head LayerNorm's weights there); it receives
torchvision's `classifier.0` LayerNorm. So the converted backbone's output
equals torchvision's `classifier[0](features(x))` position by position, and
the include_top model (avgpool, LayerNorm, Linear) equals torchvision's
logits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tfbackbones.backbones import cnn_ports
from tfbackbones.convert import common
from tfbackbones.convert.registry import ConversionError, register

# Head tensors per port (dropped unless keep_head).
_HEADS: dict[str, tuple[str, ...]] = {
    "regnety_032": ("fc.",),
    "resnext50_32x4d": ("fc.",),
    "shufflenet_v2_x2_0": ("fc.",),
    "densenet161": ("classifier.",),
    "resnet50_torchvision": ("fc.",),
    "efficientnetv2_s_torchvision": ("classifier.",),
    "mobilenet_v3_large_torchvision": ("classifier.",),
}

# torchvision's released DenseNet files use pre-0.4 names ('norm.1' for
# 'norm1'); torchvision renames them on load with this very pattern.
_DENSENET_LEGACY = common.regex_renamer([(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var))$", r"\1\2")])


def convert_port(name: str, state_dict: Mapping[str, np.ndarray], *,
                 keep_head: bool, num_classes: int,
                 rename: Callable[[str], str] | None = None):
  """Builds the port `name` and assigns a torchvision state_dict by name.

  Args:
    name: A key of `cnn_ports.CONSTRUCTORS`.
    state_dict: {torch key: array}.
    keep_head: Build and fill the ImageNet classifier too.
    num_classes: Classes of that classifier (must match the tensors).
    rename: Key rewriting for legacy checkpoints.

  Returns:
    The Keras model (named `name` without the head), any input size.
  """
  state = common.StateDict(state_dict, rename=rename)
  model = cnn_ports.CONSTRUCTORS[name](include_top=keep_head,
                                       num_classes=num_classes, name=name)
  if not keep_head:
    for prefix in _HEADS[name]:
      state.drop(prefix)
  common.convert_by_name(model, state)
  return model


def _port_converter(name: str, rename: Callable[[str], str] | None = None):
  def convert(state_dict, *, keep_head: bool = False,
              num_classes: int = 1000):
    return convert_port(name, state_dict, keep_head=keep_head,
                        num_classes=num_classes, rename=rename)
  convert.__name__ = f"convert_{name}"
  convert.__doc__ = f"torchvision state_dict -> Keras {name} (see module doc)."
  return convert


def _register(names: Sequence[str], fn) -> None:
  for arch in names:
    register(arch)(fn)


_register(["regnety_032", "regnet_y_3_2gf"], _port_converter("regnety_032"))
_register(["resnext50_32x4d"], _port_converter("resnext50_32x4d"))
_register(["shufflenet_v2_x2_0"], _port_converter("shufflenet_v2_x2_0"))
_register(["densenet161"],
          _port_converter("densenet161", rename=_DENSENET_LEGACY))
_register(["resnet50_torchvision", "resnet50"],
          _port_converter("resnet50_torchvision"))
_register(["efficientnetv2_s_torchvision", "efficientnetv2_s",
           "efficientnet_v2_s"],
          _port_converter("efficientnetv2_s_torchvision"))
_register(["mobilenet_v3_large_torchvision", "mobilenet_v3_large"],
          _port_converter("mobilenet_v3_large_torchvision"))


# ----------------------------------------------------------------------------
# ConvNeXt-Tiny onto keras.applications.ConvNeXtTiny.

_CNX = "convnext_tiny"
_CNX_RULES = (
    (re.compile(rf"^{_CNX}_stem_conv$"), lambda m: "features.0.0"),
    (re.compile(rf"^{_CNX}_stem_layernorm$"), lambda m: "features.0.1"),
    (re.compile(rf"^{_CNX}_downsampling_layernorm_(\d)$"),
     lambda m: f"features.{2 * int(m[1]) + 2}.0"),
    (re.compile(rf"^{_CNX}_downsampling_conv_(\d)$"),
     lambda m: f"features.{2 * int(m[1]) + 2}.1"),
    (re.compile(rf"^{_CNX}_stage_(\d)_block_(\d+)_"
                r"(depthwise_conv|layernorm|pointwise_conv_1|pointwise_conv_2|"
                r"layer_scale)$"),
     lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}" + {
         "depthwise_conv": ".block.0", "layernorm": ".block.2",
         "pointwise_conv_1": ".block.3", "pointwise_conv_2": ".block.5",
         "layer_scale": ""}[m[3]]),
    (re.compile(rf"^{_CNX}_head_layernorm$"), lambda m: "classifier.0"),
    (re.compile(rf"^{_CNX}_head_dense$"), lambda m: "classifier.2"),
)


def convnext_torch_prefix(layer) -> str:
  """Keras ConvNeXtTiny layer -> torchvision convnext_tiny module prefix."""
  import keras

  for pattern, make in _CNX_RULES:
    match = pattern.match(layer.name)
    if match:
      return make(match)
  # The unnamed LayerNormalization Keras appends when include_top=False.
  if isinstance(layer, keras.layers.LayerNormalization):
    return "classifier.0"
  raise ConversionError(
      f"Keras ConvNeXt layer {layer.name!r} has no torchvision counterpart "
      "(unexpected keras.applications version?).")


def _assign_layer_scale(layer, state: common.StateDict, prefix: str) -> list:
  """LayerScale's (C,) gamma <- torchvision `layer_scale` of shape (C, 1, 1)."""
  key = f"{prefix}.layer_scale"
  value = state.take(key, context=layer.name)
  if value.ndim != 3 or value.shape[1:] != (1, 1):
    raise ConversionError(
        f"torch tensor {key!r} has shape {tuple(value.shape)}; expected "
        "(C, 1, 1) for ConvNeXt layer scale.")
  (variable,) = layer.weights
  common.assign(variable, value.reshape(-1), key, layer.name)
  return [variable]


def build_convnext_tiny(keep_head: bool, num_classes: int = 1000):
  """keras.applications ConvNeXtTiny as tfbackbones builds it, any size.

  Without the head this is `keras_apps.build_keras_app`'s model (same
  constructor, same wrapping, so a saved weights file fits the registered
  `convnext_tiny` backbone). With it: Keras refuses include_top=True without
  a static input size, so the head is Keras's own `Head` (avgpool,
  LayerNorm eps 1e-6, Dense; same layer names) put on the last stage's
  output of the include_top=False model, in place of the trailing LayerNorm.
  Linear logits.
  """
  import keras

  from tfbackbones.backbones import keras_apps

  base = keras_apps.keras_constructor(_CNX)(
      include_top=False, weights=None, input_shape=(None, None, 3),
      pooling=None)
  if not keep_head:
    return keras.Model(base.input, base.output, name=_CNX)
  trailing = base.layers[-1]
  if not isinstance(trailing, keras.layers.LayerNormalization):
    raise ConversionError(
        "keras.applications ConvNeXt no longer ends with a LayerNormalization "
        f"(found {type(trailing).__name__}); update build_convnext_tiny.")
  x = trailing.input
  x = keras.layers.GlobalAveragePooling2D(name=f"{_CNX}_head_gap")(x)
  x = keras.layers.LayerNormalization(
      epsilon=1e-6, name=f"{_CNX}_head_layernorm")(x)
  x = keras.layers.Dense(num_classes, name=f"{_CNX}_head_dense")(x)
  suffix = "imagenet" if num_classes == 1000 else "classifier"
  return keras.Model(base.input, x, name=f"{_CNX}_{suffix}")


@register(_CNX)
def convert_convnext_tiny(state_dict, *, keep_head: bool = False,
                          num_classes: int = 1000):
  """torchvision convnext_tiny state_dict -> keras.applications ConvNeXtTiny.

  Without keep_head, `classifier.0` (the head LayerNorm) still fills the
  LayerNorm Keras puts at the end of the backbone; `classifier.2` is dropped.
  """
  state = common.StateDict(state_dict)
  model = build_convnext_tiny(keep_head, num_classes)
  if not keep_head:
    state.drop("classifier.2.")
  layers = list(common.iter_leaf_layers(model))
  prefixes = {layer.name: convnext_torch_prefix(layer) for layer in layers
              if layer.weights}
  custom = {layer.name: _assign_layer_scale for layer in layers
            if type(layer).__name__ == "LayerScale"}
  common.convert_by_name(model, state, name_map=prefixes, custom=custom)
  return model
