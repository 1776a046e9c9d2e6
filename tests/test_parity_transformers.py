"""Parity of the Keras Swin-T, SwinV2-T, ViT-B/16 and WaveMix ports with torch.

Each reference model (torchvision; WaveMix: the official `wavemix` package, or
a transcription of its forward pass below when the package is absent) is
built at random init with torch.manual_seed(0), its parameters and BatchNorm
statistics perturbed (torchvision zero-initialises ViT's head and class
token, and fresh BatchNorm statistics are the identity: a port that dropped
them would still match), converted, and compared on the same random input at
a small size that exercises window padding, shifted-window masks and odd
patch merging. No pretrained weights are needed.
"""

from __future__ import annotations

import importlib
import math
import sys
import types

import numpy as np
import pytest

pytest.importorskip("torchvision")
import keras
import torch
import torchvision
from helpers import tiny_config
from torch import nn
from torch.nn import functional as F

from tfbackbones import runner
from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib
from tfbackbones.backbones.ports import transformer, vit
from tfbackbones.convert import common
from tfbackbones.convert import registry as convert_registry
from tfbackbones.convert.registry import ConversionError

pytestmark = pytest.mark.parity

TOLERANCE = 1e-4
# Swin at 64: stage maps 16, 8, 4, 2 -> padded to windows, shifted with masks.
# ViT: torchvision builds the position embedding for image_size.
# WaveMix level 3 needs (size / 4) divisible by 8.
SIZES = {"swin_t": 64, "swinv2_t": 64, "vit_b_16": 32, "wavemix_192_16": 64}
PROTOCOL_PARAMS_M = {"swin_t": 28.3, "swinv2_t": 28.4, "vit_b_16": 86.0,
                     "wavemix_192_16": 27.9}
PROTOCOL_TOP1 = {"swin_t": 81.47, "swinv2_t": 82.07, "vit_b_16": 81.1,
                 "wavemix_192_16": 75.32}
WAVEMIX_192_16 = dict(num_classes=1000, depth=16, mult=2, ff_channel=192,
                      final_dim=192, dropout=0.5, level=3,
                      initial_conv="pachify", patch_size=4)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
  keras.backend.clear_session()
  torch.set_num_threads(1)
  yield
  keras.backend.clear_session()


# ----------------------------------------------------------------------------
# WaveMix reference: the official package, or a transcription of it.


def official_wavemix():
  """Returns `wavemix.classification.WaveMix`, or None if not installed.

  wavemix 0.2.4 imports `numpy.lib.function_base.hamming` (unused), a module
  NumPy 2 removed; a stand-in module lets the official code import unchanged.
  """
  try:
    importlib.import_module("pywt")
    importlib.import_module("einops")
  except ImportError:
    return None
  if "numpy.lib.function_base" not in sys.modules:
    try:
      importlib.import_module("numpy.lib.function_base")
    except ImportError:
      shim = types.ModuleType("numpy.lib.function_base")
      shim.hamming = np.hamming
      sys.modules["numpy.lib.function_base"] = shim
  try:
    return importlib.import_module("wavemix.classification").WaveMix
  except ImportError:
    return None


_S = 1 / math.sqrt(2)  # pywt db1: dec_lo (s, s), dec_hi (-s, s)


def _afb1d(x, dim):
  """pytorch_wavelets afb1d, mode='zero', db1, even length (no padding)."""
  shape = [1, 1, 1, 1]
  shape[dim] = 2
  h0 = torch.tensor([_S, _S]).reshape(shape)  # filters reversed, as prep_filt
  h1 = torch.tensor([_S, -_S]).reshape(shape)
  h = torch.cat([h0, h1] * x.shape[1], dim=0)
  stride = (2, 1) if dim == 2 else (1, 2)
  return F.conv2d(x, h, stride=stride, groups=x.shape[1])


def _dwt(x, levels):
  """DWTForward(J=levels, wave='db1', mode='zero'): (yl, [yh per level])."""
  highs = []
  for _ in range(levels):
    y = _afb1d(_afb1d(x, 3), 2)
    y = y.reshape(y.shape[0], -1, 4, y.shape[-2], y.shape[-1])
    x = y[:, :, 0].contiguous()
    highs.append(y[:, :, 1:].contiguous())
  return x, highs


