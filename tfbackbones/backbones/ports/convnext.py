"""ConvNeXt-Tiny: torchvision's weights onto keras.applications.ConvNeXtTiny.

ConvNeXt-Tiny needs no port of its own: keras.applications.ConvNeXtTiny computes the
same function as torchvision's convnext_tiny, so its backbone spec stays with the other
keras.applications specs (`keras_apps`), and this module holds only what maps
torchvision's state_dict onto it. The mapping:

same stem (4x4/4 conv + LayerNorm eps 1e-6), same blocks (depthwise 7x7 conv with bias,
LayerNorm, Linear 4x, exact GELU, Linear, per-channel layer scale), same downsampling
(LayerNorm then 2x2/2 conv), and Keras's built-in input normalisation is torchvision's
ImageNet mean/std on 0..255 inputs. One Keras quirk: with include_top=False Keras ends
the backbone with a per-position LayerNorm (its ImageNet files put the head LayerNorm's
weights there); it receives torchvision's `classifier.0` LayerNorm. So the converted
backbone's output equals torchvision's `classifier[0](features(x))` position by
position, and the include_top model (avgpool, LayerNorm, Linear) equals torchvision's
logits.

Keras layers are named by keras.applications, not after the torch modules, so the
converter maps names with the rules below (`convnext_torch_prefix`).
"""

from __future__ import annotations

import re

from tfbackbones.convert import common
from tfbackbones.convert.registry import ConversionError, register

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
