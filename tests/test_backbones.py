"""Tests for tfbackbones.backbones: registry, builds, weights, preprocessing.

Kept fast for a 2-core CPU: 32x32 inputs, tiny exported SavedModels, and the
largest keras.applications models marked `heavy`. No test touches the
internet: "download" failures are provoked with TFBACKBONES_OFFLINE or a
closed localhost port.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import subprocess
import sys
import time
import types
import warnings

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbackbones import backbones
from tfbackbones.backbones import keras_apps, registry, savedmodel
from tfbackbones.backbones import weights as weights_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32
HEAVY = {
    "efficientnetv2_m", "efficientnetv2_l", "convnext_base", "convnext_small",
    "resnet152", "resnet152_v2", "densenet201",
}
KERAS_APP_NAMES = [
    s.name for s in registry.specs() if s.source == "keras.applications"]


def _keras_app_params():
  """Parametrises over keras.applications specs, marking the heavy ones."""
  return [pytest.param(n, marks=pytest.mark.heavy) if n in HEAVY else n
          for n in KERAS_APP_NAMES]


@pytest.fixture(autouse=True)
def _fresh_keras_session():
  """Clears Keras state between tests so builds do not accumulate memory."""
  keras.backend.clear_session()
  yield
  keras.backend.clear_session()


@pytest.fixture
def offline(monkeypatch):
  """Forbids network use by the package."""
  monkeypatch.setenv(weights_lib.OFFLINE_ENV, "1")


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
  """Points KERAS_HOME at an empty directory; returns its models dir."""
  home = tmp_path / "keras_home"
  home.mkdir()
  monkeypatch.setenv("KERAS_HOME", str(home))
  return str(home / "models")


def _images(n=2, size=SIZE, seed=0):
  """Random float32 RGB images in [0, 255]."""
  rng = np.random.default_rng(seed)
  return rng.uniform(0, 255, (n, size, size, 3)).astype("float32")


def _export_tiny_savedmodel(path, size=SIZE, width=8):
  """Exports a small conv net with `model.export` (a `serve` endpoint)."""
  inputs = keras.Input((size, size, 3))
  x = keras.layers.Conv2D(width, 3, activation="relu")(inputs)
  x = keras.layers.GlobalAveragePooling2D()(x)
  x = keras.layers.Dense(width)(x)
  keras.Model(inputs, x).export(str(path), verbose=False)
  return str(path)


def _save_legacy_h5(model, path):
  """Writes weights in the legacy .h5 layout Keras's ImageNet files use."""
  from keras.src.legacy.saving import legacy_h5_format

  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)


def _md5(path):
  with open(path, "rb") as f:
    return hashlib.md5(f.read()).hexdigest()


