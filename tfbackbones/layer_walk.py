"""The layers inside a Keras model, nested ones included: one walk for the whole project.

  for layer in layer_walk.walk(model):                    # find by type, change in place
  for layer in layer_walk.walk(model, into="models", containers=False):   # graph units

Keras 3 lists a model's direct layers (`Model.layers`) but has no public walk through
nested models and through layers that hold layers themselves: keras-hub's transformer
encoders keep their blocks in a `layers` list, its EfficientNet blocks (`MBConvBlock`,
`FusedMBConvBlock`, `CBABlock`) hold their BatchNormalization, depthwise convolution and
activations as attributes, and so do the Swin attention ports (their Dense layers). Six
modules once walked models their own way and differed in whether the model itself,
nested models and shared layers came out, and in which layers they entered (none
reached a layer held as an attribute); this module is the one walk they share.

Two ways to enter, for two kinds of caller:
- `into="layers"`: every layer that holds layers is entered. For callers that look for
  layers by type and change them in place: BatchNorm momentum (model.py), precise BN
  and the fused BatchNorm kernel (training/), the fused activation and depthwise
  kernels (kernels/), DINOv2's position embeddings (backbones/keras_hub_presets.py). A
  layer they do not reach is silently left as it was.
- `into="models"`: only nested `keras.Model`s are entered; any other layer is one unit,
  even if it holds layers. For callers that work on the functional graph: weight
  conversion assigns a custom layer's variables as a whole (convert/common.py), and the
  export rewrite clones graph nodes (deploy/rewrite.py).

This module imports only Keras, so any module of the project can use it without a cycle.
"""

from __future__ import annotations

import keras

INTO = ("layers", "models")


def walk(root, *, into: str = "layers", containers: bool = True,
         include_root: bool = False) -> list:
  """The layers inside `root`, each once, parents before children, in model order.

  Args:
    root: A Keras model or layer.
    into: Which layers are entered: "layers" (every layer that holds layers) or
      "models" (only nested `keras.Model`s); see the module doc for who needs which.
    containers: Whether containers are listed too: nested models, and with
      `into="layers"` any layer holding layers. Weight conversion passes False:
      it wants the layers that own variables, and a nested model's variables are its
      layers'. The other callers filter by type, or check every name, nested
      models' too (the export rewrite).
    include_root: Whether `root` itself comes first. The kernel substitutions pass
      True so that they also apply when handed a single layer.

  Returns:
    A list of layers. A layer met twice (shared by two nested models, or by a model and
    a model inside it) is listed once, where it is first met: callers count what they
    changed and conversion assigns each variable once. Children come in the order
    Keras lists them (a functional model's graph order), so a listing reads like the
    model, as the depthwise benchmark prints it.

  Raises:
    ValueError: `into` is neither "layers" nor "models".
  """
  if into not in INTO:
    raise ValueError(f"into={into!r}; expected one of {INTO}")
  seen, out = set(), []
  stack = [(root, include_root)]
  while stack:
    layer, listed = stack.pop()
    if id(layer) in seen:
      continue
    seen.add(id(layer))
    children = _children(layer, into)
    if listed and (containers or not (children or isinstance(layer, keras.Model))):
      out.append(layer)
    stack.extend((child, True) for child in reversed(children))
  return out


def _children(layer, into: str) -> list:
  """The layers directly inside `layer` that the walk enters, in Keras's order.

  A model's are `Model.layers`. Any other layer's are the sublayers Keras tracks for it
  (attributes, lists and dicts of layers; what its `weights` are gathered from), read
  with `_flatten_layers`, Keras's own walk, the one `Model.layers` calls. It is private
  but keras-hub's `Backbone` and `Task` rely on it too, and tests/test_layer_walk.py
  fails if it stops finding a block's BatchNormalization.
  """
  if isinstance(layer, keras.Model):
    return list(layer.layers)
  if into == "layers" and isinstance(layer, keras.layers.Layer):
    return list(layer._flatten_layers(include_self=False, recursive=False))
  return []
