"""The fused-kernel optimizers must update exactly like Keras's AdamW and SGD."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbackbones.training import optimizers


def _model():
  keras.utils.set_random_seed(3)
  inputs = keras.Input((6,))
  x = keras.layers.Dense(5, activation="tanh")(inputs)
  return keras.Model(inputs, keras.layers.Dense(3)(x))


@pytest.mark.parametrize("kind, kwargs", [
    ("adamw", dict(learning_rate=1e-2, weight_decay=0.01, beta_1=0.9, beta_2=0.999,
                   epsilon=1e-8)),
    ("sgd", dict(learning_rate=1e-1, momentum=0.9)),
])
def test_fused_updates_match_keras_over_several_steps(kind, kwargs):
  reference, fused = _model(), _model()
  fused.set_weights(reference.get_weights())
  make = getattr(optimizers, kind)
  opt_ref, opt_fused = make(False, **kwargs), make(True, **kwargs)
  assert type(opt_fused).__name__.startswith("Fused")
  opt_ref.build(reference.trainable_variables)
  opt_fused.build(fused.trainable_variables)
  x = tf.constant(np.random.default_rng(0).normal(size=(8, 6)), tf.float32)

  def make_step(model, opt):
    @tf.function
    def step():
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x) ** 2)
      opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                              model.trainable_variables))
    return step

  step_ref, step_fused = make_step(reference, opt_ref), make_step(fused, opt_fused)
  for _ in range(4):
    step_ref()
    step_fused()
  for a, b in zip(fused.get_weights(), reference.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # Slots and iterations; the fused kernel orders the float32 moment update differently
  # (b2 v + (1-b2) g^2 vs v + (g^2 - v)(1-b2)): equal to rounding.
  for a, b in zip(opt_fused.variables, opt_ref.variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
  assert not np.allclose(reference.get_weights()[0], _model().get_weights()[0])
