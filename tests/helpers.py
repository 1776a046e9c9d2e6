"""One shared harness for engine tests: a tiny registered backbone and tiny configs."""

from __future__ import annotations

import keras

from tfbackbones.backbones import registry
from tfbackbones.config import TrainConfig

TINY = "test_tiny_cnn"


def _build_tiny(spec, image_size, weights):
  del spec, weights
  inputs = keras.Input((*image_size, 3))  # builders get (height, width)
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
  x = keras.layers.BatchNormalization()(x)
  x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
  return keras.Model(inputs, x, name=TINY)


def register_tiny() -> str:
  """Registers a 2-conv backbone (1.6k params) once per process; returns its name."""
  if TINY not in registry.names():
    registry.register(registry.BackboneSpec(
        name=TINY, source="keras.applications", default_size=32, preprocessing="unit",
        params_m=None, imagenet_top1=None, feature_dim=16, weights_file=None,
        description="test-only tiny CNN", builder=_build_tiny))
  return TINY


def tiny_config(workdir, data_dir, **overrides) -> TrainConfig:
  values = dict(backbone=register_tiny(), dataset="sklearn_digits", workdir=str(workdir),
                data_dir=data_dir, weights="none", image_size=32, batch_size=32,
                train_fraction=0.5, adamw_patience=2, sgd_patience=2, max_epochs=4,
                steps_per_execution=4,
                # 2-4 epochs of ~20 steps: at Keras's BatchNorm momentum 0.99 the moving
                # statistics are still mostly their initial values, the model predicts at
                # chance in inference mode and the run is (rightly) degenerate.
                bn_momentum=0.9)
  values.update(overrides)
  return TrainConfig(**values)


class Quiet:
  """A log sink that keeps lines for assertions."""

  def __init__(self):
    self.lines = []

  def __call__(self, line):
    self.lines.append(line)
