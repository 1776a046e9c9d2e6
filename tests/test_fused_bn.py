"""The fused BatchNormalization kernel must compute exactly what Keras's layer computes."""

import keras
import numpy as np
import tensorflow as tf

from tfbackbones.training import fused_bn


def _pair():
  keras.utils.set_random_seed(0)
  def make():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.BatchNormalization(center=False, scale=False)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))
  reference = make()
  fused = make()
  fused.set_weights(reference.get_weights())
  assert fused_bn.fuse_batchnorm(fused) == 2
  return reference, fused


def _train_step(model, x):
  with tf.GradientTape() as tape:
    y = model(x, training=True)
    loss = tf.reduce_sum(y * y)
  return y, tape.gradient(loss, model.trainable_variables)


def test_training_outputs_gradients_and_moving_stats_match_keras():
  reference, fused = _pair()
  x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (5, 8, 8, 3)), tf.float32)
  for step in (lambda m: _train_step(m, x), tf.function(lambda m: _train_step(m, x))):
    y_ref, g_ref = step(reference)
    y_fused, g_fused = step(fused)
    np.testing.assert_allclose(y_fused.numpy(), y_ref.numpy(), rtol=1e-4, atol=1e-4)
    for a, b in zip(g_fused, g_ref):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4)
  for a, b in zip(fused.weights, reference.weights):      # moving mean/var included
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(fused(x, training=False).numpy(),
                             reference(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


def test_frozen_and_float16_layers_are_left_alone():
  inputs = keras.Input((4, 4, 2))
  frozen = keras.layers.BatchNormalization()
  frozen.trainable = False
  half = keras.layers.BatchNormalization(dtype="mixed_float16")
  model = keras.Model(inputs, half(frozen(inputs)))
  assert fused_bn.fuse_batchnorm(model) == 1          # `frozen` is fusable, `half` is not
  before = frozen.moving_mean.numpy().copy()
  model(tf.ones((2, 4, 4, 2)) * 5, training=True)
  np.testing.assert_array_equal(frozen.moving_mean.numpy(), before)  # inference path


class _Block(keras.layers.Layer):
  """A layer holding its BatchNormalization as an attribute (as keras-hub's EfficientNet
  blocks do): the fused kernel must reach it and train it as Keras does."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.conv = keras.layers.Conv2D(6, 3, padding="same")
    self.bn = keras.layers.BatchNormalization(momentum=0.9)

  def call(self, x):
    return keras.ops.relu(self.bn(self.conv(x)))


def test_a_batchnorm_held_by_a_layer_is_fused_and_trains_like_keras():
  keras.utils.set_random_seed(0)

  def make():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(_Block()(inputs))
    return keras.Model(inputs, keras.layers.Dense(4)(x))
  reference, fused = make(), make()
  fused.set_weights(reference.get_weights())
  assert fused_bn.fuse_batchnorm(fused) == 1
  x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (5, 8, 8, 3)), tf.float32)
  y_ref, g_ref = _train_step(reference, x)
  y_fused, g_fused = _train_step(fused, x)
  np.testing.assert_allclose(y_fused.numpy(), y_ref.numpy(), rtol=1e-4, atol=1e-4)
  for a, b in zip(g_fused, g_ref, strict=True):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4)
  for a, b in zip(fused.weights, reference.weights, strict=True):      # moving mean/var included
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
  assert not np.allclose(fused.layers[1].bn.moving_mean.numpy(), 0.0)   # it did train
