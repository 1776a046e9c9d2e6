"""The compiled step functions: many training steps per call, metrics summed on device.

Kept apart from the loop so the benchmark times exactly the code that trains.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (labels, logits) -> per-example


def cross_entropy(num_classes: int, label_smoothing: float = 0.0) -> LossFn:
  """Per-example softmax cross-entropy on float32 logits."""
  if label_smoothing > 0:
    def loss(labels, logits):
      onehot = tf.one_hot(labels, num_classes)
      return keras.losses.categorical_crossentropy(onehot, logits, from_logits=True,
                                                   label_smoothing=label_smoothing)
    return loss
  return lambda labels, logits: keras.losses.sparse_categorical_crossentropy(
      labels, logits, from_logits=True)


def make_train_fn(model: keras.Model, optimizer, strategy: tf.distribute.Strategy,
                  global_batch: int, loss_fn: LossFn, stop_on_nonfinite: bool = False):
  """Returns train_steps(iterator, num_steps) -> (loss_sum, correct_count, nonfinite_steps).

  One call runs `num_steps` steps in a `tf.while_loop` (like `steps_per_execution`), so
  the host is reached once per call, not per step. The loss is averaged over the global
  batch, and the per-replica gradients are summed by `apply_gradients`' all-reduce.

  A step whose loss is not finite adds nothing to `loss_sum` and is counted in
  `nonfinite_steps` instead, so one bad step cannot hide the others' loss. With
  `stop_on_nonfinite` the call returns right after such a step: in float32 a NaN/inf loss
  means the run has diverged (tfbackbones/training/health.py), and the steps after it
  would only spread NaN through the weights. Under a loss-scaled mixed_float16 optimizer
  the trainer leaves it off: an overflow step is skipped by the optimizer, not fatal.
  """
  variables = model.trainable_variables
  global_batch = float(global_batch)

  def step(images, labels):
    with tf.GradientTape() as tape:
      logits = tf.cast(model(images, training=True), tf.float32)
      per_example = loss_fn(labels, logits)
      loss = tf.reduce_sum(per_example) / global_batch
      if model.losses:
        loss += tf.add_n(model.losses) / strategy.num_replicas_in_sync
      scaled = optimizer.scale_loss(loss)  # identity unless a LossScaleOptimizer
    grads = tape.gradient(scaled, variables)
    optimizer.apply_gradients(zip(grads, variables))
    hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
    return tf.reduce_sum(per_example), tf.reduce_sum(hits)

  @tf.function
  def train_steps(iterator, num_steps):
    loss_sum, hits, nonfinite = tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)
    for _ in tf.range(num_steps):
      images, labels = next(iterator)
      per_replica = strategy.run(step, args=(images, labels))
      step_loss = strategy.reduce("SUM", per_replica[0], axis=None)
      finite = tf.math.is_finite(step_loss)
      loss_sum += tf.where(finite, step_loss, 0.0)
      nonfinite += 1.0 - tf.cast(finite, tf.float32)
      hits += strategy.reduce("SUM", per_replica[1], axis=None)
      if stop_on_nonfinite:
        if tf.logical_not(finite):
          break
    return loss_sum, hits, nonfinite

  return train_steps


def make_eval_fn(model: keras.Model, strategy: tf.distribute.Strategy, num_classes: int,
                 loss_fn: LossFn):
  """Returns eval_steps(iterator, num_steps) -> (loss_sum, top5_hits, confusion).

  Batches carry a weight per example (0 for padding), so sums count real examples only.
  """
  k = min(5, num_classes)

  def step(images, labels, weights):
    logits = tf.cast(model(images, training=False), tf.float32)
    per_example = loss_fn(labels, logits)
    predicted = tf.argmax(logits, -1, output_type=tf.int32)
    top_k = tf.math.top_k(logits, k=k).indices
    in_top_k = tf.cast(tf.reduce_any(tf.equal(top_k, labels[:, None]), -1), tf.float32)
    confusion = tf.math.confusion_matrix(labels, predicted, num_classes=num_classes,
                                         weights=weights, dtype=tf.float32)
    return (tf.reduce_sum(per_example * weights), tf.reduce_sum(in_top_k * weights),
            confusion)

  @tf.function
  def eval_steps(iterator, num_steps):
    loss_sum, top5 = tf.constant(0.0), tf.constant(0.0)
    confusion = tf.zeros((num_classes, num_classes), tf.float32)
    for _ in tf.range(num_steps):
      images, labels, weights = next(iterator)
      out = strategy.run(step, args=(images, labels, weights))
      loss_sum += strategy.reduce("SUM", out[0], axis=None)
      top5 += strategy.reduce("SUM", out[1], axis=None)
      confusion += strategy.reduce("SUM", out[2], axis=None)
    return loss_sum, top5, confusion

  return eval_steps
