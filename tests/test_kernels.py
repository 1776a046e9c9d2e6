"""The C++ CPU kernels: same values and gradients as Keras / TensorFlow, built on demand."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbackbones import backbones, kernels, layer_walk


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


# MobileNetV3-Small: 18 hard-swish, 8 of its 11 depthwise convolutions are 5x5.
# EfficientNetV2-B0: 55 swish, every depthwise convolution 3x3 (left to oneDNN).
@pytest.mark.parametrize("name, expected", [
    ("mobilenet_v3_small", {"activations": 18, "depthwise": 8}),
    ("efficientnetv2_b0", {"activations": 55, "depthwise": 0})])
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
  assert kernels.fuse(model) == expected
  fused_loss, fused_grads = loss_and_grads()
  np.testing.assert_allclose(fused_loss, loss, rtol=1e-5)
  scale = max(float(tf.reduce_max(tf.abs(g))) for g in grads)
  for a, b in zip(fused_grads, grads):  # (biases before BatchNorm have ~0 gradients)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * scale)
  assert model.get_config()["layers"] is not None              # config untouched


def test_without_a_compiler_the_models_keep_tensorflow_ops(monkeypatch, tmp_path, caplog):
  saved = dict(kernels._STATE)
  monkeypatch.setenv("TFBACKBONES_CACHE", str(tmp_path))
  monkeypatch.setattr(kernels.shutil, "which", lambda name: None)
  kernels._STATE.clear()
  try:
    with caplog.at_level(logging.WARNING):
      assert kernels.load() is None
    assert "no g++ on PATH" in caplog.text
    with pytest.raises(kernels.KernelBuildError, match="apt install g"):
      kernels.build()
    model = backbones.get("mobilenet_v3_small").build(32, "none")
    assert kernels.fuse(model) == {"activations": 0, "depthwise": 0}
    x = tf.random.normal((2, 8, 8, 4))
    k = tf.random.normal((5, 5, 4, 1))
    np.testing.assert_allclose(kernels.depthwise_conv2d(x, k, (1, 1), "same"),
                               tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "SAME"))
  finally:
    kernels._STATE.clear()
    kernels._STATE.update(saved)


def test_library_is_cached_by_source_and_tensorflow_version():
  path = kernels.library_path()
  assert kernels.build() == path and path.startswith(kernels.cache_dir())
  assert tf.__version__ is not None and len(path.split("/")[-2]) == 16


# ------------------------------------------------------------ depthwise filter gradient
def _tf_filter_grad(x, dy, k, strides, padding):
  return tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
      input=x, filter_sizes=[k[0], k[1], x.shape[-1], 1], out_backprop=dy,
      strides=[1, strides[0], strides[1], 1], padding=padding)


@pytest.mark.parametrize("shape, k, strides, padding", [
    ((4, 13, 13, 16), (5, 5), (1, 1), "SAME"),    # output 13 wide: the by-tap order
    ((4, 3, 3, 20), (5, 5), (1, 1), "SAME"),      # 3 wide: by pixel; C not a multiple of 8
    ((3, 15, 11, 9), (5, 5), (2, 2), "VALID"),    # strided, non-square image
    ((2, 9, 10, 12), (5, 3), (2, 1), "SAME"),     # non-square filter and strides
    ((2, 20, 20, 8), (7, 7), (2, 2), "SAME"),     # odd total padding (top gets less)
    ((8, 16, 16, 24), (5, 5), (1, 1), "SAME"),    # enough work to split the batch
    ((1, 4, 4, 3), (3, 3), (1, 1), "VALID"),
])
def test_depthwise_filter_gradient_matches_tensorflow(shape, k, strides, padding):
  assert kernels.load() is not None, "g++ must build tfbackbones/kernels/*.cc"
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=shape).astype(np.float32))
  y = tf.nn.depthwise_conv2d(x, tf.ones(k + (shape[-1], 1)), [1, *strides, 1], padding)
  dy = tf.constant(rng.normal(size=y.shape).astype(np.float32))
  ours = kernels.load().tfb_depthwise_conv2d_backprop_filter(
      x, dy, kernel_size=list(k), strides=list(strides), padding=padding)
  ref = _tf_filter_grad(x, dy, k, strides, padding)
  assert ours.shape == ref.shape
  np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * float(tf.reduce_max(abs(ref))))


def test_depthwise_filter_gradient_rejects_a_mismatched_gradient():
  x = tf.zeros((2, 8, 8, 4))
  with pytest.raises(tf.errors.InvalidArgumentError, match="does not match"):
    kernels.load().tfb_depthwise_conv2d_backprop_filter(
        x, tf.zeros((2, 4, 4, 4)), kernel_size=[5, 5], strides=[1, 1], padding="SAME")


@pytest.mark.parametrize("graph", [False, True])
def test_depthwise_conv2d_matches_tensorflow_values_and_both_gradients(graph):
  rng = np.random.default_rng(1)
  x = tf.constant(rng.normal(size=(3, 12, 10, 8)).astype(np.float32))
  k = tf.constant(rng.normal(size=(5, 5, 8, 1)).astype(np.float32))

  def run(fn):
    with tf.GradientTape() as tape:
      tape.watch([x, k])
      loss = tf.reduce_sum(tf.sin(fn(x, k)))
    return (loss,) + tuple(tape.gradient(loss, [x, k]))

  ours = lambda a, b: kernels.depthwise_conv2d(a, b, (2, 2), "same")  # noqa: E731
  ref = lambda a, b: tf.nn.depthwise_conv2d(a, b, [1, 2, 2, 1], "SAME")  # noqa: E731
  got = (tf.function(run, autograph=False) if graph else run)(ours)
  for a, b in zip(got, run(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  graph_def = tf.function(lambda: run(ours)).get_concrete_function().graph.as_graph_def()
  op_types = {n.op for n in graph_def.node}
  for f in graph_def.library.function:
    op_types |= {n.op for n in f.node_def}
  assert "TfbDepthwiseConv2dBackpropFilter" in op_types               # really ours


def test_fuse_depthwise_leaves_3x3_dilated_and_multiplier_layers_alone():
  inputs = keras.Input((16, 16, 4))
  x = keras.layers.DepthwiseConv2D(5, padding="same", use_bias=True,
                                   activation="relu", name="dw5")(inputs)
  x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw3")(x)
  x = keras.layers.DepthwiseConv2D(5, padding="same", dilation_rate=2, name="dilated")(x)
  x = keras.layers.DepthwiseConv2D(5, padding="same", depth_multiplier=2, name="mult")(x)
  model = keras.Model(inputs, x)
  data = tf.random.normal((2, 16, 16, 4))
  with tf.GradientTape() as tape:
    before = model(data, training=True)
  grads = tape.gradient(before, model.trainable_variables)
  assert kernels.fuse_depthwise(model) == 1
  assert "call" in vars(model.get_layer("dw5"))
  assert not any("call" in vars(model.get_layer(n)) for n in ("dw3", "dilated", "mult"))
  with tf.GradientTape() as tape:
    after = model(data, training=True)
  np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)  # bias and activation kept
  for a, b in zip(tape.gradient(after, model.trainable_variables), grads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_fuse_changes_nothing_for_a_model_that_will_not_run_on_cpu():
  model = backbones.get("mobilenet_v3_small").build(32, "none")
  assert kernels.fuse(model, on_cpu=False) == {"activations": 0, "depthwise": 0}
  assert not any("call" in vars(layer) for layer in layer_walk.walk(model))
  assert kernels.fuse(model, on_cpu=True) == {"activations": 18, "depthwise": 8}
