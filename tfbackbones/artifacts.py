"""A usable model in every finished workdir: `model.keras` and `labels.txt`.

After the trainer's one test evaluation on the best weights, `save_usable_model` writes

  <workdir>/model.keras   uint8 RGB images (B, H, W, 3) at the run's input size in,
                          class probabilities (B, num_classes) out;
  <workdir>/labels.txt    the class names, one a line, in output order.

Why the preprocessing is inside: a user (or `python -m tfbackbones.predict`) feeds pixels,
not a backbone family's normalisation convention, and every exported artifact
(`tfbackbones.export`) inherits the same contract. Resizing stays outside: LiteRT and
ONNX want static shapes, and `tfbackbones/deploy/images.py` resizes exactly as training
did.

Why a fresh model rather than the trained instance: training patches layers in place
(TF's fused BatchNorm, the CPU kernels of `tfbackbones/kernels`), may run under a
mixed-precision policy and inside a distribution strategy. The saved model is rebuilt in
float32 from the registry and the best checkpoint is read into it (object-graph matched,
so a mismatch fails loudly), so it loads and exports anywhere. The written file is loaded
back and must hold every variable bit for bit (`check_round_trip`): a layer whose own
save code loses state (keras-hub's DINOv2 did) leaves no model.keras rather than a wrong one.

Loading needs `import tfbackbones.artifacts` (it registers `Preprocess`) and the
backbone's own layers (`tfbackbones.backbones.register_layers()`); `load_model` does both.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfbackbones import backbones as backbones_lib
from tfbackbones import model as model_lib
from tfbackbones.backbones import preprocessing
from tfbackbones.training import workdir as wd

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
PREPROCESS_LAYER = "preprocess"
PROBABILITIES_LAYER = "probabilities"

# Constants of `tfbackbones/backbones/preprocessing.py`, where they are documented.
_CAFFE_MEAN_BGR = preprocessing._CAFFE_MEAN_BGR
_TORCH_MEAN_RGB = preprocessing._TORCH_MEAN_RGB
_TORCH_STD_RGB = preprocessing._TORCH_STD_RGB


@keras.saving.register_keras_serializable(package="tfbackbones")
class Preprocess(keras.layers.Layer):
  """RGB pixels in [0, 255] (any dtype) -> the input a backbone family expects.

  The same arithmetic as `preprocessing.preprocess_images`, written in `keras.ops` so
  that it serialises into `.keras` files and converts to LiteRT and ONNX (no TF-only
  ops, no Lambda layer).
  """

  def __init__(self, kind: str, **kwargs):
    super().__init__(**kwargs)
    self.kind = preprocessing.check_kind(kind)

  def call(self, images):
    ops = keras.ops
    x = ops.cast(images, "float32")
    if self.kind == "raw255":
      return x
    if self.kind == "unit":
      return x / 255.0
    if self.kind == "tf":
      return x / 127.5 - 1.0
    if self.kind == "lite":  # EfficientNet-Lite: the TF release's mean 127, std 128
      return (x - 127.0) / 128.0
    if self.kind == "torch":
      mean = ops.convert_to_tensor(_TORCH_MEAN_RGB, "float32")
      std = ops.convert_to_tensor(_TORCH_STD_RGB, "float32")
      return (x / 255.0 - mean) / std
    return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_MEAN_BGR, "float32")

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "kind": self.kind}


def with_preprocessing(classifier: keras.Model, kind: str,
                       input_dtype: str = "uint8") -> keras.Model:
  """Wraps a logits classifier: pixels (B, H, W, 3) of `input_dtype` -> probabilities."""
  height, width = classifier.input_shape[1:3]
  inputs = keras.Input((height, width, 3), dtype=input_dtype, name="image")
  x = Preprocess(kind, name=PREPROCESS_LAYER)(inputs)
  probabilities = keras.layers.Softmax(name=PROBABILITIES_LAYER, dtype="float32")(
      classifier(x))
  return keras.Model(inputs, probabilities, name=classifier.name)


def float_input_variant(model: keras.Model) -> keras.Model:
  """The same layers (shared weights) taking float32 pixels in [0, 255].

  Full-integer LiteRT conversion quantizes a float input to uint8 itself; a model whose
  input is already uint8 would keep a float Cast at its entrance instead.
  """
  inputs = keras.Input(model.input_shape[1:], dtype="float32", name="image")
  x = inputs
  for layer in model.layers[1:]:
    x = layer(x)
  return keras.Model(inputs, x, name=model.name)


def rebuild_classifier(backbone: str, num_classes: int, image_size, *, dropout: float,
                       freeze_backbone: bool, weights: str, checkpoint: str) -> keras.Model:
  """A float32 classifier of the run's architecture with the checkpoint's weights.

  The backbone is built with random init when it can be (keras.applications); a
  SavedModel backbone brings its own weights; either way `checkpoint` overwrites them.
  """
  spec = backbones_lib.get(backbone)
  policy = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("float32")
  try:
    try:
      net = spec.build(image_size, "none")
    except (ValueError, NotImplementedError, backbones_lib.WeightsNotAvailableError):
      net = spec.build(image_size, weights)
    classifier = model_lib.build_classifier(net, num_classes, image_size, dropout=dropout,
                                            freeze_backbone=freeze_backbone)
  finally:
    keras.mixed_precision.set_global_policy(policy)
  tf.train.Checkpoint(model=classifier).read(checkpoint).assert_existing_objects_matched()
  return classifier


def write_labels(path: str, class_names: Sequence[str]) -> None:
  with tf.io.gfile.GFile(path, "w") as f:
    f.write("".join(f"{name}\n" for name in class_names))


def save_usable_model(trainer) -> str | None:
  """Writes model.keras and labels.txt of a finished run; returns the model path.

  Called by the trainer after its test evaluation (chief only). A failure here is logged,
  not raised: the run's results are sound without the file, and
  `python -m tfbackbones.export` says what is missing.
  """
  if not trainer.is_chief:
    return None
  cfg = trainer.config
  try:
    classifier = rebuild_classifier(
        cfg.backbone, trainer.data.num_classes, trainer.image_size, dropout=cfg.dropout,
        freeze_backbone=cfg.freeze_backbone, weights=cfg.weights,
        checkpoint=trainer.best_path)
    model = with_preprocessing(classifier, trainer.spec.preprocessing)
    path = wd.path(cfg.workdir, MODEL_FILE)
    _save(model, path)
    write_labels(wd.path(cfg.workdir, LABELS_FILE), trainer.data.class_names)
    return path
  except Exception as e:
    logging.warning("%s: could not write %s (%s: %s); the results are unaffected",
                    cfg.workdir, MODEL_FILE, type(e).__name__, e)
    return None


class RoundTripError(RuntimeError):
  """A saved model.keras does not load back to the weights it was saved from."""


def check_round_trip(model: keras.Model, path: str) -> None:
  """Loads `path` back and requires every variable to equal `model`'s, bit for bit.

  Why: a layer whose own save/load code loses state writes a file that loads without
  error and predicts differently. keras-hub's DINOv2 did (its trained position table
  was dropped; `keras_hub_presets.native_position_embeddings`), and only a test
  evaluation that disagreed with the exported model showed it. Checking here keeps any
  backbone with that defect from leaving a wrong model.keras behind.

  Raises:
    RoundTripError: Naming the first variable that differs (or the count).
  """
  loaded = load_model(path)
  saved, back = model.weights, loaded.weights
  if len(saved) != len(back):
    raise RoundTripError(f"{len(saved)} variables saved, {len(back)} loaded back")
  for a, b in zip(saved, back):
    x, y = a.numpy(), b.numpy()
    if x.shape != y.shape or not np.array_equal(x, y):
      diff = float(np.max(np.abs(x - y))) if x.shape == y.shape else float("nan")
      raise RoundTripError(f"variable {a.path} does not survive saving and loading "
                           f"(max abs change {diff:.3g}); the backbone's own save or load "
                           "code loses it")


def _save(model: keras.Model, path: str) -> None:
  """Saves locally, checks that it loads back, then copies and renames: a gs:// workdir
  works, and no half or wrong file is left."""
  with tempfile.TemporaryDirectory() as tmp:
    local = os.path.join(tmp, MODEL_FILE)
    model.save(local)
    check_round_trip(model, local)
    tf.io.gfile.copy(local, path + ".tmp", overwrite=True)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def load_model(path: str) -> keras.Model:
  """Loads a model.keras written by `save_usable_model` (registers its layers first)."""
  backbones_lib.register_layers()
  return keras.saving.load_model(path, compile=False)