def _ff(in_dim, final_dim, mult, ff_channel, out_dim, dropout):
  return nn.Sequential(
      nn.Conv2d(in_dim, final_dim * mult, 1), nn.GELU(), nn.Dropout(dropout),
      nn.Conv2d(final_dim * mult, ff_channel, 1),
      nn.ConvTranspose2d(ff_channel, out_dim, 4, stride=2, padding=1),
      nn.BatchNorm2d(out_dim))


class Level3Waveblock(nn.Module):
  """Transcription of the official wavemix.Level3Waveblock."""

  def __init__(self, *, mult, ff_channel, final_dim, dropout):
    super().__init__()
    f, half = final_dim, final_dim // 2
    self.feedforward1 = _ff(f + half, f, mult, ff_channel, f, dropout)
    self.feedforward2 = _ff(f + half, f, mult, ff_channel, half, dropout)
    self.feedforward3 = _ff(f, f, mult, ff_channel, half, dropout)
    self.reduction = nn.Conv2d(final_dim, final_dim // 4, 1)

  def forward(self, x):
    b, c, h, w = x.shape
    x = self.reduction(x)
    y1, _ = _dwt(x, 1)
    y2, _ = _dwt(x, 2)
    y3, yh = _dwt(x, 3)
    x1 = torch.cat((y1, yh[0].reshape(b, c * 3 // 4, h // 2, w // 2)), 1)
    x2 = torch.cat((y2, yh[1].reshape(b, c * 3 // 4, h // 4, w // 4)), 1)
    x3 = torch.cat((y3, yh[2].reshape(b, c * 3 // 4, h // 8, w // 8)), 1)
    x2 = self.feedforward2(torch.cat((x2, self.feedforward3(x3)), 1))
    return self.feedforward1(torch.cat((x1, x2), 1))


class WaveMixTranscribed(nn.Module):
  """Transcription of wavemix.classification.WaveMix (level 3, 'pachify')."""

  def __init__(self, *, num_classes, depth, mult, ff_channel, final_dim,
               dropout, level, initial_conv, patch_size):
    super().__init__()
    assert level == 3 and initial_conv == "pachify"
    self.layers = nn.ModuleList([
        Level3Waveblock(mult=mult, ff_channel=ff_channel, final_dim=final_dim,
                        dropout=dropout) for _ in range(depth)])
    self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                              nn.Linear(final_dim, num_classes))
    self.conv = nn.Sequential(
        nn.Conv2d(3, final_dim // 4, 3, 1, 1),
        nn.Conv2d(final_dim // 4, final_dim // 2, 3, 1, 1),
        nn.Conv2d(final_dim // 2, final_dim, patch_size, patch_size),
        nn.GELU(), nn.BatchNorm2d(final_dim))

  def forward(self, img):
    x = self.conv(img)
    for block in self.layers:
      x = block(x) + x
    return self.pool(x)


# ----------------------------------------------------------------------------
# References and conversion.


def _perturb(model):
  """Moves every parameter and BatchNorm statistic off its init value."""
  g = torch.Generator().manual_seed(1)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(torch.randn(p.shape, generator=g) * 0.02)
    for name, b in model.named_buffers():
      if name.endswith("running_mean"):
        b.copy_(torch.randn(b.shape, generator=g) * 0.1)
      elif name.endswith("running_var"):
        b.copy_(torch.rand(b.shape, generator=g) + 0.5)
  return model.eval()


def reference(arch: str, size: int, *, transcribed: bool = False):
  """The seeded, perturbed PyTorch reference in eval mode."""
  torch.manual_seed(0)
  if arch == "swin_t":
    model = torchvision.models.swin_t()
  elif arch == "swinv2_t":
    model = torchvision.models.swin_v2_t()
  elif arch == "vit_b_16":
    model = torchvision.models.vit_b_16(image_size=size)
  else:
    official = None if transcribed else official_wavemix()
    model = (official or WaveMixTranscribed)(**WAVEMIX_192_16)
  return _perturb(model)


def _inputs(size: int) -> np.ndarray:
  return np.random.RandomState(0).randn(2, 3, size, size).astype(np.float32)


def _torch_logits(model, x: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return model(torch.from_numpy(x)).numpy()


def _state(model) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def references():
  """{arch: (state_dict, input NCHW, torch logits)}, built once per arch."""
  cache = {}

  def get(arch):
    if arch not in cache:
      size = SIZES[arch]
      model = reference(arch, size)
      x = _inputs(size)
      cache[arch] = (_state(model), x, _torch_logits(model, x))
    return cache[arch]
  return get


def _head(state, arch):
  prefix = transformer._HEADS[arch]
  return state[f"{prefix}.weight"], state[f"{prefix}.bias"]


# ----------------------------------------------------------------------------
# Tests.


@pytest.mark.parametrize("arch", list(SIZES))
def test_logits_match_reference(arch, references):
  state, x, expected = references(arch)
  size = SIZES[arch]
  model = convert_registry.get(arch)(state, keep_head=True, num_classes=1000,
                                     image_size=size)
  got = np.asarray(model(x.transpose(0, 2, 3, 1), training=False))
  diff = float(np.abs(got - expected).max())
  print(f"{arch}@{size}: max |keras - torch| = {diff:.2e}")
  assert diff <= TOLERANCE, f"{arch}: max abs diff {diff}"

  # The registered backbone gives the features torchvision's head reads
  # (Swin: the normed map, average-pooled by the engine; ViT: the class
  # token; WaveMix: the final map).
  backbone = registry.get(arch).build(size)
  vit.copy_weights(model, backbone)
  _assert_backbone_matches(backbone, state, arch, x, expected)


def _assert_backbone_matches(backbone, state, arch, x, expected):
  features = np.asarray(backbone(x.transpose(0, 2, 3, 1), training=False))
  assert features.shape[-1] == registry.get(arch).feature_dim
  pooled = features if features.ndim == 2 else features.mean(axis=(1, 2))
  weight, bias = _head(state, arch)
  diff = np.abs(pooled @ weight.T + bias - expected).max()
  assert diff <= TOLERANCE, f"{arch} backbone: max abs diff {diff}"


def test_converted_backbone_file_loads_into_registered_backbone(
    references, tmp_path):
  """What the converter writes without the head fits `spec.build(weights=)`."""
  state, x, expected = references("swin_t")
  path = str(tmp_path / "swin_t_notop.weights.h5")
  transformer.convert("swin_t", state, keep_head=False,
                     image_size=SIZES["swin_t"]).save_weights(path)
  backbone = registry.get("swin_t").build(SIZES["swin_t"], weights=path)
  _assert_backbone_matches(backbone, state, "swin_t", x, expected)


@pytest.mark.parametrize("arch", list(SIZES))
def test_params_at_224_match_protocol(arch):
  spec = registry.get(arch)
  assert spec.source == "tfbackbones" and spec.default_size == 224
  assert spec.preprocessing == "torch"
  assert spec.imagenet_top1 == PROTOCOL_TOP1[arch]
  backbone = spec.build(224)
  assert backbone.name == arch
  # Trainable weights = torch parameters (BatchNorm statistics are buffers).
  params = common.count_params(backbone) + (spec.feature_dim + 1) * 1000
  assert abs(params / 1e6 - PROTOCOL_PARAMS_M[arch]) <= 0.01 * (
      PROTOCOL_PARAMS_M[arch]), params
  assert spec.params_m == PROTOCOL_PARAMS_M[arch]


def test_wavemix_transcription_matches_official():
  """The fallback reference is the official code, while that can be run."""
  if official_wavemix() is None:
    pytest.skip("wavemix (official package) not installed")
  official = reference("wavemix_192_16", 64)
  transcribed = reference("wavemix_192_16", 64, transcribed=True)
  transcribed.load_state_dict(official.state_dict())
  x = _inputs(64)
  np.testing.assert_allclose(_torch_logits(transcribed, x),
                             _torch_logits(official, x), atol=1e-6)


def test_conversion_errors_name_the_torch_key(references):
  state, _, _ = references("swin_t")
  key = "features.3.1.attn.relative_position_bias_table"

  missing = dict(state)
  del missing[key]
  with pytest.raises(ConversionError, match=key.replace(".", r"\.")):
    transformer.convert("swin_t", missing, keep_head=False, image_size=32)

  bad = dict(state)
  bad[key] = bad[key][:-1]
  with pytest.raises(ConversionError, match=key.replace(".", r"\.")):
    transformer.convert("swin_t", bad, keep_head=False, image_size=32)

  extra = dict(state, **{"features.9.0.norm1.weight": np.ones(96, "f")})
  with pytest.raises(ConversionError, match=r"features\.9\.0\.norm1\.weight"):
    transformer.convert("swin_t", extra, keep_head=False, image_size=32)

  with pytest.raises(ConversionError, match=r"head\.weight.*1000 classes"):
    transformer.convert("swin_t", state, keep_head=True, num_classes=10,
                       image_size=32)

  # A checkpoint for another window size: its index buffer disagrees.
  window = dict(state)
  index_key = "features.1.0.attn.relative_position_index"
  window[index_key] = window[index_key][::-1].copy()
  with pytest.raises(ConversionError, match=index_key.replace(".", r"\.")):
    transformer.convert("swin_t", window, keep_head=False, image_size=32)


def test_vit_position_embedding_resize_matches_torchvision():
  pos = np.random.RandomState(0).randn(1, 1 + 14 * 14, 8).astype(np.float32)
  for size in (256, 384, 160, 32):
    expected = torchvision.models.vision_transformer.interpolate_embeddings(
        size, 16, {"encoder.pos_embedding": torch.from_numpy(pos)})
    got = vit.interpolate_pos_embedding(pos, size // 16)
    np.testing.assert_allclose(
        got, expected["encoder.pos_embedding"].numpy(), atol=1e-5)


def test_vit_position_embedding_non_square_matches_torch_interpolate():
  # torchvision only resizes to square grids; a (rows, cols) grid must equal
  # what its own call, F.interpolate(bicubic, align_corners=True), gives.
  pos = np.random.RandomState(1).randn(1, 1 + 14 * 14, 8).astype(np.float32)
  grid = torch.from_numpy(pos[0, 1:]).reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
  for rows, cols in ((28, 42), (10, 16), (14, 20)):
    resized = torch.nn.functional.interpolate(
        grid, size=(rows, cols), mode="bicubic", align_corners=True)
    expected = resized.permute(0, 2, 3, 1).reshape(rows * cols, 8).numpy()
    got = vit.interpolate_pos_embedding(pos, (rows, cols))
    np.testing.assert_array_equal(got[0, 0], pos[0, 0])
    np.testing.assert_allclose(got[0, 1:], expected, atol=1e-5)


def test_imagenet_weights_missing_explain_conversion(tmp_path, monkeypatch):
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  for arch in SIZES:
    with pytest.raises(weights_lib.WeightsNotAvailableError,
                       match=f"--arch={arch}"):
      registry.get(arch).build(224, weights="imagenet")


def test_size_constraints_are_explicit():
  with pytest.raises(ValueError, match="multiples of 16"):
    registry.get("vit_b_16").build(40)
  with pytest.raises(ValueError, match="multiples of 32"):
    registry.get("wavemix_192_16").build(48)


# Tracing one training step of these graphs takes 30-60 s on 2 cores, so only
# Swin-T (the port with the most custom machinery) runs by default.
@pytest.mark.parametrize("arch", [
    a if a == "swin_t" else pytest.param(a, marks=pytest.mark.heavy)
    for a in SIZES])
def test_trains_one_epoch_in_the_engine(arch, tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, backbone=arch,
                    image_size=32, max_epochs=1, train_fraction=0.05,
                    batch_size=16)
  result = runner.train(cfg, log=lambda line: None)
  # One epoch from random init may be at chance (degenerate); the port trained and tested.
  assert result.status in ("finished", "degenerate") and result.test is not None
  assert result.epochs["total"] == 1
  assert np.isfinite(result.test["loss"])
