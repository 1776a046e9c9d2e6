"""Precise BatchNorm: re-estimate the moving statistics on training data before evaluating.

BatchNorm normalises with the batch's statistics while training and with exponential
moving averages of them at inference. The averages lag the weights: after few optimizer
steps (small data, or a high momentum such as Keras's 0.99) they still describe the
network of many steps ago, and an inference-mode model can answer one class for every
image while its training-mode loss falls (STACK-NOTES, "training from scratch on tiny
data"; issue 19). pycls and detectron2 ("precise BN", Wu & Johnson 2021, "Rethinking
'Batch' in BatchNorm") recompute the statistics with the current weights before each
evaluation: forward passes over training batches in training mode, averaging each
layer's batch mean and variance.

How, in Keras 3: with every BatchNormalization's momentum at 0 during the trace, one
training-mode forward pass leaves exactly that batch's statistics in the moving
variables; a compiled loop sums them over the batches and assigns the averages. Only
moving statistics change; no weight, optimizer state or RNG stream of training is touched.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfbackbones import layer_walk


def batchnorm_layers(model: keras.Model) -> list:
  """The trainable BatchNormalization layers of `model` (frozen ones run in inference
  mode even in a training call, so there is nothing to re-estimate)."""
  return [layer for layer in layer_walk.walk(model)
          if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


class PreciseBN:
  """Re-estimates `model`'s BatchNorm statistics from a distributed training iterator."""

  def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy):
    self.layers = batchnorm_layers(model)
    self.strategy = strategy
    self.model = model
    variables = [v for layer in self.layers for v in (layer.moving_mean,
                                                      layer.moving_variance)]

    def forward(images):
      model(images, training=True)
      return tf.constant(0.0)

    @tf.function
    def estimate(iterator, num_batches):
      sums = [tf.zeros_like(v) for v in variables]
      for _ in tf.range(num_batches):
        images, _ = next(iterator)
        strategy.run(forward, args=(images,))
        sums = [s + tf.identity(v) for s, v in zip(sums, variables, strict=True)]
      count = tf.cast(num_batches, tf.float32)
      for s, v in zip(sums, variables, strict=True):
        v.assign(s / count)
      return count

    self._estimate = estimate

  def __call__(self, iterator, num_batches: int) -> None:
    if not self.layers or num_batches < 1:
      return
    saved = [layer.momentum for layer in self.layers]
    for layer in self.layers:  # read when the loop is traced (the first call)
      layer.momentum = 0.0
    try:
      self._estimate(iterator, tf.constant(num_batches))
    finally:
      for layer, momentum in zip(self.layers, saved, strict=True):
        layer.momentum = momentum
