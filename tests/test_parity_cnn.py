"""Keras ports and converters of the paper's torchvision CNNs vs torchvision itself.

No pretrained weights exist offline, so parity is tested at seeded random init. A
freshly initialised network is a weak witness (BatchNorm is the identity in eval mode,
biases are zero, ConvNeXt's layer scale is 1e-6 so its blocks vanish), so every
such tensor is first set to random values: a transposed kernel, a swapped bias or a
mis-ordered channel shuffle then changes the output by far more than the tolerance.
Outputs are checked to be O(1) so that the 1e-4 absolute tolerance means something.

Inputs go through `preprocess_images(x, spec.preprocessing)` for Keras and through
torchvision's own ImageNet mean/std for torch, so preprocessing is under test too.
"""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="parity tests need torch + torchvision: pip install -e '.[parity]'")
tv_models = pytest.importorskip(
    "torchvision.models",
    reason="parity tests need torch + torchvision: pip install -e '.[parity]'")

from helpers import tiny_config

from tfbackbones import (
  backbones,
  runner,
)
from tfbackbones.backbones.ports import cnn, regnet
from tfbackbones.convert import common
from tfbackbones.convert import registry as convert_registry

pytestmark = pytest.mark.parity

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
ATOL = 1e-4
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

# backbone / converter name -> (torchvision constructor, docs/protocol.md params in M).
ARCHS = {
    "regnety_032": (tv_models.regnet_y_3_2gf, 19.4),
    "resnext50_32x4d": (tv_models.resnext50_32x4d, 25.0),
    "shufflenet_v2_x2_0": (tv_models.shufflenet_v2_x2_0, 7.4),
    "densenet161": (tv_models.densenet161, 28.7),
    "resnet50_torchvision": (tv_models.resnet50, 25.6),
    "convnext_tiny": (tv_models.convnext_tiny, 28.6),
    "efficientnetv2_s_torchvision": (tv_models.efficientnet_v2_s, 21.5),
    "mobilenet_v3_large_torchvision": (tv_models.mobilenet_v3_large, 5.5),
}
PORTS = sorted(cnn.CONSTRUCTORS)


@pytest.fixture(autouse=True)
def _clean_session():
  keras.backend.clear_session()
  yield
  keras.backend.clear_session()


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
  """TF already uses both cores; a second thread pool would only contend."""
  previous = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(previous)


def _torch_model(arch: str):
  """The torchvision model at seeded random init, made a strong witness, in eval."""
  torch.manual_seed(0)
  model = ARCHS[arch][0]()
  gen = torch.Generator().manual_seed(1)

  def uniform(t, lo, hi):
    t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)

  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        uniform(module.running_mean, -0.2, 0.2)
        uniform(module.running_var, 0.5, 1.5)
      if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
        uniform(module.weight, 0.5, 1.0)
    for name, param in model.named_parameters():
      if name.endswith("bias"):
        uniform(param, -0.1, 0.1)
      elif name.endswith("layer_scale"):
        uniform(param, 0.1, 0.3)
  return model.eval()


def _images(n=2, size=SIZE):
  return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _torch_input(raw):
  return torch.from_numpy(((raw / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2).copy())


def _keras_input(raw, name):
  return backbones.preprocess_images(raw, backbones.get(name).preprocessing).numpy()


def _torch_features(arch, model, x):
  """torchvision's map just before global average pooling (the backbone output)."""
  if arch in ("resnext50_32x4d", "resnet50_torchvision"):
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                 "layer4"):
      x = getattr(model, name)(x)
    return x
  if arch == "regnety_032":
    return model.trunk_output(model.stem(x))
  if arch == "shufflenet_v2_x2_0":
    for name in ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"):
      x = getattr(model, name)(x)
    return x
  if arch == "densenet161":
    return torch.relu(model.features(x))
  if arch == "convnext_tiny":
    # Keras's ConvNeXt backbone ends with the head LayerNorm applied per position.
    return model.classifier[0](model.features(x))
  return model.features(x)  # EfficientNetV2, MobileNetV3


def _state_dict(model):
  return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_imagenet_head_logits_and_params_match_torchvision(arch):
  model = _torch_model(arch)
  raw = _images()
  with torch.no_grad():
    expected = model(_torch_input(raw)).numpy()
  assert 0.1 < np.abs(expected).max() < 100, "outputs too small/large for an atol test"
  converted = common.convert_state_dict(arch, _state_dict(model), keep_head=True)
  logits = keras.ops.convert_to_numpy(converted(_keras_input(raw, arch), training=False))
  diff = np.abs(logits - expected).max()
  print(f"{arch}: max|logit| {np.abs(expected).max():.3g}, max abs diff {diff:.3g}")
  assert diff <= ATOL
  torch_params = sum(p.numel() for p in model.parameters())
  assert common.count_params(converted) == torch_params
  spec = backbones.get(arch)
  assert spec.params_m == ARCHS[arch][1]
  assert abs(torch_params / 1e6 - spec.params_m) <= 0.01 * spec.params_m