def _closed_local_url(name):
  """A URL on a localhost port nothing listens on (connection refused)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  return f"http://127.0.0.1:{port}/{name}"


# 1. Every keras.applications spec builds at 32 px with the right width.


@pytest.mark.parametrize("name", _keras_app_params())
def test_keras_app_builds_with_random_weights(name):
  spec = backbones.get(name)
  model = spec.build(SIZE, weights="none")
  assert isinstance(model, keras.Model)
  assert model.name == name
  assert model.input_shape == (None, SIZE, SIZE, 3)
  assert len(model.output_shape) == 4
  assert model.output_shape[-1] == spec.feature_dim
  assert model.count_params() > 0
  features = model(backbones.preprocess_images(_images(1), spec.preprocessing))
  assert features.shape[-1] == spec.feature_dim


def test_keras_app_facts_are_consistent():
  for name in KERAS_APP_NAMES:
    spec = backbones.get(name)
    assert spec.weights_url.endswith("/" + spec.weights_file)
    assert spec.weights_hash and spec.params_m and spec.imagenet_top1
    assert spec.preprocessing in backbones.PREPROCESSING_KINDS
  # docs/protocol.md values.
  assert backbones.get("efficientnetv2_s").params_m == 21.5
  assert backbones.get("convnext_tiny").params_m == 28.6
  assert backbones.get("resnet50").params_m == 25.6
  assert backbones.get("mobilenet_v3_large").params_m == 5.5


def test_efficientnetv2_b_variants_keep_keras_imagenet_normalisation():
  # Keras picks EfficientNetV2's built-in normalisation from the model name;
  # the backbone must keep the B-variant mean/std, not the S/M/L [-1, 1].
  model = backbones.get("efficientnetv2_b0").build(SIZE)
  layer_types = [type(l).__name__ for l in model.layers[:4]]
  assert "Normalization" in layer_types
  model_s = backbones.get("efficientnetv2_s").build(SIZE)
  assert "Normalization" not in [type(l).__name__ for l in model_s.layers[:4]]


# 2. weights_file/url/hash equal what the installed Keras requests.


class _Intercepted(Exception):
  pass


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined")
@pytest.mark.parametrize("name", _keras_app_params())
def test_weights_file_matches_what_keras_requests(name, monkeypatch):
  from keras.src.utils import file_utils

  requested = {}

  def fake_get_file(fname=None, origin=None, file_hash=None, **kwargs):
    requested.update(fname=fname, origin=origin, file_hash=file_hash,
                     cache_subdir=kwargs.get("cache_subdir"))
    raise _Intercepted()

  monkeypatch.setattr(file_utils, "get_file", fake_get_file)
  spec = backbones.get(name)
  with pytest.raises(_Intercepted):
    keras_apps.keras_constructor(name)(
        include_top=False, weights="imagenet", input_shape=(SIZE, SIZE, 3))
  assert requested == dict(fname=spec.weights_file, origin=spec.weights_url,
                           file_hash=spec.weights_hash, cache_subdir="models")


# 3. Missing ImageNet weights fail fast with an actionable message.


def test_imagenet_weights_missing_offline_fails_fast(empty_keras_home,
                                                     offline):
  spec = backbones.get("mobilenet_v3_small")
  start = time.monotonic()
  with pytest.raises(backbones.WeightsNotAvailableError) as info:
    spec.build(SIZE, weights="imagenet")
  assert time.monotonic() - start < 30
  message = str(info.value)
  assert spec.weights_file in message
  assert empty_keras_home in message
  assert spec.weights_url in message
  assert "--weights=none" in message and "DELETES" in message
  assert not os.path.exists(os.path.join(empty_keras_home, spec.weights_file))


def test_imagenet_weights_failed_download_fails_fast(empty_keras_home,
                                                     monkeypatch):
  monkeypatch.delenv(weights_lib.OFFLINE_ENV, raising=False)
  base = backbones.get("mobilenet_v3_small")
  spec = dataclasses.replace(
      base, weights_url=_closed_local_url(base.weights_file))
  start = time.monotonic()
  with pytest.raises(backbones.WeightsNotAvailableError) as info:
    spec.build(SIZE, weights="imagenet")
  assert time.monotonic() - start < 30
  message = str(info.value)
  assert spec.weights_file in message
  assert empty_keras_home in message
  assert spec.weights_url in message
  assert "download failed" in message


def test_imagenet_weights_real_url_fails_fast_without_network(
    empty_keras_home, monkeypatch, capsys):
  try:
    socket.getaddrinfo("storage.googleapis.com", 443)
  except OSError:
    pass
  else:
    pytest.skip("network reachable: this would really download the file")
  monkeypatch.delenv(weights_lib.OFFLINE_ENV, raising=False)
  spec = backbones.get("mobilenet_v3_small")
  start = time.monotonic()
  with pytest.raises(backbones.WeightsNotAvailableError) as info:
    spec.build(SIZE, weights="imagenet")
  assert time.monotonic() - start < 30
  assert spec.weights_file in str(info.value)
  assert empty_keras_home in str(info.value)
  # It says why, and Keras's "Downloading data from <url>" (as if under way) is not shown.
  assert "no network" in str(info.value)
  assert "Downloading data from" not in capsys.readouterr().out


def test_imagenet_weights_from_cache_are_loaded(empty_keras_home, offline):
  # A stand-in "ImageNet" file in the Keras cache, in Keras's legacy layout,
  # with the spec's hash adjusted to it: the real loading path is exercised.
  source = keras_apps.keras_constructor("mobilenet_v3_small")(
      include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
  base = backbones.get("mobilenet_v3_small")
  os.makedirs(empty_keras_home)
  cached = os.path.join(empty_keras_home, base.weights_file)
  _save_legacy_h5(source, cached)
  spec = dataclasses.replace(base, weights_hash=_md5(cached))
  assert weights_lib.cached_weights_path(spec) == cached
  model = spec.build(SIZE, weights="imagenet")
  for expected, actual in zip(source.get_weights(), model.get_weights()):
    np.testing.assert_array_equal(expected, actual)


def test_cached_file_with_wrong_hash_is_reported_not_deleted(
    empty_keras_home, offline):
  spec = backbones.get("mobilenet_v3_small")
  os.makedirs(empty_keras_home)
  cached = os.path.join(empty_keras_home, spec.weights_file)
  with open(cached, "wb") as f:
    f.write(b"not the real weights")
  with pytest.raises(backbones.WeightsNotAvailableError) as info:
    spec.build(SIZE, weights="imagenet")
  assert "does not match the expected hash" in str(info.value)
  assert os.path.exists(cached)


# 4. weights=PATH.


def test_weights_path_round_trip(tmp_path):
  spec = backbones.get("mobilenet_v3_small")
  source = spec.build(SIZE, weights="none")
  path = str(tmp_path / "backbone.weights.h5")
  source.save_weights(path)
  loaded = spec.build(SIZE, weights=path)
  fresh = spec.build(SIZE, weights="none")
  assert any(not np.array_equal(a, b)
             for a, b in zip(source.get_weights(), fresh.get_weights()))
  for expected, actual in zip(source.get_weights(), loaded.get_weights()):
    np.testing.assert_array_equal(expected, actual)


def test_weights_path_missing_names_the_path(tmp_path):
  path = str(tmp_path / "nope.weights.h5")
  with pytest.raises(backbones.WeightsNotAvailableError, match="nope"):
    backbones.get("mobilenet_v3_small").build(SIZE, weights=path)


def test_weights_path_mismatch_names_path_and_layer(tmp_path):
  path = str(tmp_path / "small.weights.h5")
  backbones.get("mobilenet_v3_small").build(SIZE).save_weights(path)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with pytest.raises(weights_lib.WeightsMismatchError) as info:
      backbones.get("mobilenet_v3_large").build(SIZE, weights=path)
  message = str(info.value)
  assert path in message
  assert "mobilenet_v3_large" in message
  assert "Layer '" in message  # Keras names the first offending layer.
  # Keras's per-container warnings of the failed load are not passed on.
  assert not [w for w in caught if "Skipping nested" in str(w.message)]


def test_weights_path_unreadable_file(tmp_path):
  path = tmp_path / "corrupt.weights.h5"
  path.write_bytes(b"not hdf5")
  with pytest.raises(weights_lib.WeightsMismatchError, match="corrupt"):
    backbones.get("mobilenet_v3_small").build(SIZE, weights=str(path))


def test_weights_path_bad_suffix(tmp_path):
  path = tmp_path / "weights.bin"
  path.write_bytes(b"")
  with pytest.raises(ValueError, match="weights.bin"):
    backbones.get("mobilenet_v3_small").build(SIZE, weights=str(path))


# 5. SavedModels: load, feature width, fine-tunability, mixed precision.


def test_savedmodel_backbone_is_fine_tunable(tmp_path):
  path = _export_tiny_savedmodel(tmp_path / "sm", width=8)
  spec = backbones.get("savedmodel:" + path)
  assert spec.source == "savedmodel"
  assert spec.endpoint == "serve"
  assert spec.default_size == SIZE and spec.fixed_size
  assert spec.feature_dim == 8
  backbone = spec.build(SIZE, weights="imagenet")
  assert backbone.output_shape == (None, 8)
  sm_layer = backbone.layers[-1]
  assert isinstance(sm_layer, keras.layers.TFSMLayer)
  assert sm_layer.trainable_weights

  inputs = keras.Input((SIZE, SIZE, 3))
  logits = keras.layers.Dense(3)(backbone(inputs))
  classifier = keras.Model(inputs, logits)
  optimizer = keras.optimizers.SGD(learning_rate=0.1)
  x = backbones.preprocess_images(_images(4), spec.preprocessing)
  y = tf.constant([0, 1, 2, 0])
  before = [v.numpy().copy() for v in sm_layer.trainable_weights]
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  with tf.GradientTape() as tape:
    loss = loss_fn(y, classifier(x, training=True))
  grads = tape.gradient(loss, classifier.trainable_variables)
  assert all(g is not None for g in grads)
  optimizer.apply_gradients(zip(grads, classifier.trainable_variables))
  after = [v.numpy() for v in sm_layer.trainable_weights]
  assert any(not np.allclose(b, a) for b, a in zip(before, after))


def test_savedmodel_weights_path_round_trip(tmp_path):
  spec = backbones.get("savedmodel:" + _export_tiny_savedmodel(tmp_path / "sm"))
  tuned = spec.build(SIZE, weights="imagenet")
  for variable in tuned.weights:
    variable.assign(variable + 1.0)
  path = str(tmp_path / "tuned.weights.h5")
  tuned.save_weights(path)
  reloaded = spec.build(SIZE, weights=path)
  for expected, actual in zip(tuned.get_weights(), reloaded.get_weights()):
    np.testing.assert_allclose(expected, actual)


def test_savedmodel_serving_default_and_options(tmp_path):
  path = _export_tiny_savedmodel(tmp_path / "sm", width=5)
  spec = backbones.get(
      f"savedmodel:{path}?endpoint=serving_default&preprocessing=tf")
  assert spec.endpoint == "serving_default"
  assert spec.preprocessing == "tf"
  model = spec.build(SIZE, weights="imagenet")  # dict output, single key
  assert model.output_shape == (None, 5)
  with pytest.raises(savedmodel.SavedModelError, match="output_0"):
    backbones.get(f"savedmodel:{path}?endpoint=serving_default&output=nope")
  with pytest.raises(savedmodel.SavedModelError, match="serve"):
    backbones.get(f"savedmodel:{path}?endpoint=nope")
  with pytest.raises(savedmodel.SavedModelError, match="Unknown option"):
    backbones.get(f"savedmodel:{path}?colour=red")


def test_savedmodel_errors(tmp_path):
  path = _export_tiny_savedmodel(tmp_path / "sm")
  spec = backbones.get("savedmodel:" + path)
  with pytest.raises(ValueError, match="own weights"):
    spec.build(SIZE, weights="none")
  with pytest.raises(savedmodel.SavedModelError, match="exported for 32x32"):
    spec.build(64, weights="imagenet")
  with pytest.raises(savedmodel.SavedModelError, match="not found"):
    backbones.get("savedmodel:" + str(tmp_path / "missing"))
  with pytest.raises(savedmodel.SavedModelError, match="saved_model.pb"):
    backbones.get("savedmodel:" + str(tmp_path))


def test_savedmodel_under_mixed_precision(tmp_path):
  path = _export_tiny_savedmodel(tmp_path / "sm", width=4)
  spec = backbones.get("savedmodel:" + path)
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    backbone = spec.build(SIZE, weights="imagenet")
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Dense(3)(backbone(inputs))
    classifier = keras.Model(inputs, outputs)
    result = classifier(tf.cast(_images(2), tf.float16))
    assert result.shape == (2, 3)
    assert backbone.layers[-1].compute_dtype == "float32"
  finally:
    keras.mixed_precision.set_global_policy("float32")


def test_hub_spec_offline_fails_fast(tmp_path, monkeypatch, offline):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
  spec = backbones.get("vit_b16")
  assert spec.source == "tfhub" and spec.preprocessing == "tf"
  start = time.monotonic()
  with pytest.raises(backbones.WeightsNotAvailableError) as info:
    spec.build(224, weights="imagenet")
  assert time.monotonic() - start < 30
  message = str(info.value)
  assert "savedmodel:/" in message and "TFHUB_CACHE_DIR" in message
  assert str(tmp_path / "hub_cache") in message
  with pytest.raises(ValueError, match="own weights"):
    spec.build(224, weights="none")


def test_hub_download_failure_is_reported(tmp_path, monkeypatch):
  # Stand-in tensorflow_hub whose download fails: the online path, offline.
  monkeypatch.delenv(weights_lib.OFFLINE_ENV, raising=False)
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
  fake_hub = types.ModuleType("tensorflow_hub")

  def resolve(handle):
    raise OSError(f"cannot reach {handle}")

  fake_hub.resolve = resolve
  monkeypatch.setitem(sys.modules, "tensorflow_hub", fake_hub)
  with pytest.raises(backbones.WeightsNotAvailableError,
                     match="download failed.*cannot reach"):
    backbones.get("swin_tiny").build(224, weights="imagenet")
  monkeypatch.setitem(sys.modules, "tensorflow_hub", None)  # not importable
  with pytest.raises(backbones.WeightsNotAvailableError,
                     match="tensorflow_hub cannot be imported"):
    backbones.get("swin_tiny").build(224, weights="imagenet")


def test_hub_handle_resolves_from_populated_cache(tmp_path, monkeypatch,
                                                  offline):
  cache = tmp_path / "hub_cache"
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
  handle = "https://example.invalid/models/tiny/1"
  _export_tiny_savedmodel(weights_lib.tfhub_module_dir(handle), width=6)
  spec = backbones.get(f"hub:{handle}?size={SIZE}")
  assert spec.handle == handle and spec.default_size == SIZE
  assert weights_lib.cached_weights_path(spec)
  model = spec.build(SIZE, weights="imagenet")
  assert model.output_shape == (None, 6)


# 6. Registry behaviour.


def test_unknown_name_lists_valid_names():
  with pytest.raises(backbones.UnknownBackboneError) as info:
    backbones.get("resnet5O")
  message = str(info.value)
  for name in backbones.names():
    assert name in message
  assert "savedmodel:" in message and "hub:" in message
  assert "resnet50" in message.split("Registered")[0]  # suggestion
  assert isinstance(info.value, ValueError)


def test_names_sorted_and_lookup_tolerant():
  all_names = backbones.names()
  assert all_names == sorted(all_names)
  assert {"efficientnetv2_b0", "efficientnetv2_s", "convnext_tiny",
          "mobilenet_v3_small", "resnet50", "resnet50_v2", "densenet121",
          "vit_b16"} <= set(all_names)
  assert backbones.get("ConvNeXt-Tiny") is backbones.get("convnext_tiny")


def test_register_duplicate_raises_and_new_name_works():
  with pytest.raises(ValueError, match="already registered"):
    backbones.register(backbones.get("resnet50"))
  spec = dataclasses.replace(backbones.get("resnet50"), name="test_only_rn")
  try:
    assert backbones.register(spec) is spec
    assert "test_only_rn" in backbones.names()
    with pytest.raises(ValueError, match="already registered"):
      backbones.register(spec)
  finally:
    registry.unregister("test_only_rn")
  assert "test_only_rn" not in backbones.names()
  with pytest.raises(ValueError, match="lowercase"):
    backbones.register(dataclasses.replace(spec, name="Bad-Name"))


def test_register_as_decorator():
  try:
    @backbones.register
    def _factory():
      return dataclasses.replace(backbones.get("resnet50"),
                                 name="test_only_decorated")

    assert callable(_factory)
    assert backbones.get("test_only_decorated").source == "keras.applications"
  finally:
    registry.unregister("test_only_decorated")


# 7. preprocess_images equals Keras's own preprocess_input.

_KERAS_PREPROCESS = {
    "caffe": keras.applications.resnet.preprocess_input,
    "torch": keras.applications.densenet.preprocess_input,
    "tf": keras.applications.resnet_v2.preprocess_input,
    "raw255": keras.applications.efficientnet_v2.preprocess_input,
}


@pytest.mark.parametrize("kind", sorted(_KERAS_PREPROCESS))
def test_preprocess_matches_keras(kind):
  images = _images(3, size=8, seed=1)
  expected_tensor = np.asarray(_KERAS_PREPROCESS[kind](tf.constant(images)))
  expected_numpy = _KERAS_PREPROCESS[kind](images.copy())
  eager = backbones.preprocess_images(tf.constant(images), kind).numpy()
  np.testing.assert_allclose(eager, expected_tensor, rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(eager, expected_numpy, rtol=1e-6, atol=1e-4)

  dataset = tf.data.Dataset.from_tensor_slices(images).map(
      lambda image: backbones.preprocess_images(image, kind))
  mapped = np.stack([x.numpy() for x in dataset])
  np.testing.assert_allclose(mapped, expected_tensor, rtol=1e-6, atol=1e-5)

  traced = tf.function(lambda x: backbones.preprocess_images(x, kind))
  np.testing.assert_allclose(traced(tf.constant(images)).numpy(),
                             expected_tensor, rtol=1e-6, atol=1e-5)


def test_preprocess_families_and_extra_kinds():
  # The raw255 families' own preprocess_input is the identity.
  images = _images(1, size=4)
  for module in (keras.applications.convnext,
                 keras.applications.mobilenet_v3):
    np.testing.assert_array_equal(module.preprocess_input(images), images)
  unit = backbones.preprocess_images(images.astype("uint8"), "unit").numpy()
  assert unit.dtype == np.float32
  assert 0.0 <= unit.min() and unit.max() <= 1.0
  with pytest.raises(ValueError, match="caffe"):
    backbones.preprocess_images(images, "bgr")


def test_spec_preprocessing_matches_family():
  expected = {"resnet50": "caffe", "resnet101": "caffe", "resnet152": "caffe",
              "resnet50_v2": "tf", "resnet101_v2": "tf", "resnet152_v2": "tf",
              "densenet121": "torch", "densenet169": "torch",
              "densenet201": "torch"}
  for name in KERAS_APP_NAMES:
    want = expected.get(name, "raw255")
    assert backbones.get(name).preprocessing == want, name


# 8. The CLI table.


def test_cli_table_lists_every_backbone(tmp_path):
  env = dict(os.environ, KERAS_HOME=str(tmp_path / "kh"),
             TFHUB_CACHE_DIR=str(tmp_path / "hub"))
  result = subprocess.run(
      [sys.executable, "-m", "tfbackbones.backbones"], cwd=REPO_ROOT, env=env,
      capture_output=True, text=True, timeout=120, check=True)
  for name in backbones.names():
    if not name.startswith("test_"):  # registered by other tests in this process only
      assert name in result.stdout
  assert str(tmp_path / "kh" / "models") in result.stdout
  assert "weights cached" in result.stdout
