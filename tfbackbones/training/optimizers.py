"""The DualOpt optimizers, optionally on TensorFlow's fused update kernels.

Keras 3's AdamW and SGD update each variable with a dozen small ops (bias-correction
powers, moment updates, the step), which on a CPU costs more than the arithmetic for the
hundreds of small variables of a mobile network. `ResourceApplyAdam` and
`ResourceApplyKerasMomentum` do the same update in one kernel per variable, with the same
formulas:

  Adam:  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
         var <- var - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)   (Keras's Adam)
  SGD:   a <- momentum a - lr g;  var <- var + a                     (Keras's SGD)

The subclasses keep Keras's variables (same slots, same names), so checkpoints are
interchangeable with plain Keras optimizers, and AdamW's decoupled weight decay stays
Keras's own step. Anything unusual (amsgrad, nesterov, sparse gradients, non-float32
variables) falls back to Keras's implementation.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _tf_variable(variable):
  return variable.value if isinstance(variable, keras.Variable) else variable


def _fusable(gradient, variable) -> bool:
  return (not isinstance(gradient, tf.IndexedSlices)
          and _tf_variable(variable).dtype == tf.float32)


class FusedAdamW(keras.optimizers.AdamW):
  """keras.optimizers.AdamW whose per-variable update is one ResourceApplyAdam."""

  def update_step(self, gradient, variable, learning_rate):
    if self.amsgrad or not _fusable(gradient, variable):
      return super().update_step(gradient, variable, learning_rate)
    var = _tf_variable(variable)
    index = self._get_variable_index(variable)
    m = _tf_variable(self._momentums[index])
    v = _tf_variable(self._velocities[index])
    step = tf.cast(self.iterations + 1, tf.float32)
    beta_1 = tf.cast(self.beta_1, tf.float32)
    beta_2 = tf.cast(self.beta_2, tf.float32)
    tf.raw_ops.ResourceApplyAdam(
        var=var.handle, m=m.handle, v=v.handle, beta1_power=tf.pow(beta_1, step),
        beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, tf.float32),
        beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, tf.float32),
        grad=tf.cast(gradient, tf.float32), use_locking=False, use_nesterov=False)


class FusedSGD(keras.optimizers.SGD):
  """keras.optimizers.SGD whose momentum update is one ResourceApplyKerasMomentum."""

  def update_step(self, gradient, variable, learning_rate):
    if self.momentum == 0 or self.nesterov or not _fusable(gradient, variable):
      return super().update_step(gradient, variable, learning_rate)
    var = _tf_variable(variable)
    accum = _tf_variable(self.momentums[self._get_variable_index(variable)])
    tf.raw_ops.ResourceApplyKerasMomentum(
        var=var.handle, accum=accum.handle, lr=tf.cast(learning_rate, tf.float32),
        grad=tf.cast(gradient, tf.float32), momentum=tf.cast(self.momentum, tf.float32),
        use_locking=False, use_nesterov=False)


def adamw(fused: bool, **kwargs):
  return (FusedAdamW if fused else keras.optimizers.AdamW)(**kwargs)


def sgd(fused: bool, **kwargs):
  return (FusedSGD if fused else keras.optimizers.SGD)(**kwargs)