@pytest.mark.parametrize("arch", list(ARCHS))
def test_converted_file_loads_into_registered_backbone_with_parity(arch, tmp_path):
  """.pth -> convert_file -> .weights.h5 -> spec.build(weights=PATH) == torch features."""
  model = _torch_model(arch)
  state = model.state_dict()
  if arch == "densenet161":  # torchvision's released file uses the legacy key names
    state = {k.replace("norm1.", "norm.1.").replace("norm2.", "norm.2.")
             .replace("conv1.", "conv.1.").replace("conv2.", "conv.2."): v
             for k, v in state.items()}
  src, dst = str(tmp_path / f"{arch}.pth"), str(tmp_path / f"{arch}.weights.h5")
  torch.save({"model": state, "epoch": 3}, src)
  converted = common.convert_file(arch, src, dst)
  assert converted.name == arch
  spec = backbones.get(arch)
  backbone = spec.build(SIZE, weights=dst)
  raw = _images()
  with torch.no_grad():
    expected = _torch_features(arch, model, _torch_input(raw)).numpy().transpose(0, 2, 3, 1)
  features = keras.ops.convert_to_numpy(backbone(_keras_input(raw, arch), training=False))
  assert features.shape == expected.shape and features.shape[-1] == spec.feature_dim
  diff = np.abs(features - expected).max()
  pooled_diff = np.abs(features.mean(axis=(1, 2)) - expected.mean(axis=(1, 2))).max()
  print(f"{arch}: max|feature| {np.abs(expected).max():.3g}, max abs diff {diff:.3g}, "
        f"pooled {pooled_diff:.3g}")
  assert diff <= ATOL and pooled_diff <= ATOL


def test_regnet_stage_plan_matches_torchvision():
  from torchvision.models.regnet import BlockParams
  params = BlockParams.from_init_params(**regnet.REGNETY_032, se_ratio=0.25)
  expected = [(w, d, g, s) for w, s, d, g, _ in params._get_expanded_params()]
  assert regnet.regnet_block_params(**regnet.REGNETY_032) == expected


def test_mismatch_errors_name_the_tensor():
  state = _state_dict(_torch_model("mobilenet_v3_large_torchvision"))
  key = "features.4.block.2.fc1.weight"
  bad = dict(state, **{key: state[key][:-1]})
  with pytest.raises(convert_registry.ConversionError, match=key):
    common.convert_state_dict("mobilenet_v3_large", bad)
  missing = {k: v for k, v in state.items() if k != key}
  with pytest.raises(convert_registry.ConversionError,
                     match=r"Missing tensor 'features\.4\.block\.2\.fc1\.weight'"):
    common.convert_state_dict("mobilenet_v3_large", missing)
  extra = dict(state, **{"features.99.weight": np.zeros(3, np.float32)})
  with pytest.raises(convert_registry.ConversionError, match=r"features\.99\.weight"):
    common.convert_state_dict("mobilenet_v3_large", extra)
  with pytest.raises(convert_registry.ConversionError, match="no converter for 'nope'"):
    common.convert_state_dict("nope", state)


def test_ports_ask_for_converted_weights_instead_of_imagenet():
  with pytest.raises(backbones.WeightsNotAvailableError,
                     match="python -m tfbackbones.convert --arch=densenet161"):
    backbones.get("densenet161").build(32, weights="imagenet")


def test_command_line_converts_a_checkpoint(tmp_path):
  model = _torch_model("shufflenet_v2_x2_0")
  src, dst = str(tmp_path / "ckpt.pth"), str(tmp_path / "out.weights.h5")
  # A DataParallel-style checkpoint: keys prefixed with "module.", under "state_dict".
  torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
             src)
  env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
      [sys.executable, "-m", "tfbackbones.convert", "--arch=shufflenet_v2_x2_0",
       f"--src={src}", f"--dst={dst}"],
      capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "--backbone=shufflenet_v2_x2_0" in proc.stdout and os.path.isfile(dst)
  bad = subprocess.run(  # fails before building anything: an unknown arch
      [sys.executable, "-m", "tfbackbones.convert", "--arch=resnet_51",
       f"--src={src}", f"--dst={dst}"],
      capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300, check=False)
  assert bad.returncode == 2 and "no converter for 'resnet_51'" in bad.stderr
  assert "resnet50_torchvision" in bad.stderr  # the message lists the known ones


@pytest.mark.parametrize("name", PORTS)
def test_port_takes_a_training_step_with_gradients_everywhere(name):
  """Cheap stand-in for an engine run: every weight of the classifier gets a gradient."""
  import tensorflow as tf

  from tfbackbones.model import build_classifier

  classifier = build_classifier(backbones.get(name).build(32, "none"), 10, 32)
  x = _keras_input(_images(2, 32), name)
  before = [v.numpy().copy() for v in classifier.trainable_variables]
  optimizer = keras.optimizers.AdamW(1e-3)
  with tf.GradientTape() as tape:
    logits = classifier(x, training=True)
    loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        np.array([1, 2]), logits, from_logits=True))
  grads = tape.gradient(loss, classifier.trainable_variables)
  missing = [v.path for v, g in zip(classifier.trainable_variables, grads) if g is None]
  assert not missing
  assert all(np.isfinite(g.numpy()).all() for g in grads)
  optimizer.apply_gradients(zip(grads, classifier.trainable_variables))
  assert any(not np.array_equal(b, v.numpy())
             for b, v in zip(before, classifier.trainable_variables))


# A full engine epoch costs mostly graph tracing: ~10 s for ShuffleNetV2 (the port
# with custom layers), ~45 s for DenseNet-161 on 2 cores. The rest run as `heavy`.
_ENGINE_DEFAULT = {"shufflenet_v2_x2_0"}


@pytest.mark.parametrize("name", [
    n if n in _ENGINE_DEFAULT else pytest.param(n, marks=pytest.mark.heavy)
    for n in PORTS])
def test_port_trains_one_epoch_in_the_engine(name, tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, backbone=name, max_epochs=1,
                    train_fraction=0.05, batch_size=16)
  result = runner.train(cfg, log=lambda line: None)
  # One epoch from random init may be at chance (degenerate); the port trained and tested.
  assert result.status in ("finished", "degenerate") and result.test is not None
  assert result.params > 0
