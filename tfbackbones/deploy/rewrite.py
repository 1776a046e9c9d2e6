"""The same function as a model, in a graph that LiteRT's converter and XNNPACK handle well.

  deployable = rewrite.for_export(model, int8=True)   # `model` itself when nothing applies

Two rewrites, each applied only where it is needed, so other models export exactly as
Keras writes them. Both are checked by `tests/test_export_rewrite.py`; docs/export.md has
the measurements.

1. Layer names TensorFlow's SavedModel writer refuses. Keras's LiteRT export goes through
   a SavedModel, which copies every variable into a graph under its Keras path
   (`<layer>/<variable>`), and a path must not start with `_`. The EfficientNet-Lite ports
   name their layers after the torch keys (`_blocks.3._bn0`, so that weight conversion
   is by name), so their export failed. The copy strips the leading underscores.

2. Hard-swish in INT8 models. The converter fuses `x * relu6(x + 3) / 6` (Keras's
   `hard_silu`, MobileNetV3's activation) into one HARD_SWISH op. The XNNPACK delegate
   (LiteRT's default CPU path, ai-edge-litert 2.3.0) takes HARD_SWISH only in float32,
   so in a full-integer MobileNetV3-Small its 18 hard-swishes ran on TFLite's scalar
   reference kernel, split the graph into 19 delegate partitions, and took 67% of the
   INT8 time (perf, 1 thread): INT8 was slower than float. Written as
   `relu6(x + 3) * (x / 6)`, the converter no longer matches its fusion pattern and
   leaves an ADD (with a fused ReLU6) and two MULs, which XNNPACK runs in int8. The float
   exports keep the fused op (XNNPACK has a float32 kernel for it).

The copy has new variables with the original's values; the original is not changed.
"""

from __future__ import annotations

import re

import keras

from tfbackbones import layer_walk

HARD_SWISH_NAMES = ("hard_silu", "hard_swish")
_BAD_START = re.compile(r"^[^A-Za-z0-9.]+")


@keras.saving.register_keras_serializable(package="tfbackbones")
class DelegableHardSwish(keras.layers.Layer):
  """Hard-swish as `relu6(x + 3) * (x / 6)`: three int8 ops XNNPACK runs (see module doc)."""

  def call(self, x):
    return keras.ops.relu6(x + 3.0) * (x * (1.0 / 6.0))

  def compute_output_shape(self, input_shape):
    return input_shape


def is_hard_swish(layer) -> bool:
  """An `Activation` layer computing Keras's hard-swish (`hard_silu`)."""
  return (isinstance(layer, keras.layers.Activation)
          and getattr(layer.activation, "__name__", "") in HARD_SWISH_NAMES)


def saved_model_name(name: str) -> str:
  """`name` without the leading characters a SavedModel variable scope may not start with."""
  return _BAD_START.sub("", name) or "layer"


def needs_rewrite(model, int8: bool) -> bool:
  """Whether `for_export` would change anything in `model`."""
  return any(saved_model_name(layer.name) != layer.name or (int8 and is_hard_swish(layer))
             for layer in layer_walk.walk(model, into="models"))


def for_export(model, int8: bool = False):
  """`model`, or a copy with the rewrites of the module doc where `model` needs them.

  Args:
    model: a functional Keras model (nested functional models are rewritten too).
    int8: also replace hard-swish (only full-integer exports need it).
  """
  if not needs_rewrite(model, int8):
    return model
  pairs = []

  def clone_layer(layer):
    config = layer.get_config()
    config["name"] = saved_model_name(layer.name)
    if int8 and is_hard_swish(layer):
      return DelegableHardSwish(name=config["name"], dtype=layer.dtype_policy)
    new = layer.__class__.from_config(config)
    if getattr(layer, "weights", None):  # functional graphs also hold weightless ops
      pairs.append((layer, new))
    return new

  copy = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
  for old, new in pairs:
    new.set_weights(old.get_weights())
  return copy
