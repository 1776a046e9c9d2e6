"""Backbone + new head: the only new layer is the final Dense.

backbone -> global average pooling (if the features are spatial) -> dropout -> Dense.
The head is float32 even under a mixed-precision policy: logits, softmax and the loss are
where fp16 overflows and bf16 loses accuracy, and the cost of one float32 Dense is nil.
"""

from __future__ import annotations

import keras

from tfbackbones import imagesize, layer_walk

HEAD_LAYER = "head_logits"


def build_classifier(backbone: keras.Model, num_classes: int, image_size,
                     dropout: float = 0.0, freeze_backbone: bool = False,
                     bn_momentum: float | None = None) -> keras.Model:
  """Wraps a feature extractor into a classifier.

  Args:
    backbone: maps preprocessed (B, H, W, 3) images to (B, h, w, C) or (B, C) features.
    num_classes: width of the new Dense head.
    image_size: (H, W), or an int for a square input (see tfbackbones/imagesize.py).
    dropout: dropout rate before the head (0 = none, as in the paper).
    freeze_backbone: linear probe: backbone weights fixed and its BatchNorm in inference
      mode (Keras 3 runs a non-trainable BatchNormalization in inference mode).
    bn_momentum: if set, overrides every BatchNormalization momentum in the backbone.
      Training from random init on a small dataset needs this: keras.applications use
      0.99-0.999, whose moving statistics lag the weights for thousands of steps, so
      eval-mode predictions stay at chance (docs/stack.md: MobileNetV3-Small on digits).

  Returns:
    A functional keras.Model named "<backbone>_classifier" with float32 logits.
  """
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2, got {num_classes}")
  if bn_momentum is not None:
    set_batchnorm_momentum(backbone, bn_momentum)
  backbone.trainable = not freeze_backbone
  height, width = imagesize.require(image_size)
  inputs = keras.Input((height, width, 3), name="images", dtype="float32")
  features = backbone(inputs)
  if isinstance(features, (list, tuple)):
    if len(features) != 1:
      raise ValueError(f"backbone {backbone.name} has {len(features)} outputs; expected 1")
    features = features[0]
  if len(features.shape) == 4:
    features = keras.layers.GlobalAveragePooling2D(name="head_pool")(features)
  elif len(features.shape) != 2:
    raise ValueError(f"backbone {backbone.name} returns features of rank "
                     f"{len(features.shape)}; expected (B,h,w,C) or (B,C)")
  if dropout > 0:
    features = keras.layers.Dropout(dropout, name="head_dropout")(features)
  logits = keras.layers.Dense(num_classes, dtype="float32", name=HEAD_LAYER)(features)
  return keras.Model(inputs, logits, name=f"{backbone.name}_classifier")


def set_batchnorm_momentum(model: keras.Model, momentum: float) -> int:
  """Sets `momentum` on every BatchNormalization layer (recursively); returns the count."""
  count = 0
  for layer in layer_walk.walk(model):
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.momentum = momentum
      count += 1
  return count


def parameter_count(model: keras.Model) -> int:
  return int(sum(int(w.numpy().size) for w in model.weights))


def weights_megabytes(model: keras.Model) -> float:
  """Size of all weights as stored (bytes of each variable's dtype), in MB (1e6 bytes)."""
  total = 0
  for w in model.weights:
    total += int(w.numpy().nbytes)
  return total / 1e6
