"""The fused CPU activation kernels: same values and gradients as Keras, built on demand."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbackbones import backbones, kernels


def _grid():
  edges = np.array([-3.0, 3.0, -3.0000002, 2.9999998, 0.0, -1e4, 1e4, -40.0, 40.0])
  rng = np.random.default_rng(0)
  return np.concatenate([edges, rng.normal(0, 3, 4008)]).astype(np.float32).reshape(-1, 13)


@pytest.mark.parametrize("fused, reference", [
    (kernels.hard_swish, keras.activations.hard_silu),
    (kernels.swish, keras.activations.silu)])
@pytest.mark.parametrize("graph", [False, True])
def test_fused_activation_matches_keras_values_and_gradients(fused, reference, graph):
  assert kernels.load() is not None, "g++ must build tfbackbones/kernels/activations.cc"
  x = tf.constant(_grid())
  dy = tf.constant(np.random.default_rng(1).normal(size=x.shape).astype(np.float32))

  def value_and_grad(fn):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = fn(x)
    return y, tape.gradient(y, x, output_gradients=dy)

  run = tf.function(value_and_grad, autograph=False) if graph else value_and_grad
  y, g = run(fused)
  y_ref, g_ref = value_and_grad(reference)
  np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-6)
  ops = {op.type for op in tf.function(fused).get_concrete_function(
      tf.TensorSpec(None, tf.float32)).graph.get_operations()}
  assert ops & {"TfbHardSwish", "TfbSwish"}                      # one fused op, really


def test_other_dtypes_use_tensorflow_ops():
  x = tf.constant([-4.0, -1.0, 2.0, 5.0], tf.float64)
  np.testing.assert_allclose(kernels.hard_swish(x), keras.activations.hard_silu(x))
  np.testing.assert_allclose(kernels.swish(x), keras.activations.silu(x))


@pytest.mark.parametrize("name, expected", [("mobilenet_v3_small", 18),
                                            ("efficientnetv2_b0", 55)])
def test_fused_model_trains_like_the_original(name, expected):
  keras.utils.set_random_seed(0)
  # 64 px, batch 8: at 32 px / batch 4 EfficientNet's last BatchNorms see 4 values each
  # and amplify float32 rounding to 0.2% of the gradients, with or without the kernels.
  model = backbones.get(name).build(64, "none")
  for layer in model.layers:  # stochastic depth would draw new masks on the second pass
    if isinstance(layer, keras.layers.Dropout):
      layer.rate = 0.0
  x = tf.constant(np.random.default_rng(0).uniform(0, 255, (8, 64, 64, 3)), tf.float32)

  def loss_and_grads():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(model(x, training=True)))
    return loss, tape.gradient(loss, model.trainable_variables)

  loss, grads = loss_and_grads()
  assert kernels.fuse_activations(model) == expected
  fused_loss, fused_grads = loss_and_grads()
  np.testing.assert_allclose(fused_loss, loss, rtol=1e-5)
  scale = max(float(tf.reduce_max(tf.abs(g))) for g in grads)
  for a, b in zip(fused_grads, grads):  # (biases before BatchNorm have ~0 gradients)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * scale)
  assert model.get_config()["layers"] is not None              # config untouched


def test_without_a_compiler_the_models_keep_tensorflow_ops(monkeypatch, tmp_path, caplog):
  saved = dict(kernels._STATE)  # pylint: disable=protected-access
  monkeypatch.setenv("TFBACKBONES_CACHE", str(tmp_path))
  monkeypatch.setattr(kernels.shutil, "which", lambda name: None)
  kernels._STATE.clear()  # pylint: disable=protected-access
  try:
    with caplog.at_level(logging.WARNING):
      assert kernels.load() is None
    assert "no g++ on PATH" in caplog.text
    with pytest.raises(kernels.KernelBuildError, match="apt install g"):
      kernels.build()
    model = backbones.get("mobilenet_v3_small").build(32, "none")
    assert kernels.fuse_activations(model) == 0
  finally:
    kernels._STATE.clear()  # pylint: disable=protected-access
    kernels._STATE.update(saved)  # pylint: disable=protected-access


def test_library_is_cached_by_source_and_tensorflow_version():
  path = kernels.library_path()
  assert kernels.build() == path and path.startswith(kernels.cache_dir())
  assert tf.__version__ is not None and len(path.split("/")[-2]) == 16
