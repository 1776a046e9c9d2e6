"""keras-hub presets as backbones: `keras_hub:<preset>` names and named foundation models.

keras-hub is the Keras 3 ecosystem's model zoo (keras-cv is frozen, and TF Hub's
`hub.KerasLayer` cannot live in a Keras 3 model). Its presets bring the backbones a
practitioner asks about in 2026 -- DINOv2/v3 (self-supervised), SigLIP2, MedSigLIP and
CLIP (vision-language), ImageNet-21k ViT, DeiT -- beside the paper's supervised CNNs.

A preset becomes the project's usual backbone: a functional model mapping RGB images in
[0, 255] to features, which `model.build_classifier` pools and puts a new head on:

  images -> the preset's own scale/offset (its ImageConverter, inside the model)
         -> the keras-hub backbone (the vision tower of CLIP/SigLIP)
         -> features: the CLS token of ViT-like token outputs (what DINO, ViT and DeiT
            linear probes use), SigLIP's attention-pooled vector, or a CNN's feature
            map (global-average pooled by the head).

The converter's scale/offset run inside the model (spec preprocessing is "raw255"),
because presets use statistics the project's kinds do not cover (CLIP's mean/std) and
the values are read from the preset itself, never copied by hand. Resizing and
cropping stay with the project's data pipeline, the same for every backbone.

Where a preset comes from, in order: a local preset directory (`keras_hub:/dir`,
written by `save_to_preset`); a copy in `<keras cache>/keras_hub/<preset>`; kagglehub's
cache (`$KAGGLEHUB_CACHE`, filled by `from_preset` on a machine with network); else a
download attempt (not when TFBACKBONES_OFFLINE=1). A preset that cannot be had raises
WeightsNotAvailableError naming the handle and those directories, when the backbone is
built -- before any data is prepared.

Name resolution reads only JSON files (config.json, metadata.json,
image_converter.json): listing backbones never imports keras-hub or TensorFlow.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from typing import TYPE_CHECKING

from tfbackbones import imagesize
from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib

if TYPE_CHECKING:
  import keras

SOURCE = "keras_hub"
PREFIX = "keras_hub:"
PREPROCESSING = "raw255"  # the preset's own scale/offset run inside the model
CONVERTER_LAYER = "preset_image_converter"
CONVERTER_FILE = "image_converter.json"
METADATA_FILE = "metadata.json"
DEFAULT_SIZE = 224
# Backbones whose input size is free with pretrained weights: DINOv2 interpolates its
# position embeddings, DINOv3 uses rotary ones. Others with a fixed `image_shape`
# (ViT, DeiT, CLIP, SigLIP, Swin) have learned position tables of one size.
SIZE_FLEXIBLE_CLASSES = ("DINOV2Backbone", "DINOV3Backbone")
INSTALL_HINT = "pip install -e '.[keras_hub]' (keras-hub 0.32)"


class KerasHubError(ValueError):
  """A keras-hub preset cannot be used as a backbone as asked."""


@dataclasses.dataclass(frozen=True)
class Preset:
  """A keras-hub preset worth comparing, with facts from keras-hub's preset list.

  Attributes:
    name: The keras-hub preset name, also the registry name.
    handle: Its Kaggle handle (from keras_hub/src/models/*/..._presets.py).
    params: keras-hub's metadata "params" (whole preset), or None.
    size: Input resolution: fixed-size presets state it in their name; for
      size-flexible ones, the resolution the table shows (any size works).
    fixed: True if the preset accepts only `size` inputs.
    feature_dim: Width of the feature vector, or None if not checked.
    vision_language: True for CLIP/SigLIP: `params` counts the text tower too, so
      the table shows no parameter count for the vision backbone alone.
    what: One line for the table's description.
  """

  name: str
  handle: str
  params: int | None
  size: int
  fixed: bool
  feature_dim: int | None
  vision_language: bool
  what: str


def _kaggle(model: str, preset: str, version: int = 1, owner: str = "keras") -> str:
  return f"kaggle://{owner}/{model}/keras/{preset}/{version}"


# Handles and "params" as in keras-hub 0.32.0's preset files. Feature widths are the
# architectures' hidden sizes (ViT-S 384, ViT-B 768, ViT-L 1024).
PRESETS = (
    Preset("dinov2_small", _kaggle("dinov2", "dinov2_small"), 22_582_656, 224, False, 384,
           False, "DINOv2 ViT-S/14, self-supervised on LVD-142M"),
    Preset("dinov2_base", _kaggle("dinov2", "dinov2_base"), 87_632_640, 224, False, 768,
           False, "DINOv2 ViT-B/14, self-supervised on LVD-142M"),
    Preset("dinov3_vit_small_lvd1689m", _kaggle("dinov3", "dinov3_vit_small_lvd1689m"),
           21_600_000, 224, False, 384, False, "DINOv3 ViT-S/16, self-supervised on LVD-1689M"),
    Preset("dinov3_vit_base_lvd1689m", _kaggle("dinov3", "dinov3_vit_base_lvd1689m"),
           86_000_000, 224, False, 768, False, "DINOv3 ViT-B/16, self-supervised on LVD-1689M"),
    Preset("dinov3_vit_large_sat493m", _kaggle("dinov3", "dinov3_vit_large_sat493m"),
           300_000_000, 224, False, 1024, False,
           "DINOv3 ViT-L/16, self-supervised on SAT-493M satellite images"),
    Preset("siglip2_base_patch16_224", _kaggle("siglip", "siglip2_base_patch16_224"),
           375_188_230, 224, True, 768, True, "SigLIP2 B/16 vision tower, WebLi"),
    Preset("siglip2_base_patch16_256", _kaggle("siglip", "siglip2_base_patch16_256"),
           375_234_370, 256, True, 768, True, "SigLIP2 B/16 vision tower, WebLi"),
    Preset("medsiglip_900m_448", _kaggle("medsiglip", "medsiglip_900m_448"), 878_301_426,
           448, True, None, True, "MedSigLIP vision tower, medical image-text pairs"),
    Preset("clip_vit_base_patch16", _kaggle("clip", "clip_vit_base_patch16", 3), 149_620_934,
           224, True, 768, True, "OpenAI CLIP ViT-B/16 vision tower"),
    Preset("vit_base_patch16_224_imagenet21k",
           _kaggle("vit", "vit_base_patch16_224_imagenet21k", 3), 85_798_656, 224, True,
           768, False, "ViT-B/16 pretrained on ImageNet-21k"),
    Preset("deit_small_distilled_patch16_224_imagenet",
           _kaggle("deit", "deit_small_distilled_patch16_224_imagenet"), 21_666_432, 224,
           True, 384, False, "DeiT-S/16 distilled, ImageNet-1k"),
    Preset("deit_base_distilled_patch16_224_imagenet",
           _kaggle("deit", "deit_base_distilled_patch16_224_imagenet"), 85_800_192, 224,
           True, 768, False, "DeiT-B/16 distilled, ImageNet-1k"),
    Preset("swin_tiny_patch4_window7_224", _kaggle("swin-transformer",
           "swin_tiny_patch4_window7_224"), 27_519_354, 224, True, None, False,
           "Swin-T (keras-hub), ImageNet-1k"),
    Preset("efficientnet_b0_ra_imagenet", _kaggle("efficientnet", "efficientnet_b0_ra_imagenet", 2),
           5_288_548, 224, False, None, False, "EfficientNet-B0 (timm RandAugment), any size"),
    Preset("efficientnet2_rw_s_ra2_imagenet",
           _kaggle("efficientnet", "efficientnet2_rw_s_ra2_imagenet", 2), 23_941_296, 224, False,
           None, False, "EfficientNetV2-S (timm rw variant), any size"),
)
_BY_NAME = {p.name: p for p in PRESETS}


@dataclasses.dataclass(frozen=True)
class PresetFacts:
  """What a local preset directory says about itself (read from its JSON files).

  Attributes:
    class_name: The keras-hub backbone class (e.g. "DINOV2Backbone").
    size: (height, width) the preset was saved for, or None if any size.
    fixed: True if only `size` inputs work with its weights.
    feature_dim: hidden_dim of the (vision) backbone, or None.
    params: metadata parameter_count (whole preset), or None.
    vision_language: True if the backbone has a vision and a text tower.
    class_token: False if a ViT was saved without a CLS token (then tokens are
      averaged).
    scale: The ImageConverter's scale (float or per-channel list) or None.
    offset: The ImageConverter's offset or None.
    has_converter: True if the preset ships image_converter.json.
  """

  class_name: str
  size: tuple[int, int] | None
  fixed: bool
  feature_dim: int | None
  params: int | None
  vision_language: bool
  class_token: bool
  scale: float | list[float] | None
  offset: float | list[float] | None
  has_converter: bool


def _read_json(path: str) -> dict:
  try:
    with open(path, encoding="utf8") as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise KerasHubError(f"Cannot read keras-hub preset file {path}: {e}") from e


def read_preset(path: str) -> PresetFacts:
  """Reads a preset directory's facts from its JSON files (no TensorFlow).

  Args:
    path: A keras-hub preset directory (config.json, model.weights.h5, ...).

  Returns:
    Its facts.

  Raises:
    KerasHubError: If config.json is missing or unreadable.
  """
  if not weights_lib.is_preset_dir(path):
    raise KerasHubError(
        f"{path} is not a keras-hub preset directory (no {weights_lib.PRESET_CONFIG}). "
        "Pass a directory written by Backbone.save_to_preset(...) or a copy of a "
        "downloaded preset.")
  config = _read_json(os.path.join(path, weights_lib.PRESET_CONFIG))
  class_name = str(config.get("class_name", "?"))
  inner = config.get("config", {})
  vision = inner.get("vision_encoder")
  vision_language = isinstance(vision, dict)
  if vision_language:
    inner = vision.get("config", {})
  shape = inner.get("image_shape") or inner.get("input_shape")
  size = None
  if shape and len(shape) == 3 and shape[0] and shape[1]:
    size = (int(shape[0]), int(shape[1]))
  fixed = size is not None and class_name not in SIZE_FLEXIBLE_CLASSES
  meta_path = os.path.join(path, METADATA_FILE)
  params = _read_json(meta_path).get("parameter_count") if os.path.isfile(meta_path) else None
  scale = offset = None
  converter_path = os.path.join(path, CONVERTER_FILE)
  has_converter = os.path.isfile(converter_path)
  if has_converter:
    converter = _read_json(converter_path).get("config", {})
    scale, offset = converter.get("scale"), converter.get("offset")
    if size is None and converter.get("image_size"):
      # A size-free CNN: the converter's size is the one it was trained at.
      height, width = converter["image_size"]
      size = (int(height), int(width))
  dim = inner.get("hidden_dim")
  return PresetFacts(
      class_name=class_name, size=size, fixed=fixed,
      feature_dim=int(dim) if isinstance(dim, int) else None,
      params=int(params) if isinstance(params, int) else None,
      vision_language=vision_language,
      class_token=inner.get("use_class_token", True) is not False,
      scale=scale, offset=offset, has_converter=has_converter)


def _spec(name: str, handle: str, size, fixed: bool, params: int | None,
          feature_dim: int | None, description: str) -> registry.BackboneSpec:
  return registry.BackboneSpec(
      name=name, source=SOURCE, default_size=imagesize.canonical(size),
      preprocessing=PREPROCESSING,
      params_m=None if params is None else round(params / 1e6, 2),
      imagenet_top1=None, feature_dim=feature_dim, weights_file=None,
      description=description, handle=handle, fixed_size=fixed, builder=_build)


def _spec_from_dir(name: str, handle: str, path: str, what: str) -> registry.BackboneSpec:
  facts = read_preset(path)
  size = facts.size or (DEFAULT_SIZE, DEFAULT_SIZE)
  # A vision-language count includes the text tower, which the backbone does not use.
  params = None if facts.vision_language else facts.params
  return _spec(name, handle, size, facts.fixed, params, facts.feature_dim,
               f"{what} ({facts.class_name}, keras-hub preset {path})")


def preset_spec(preset: Preset, name: str | None = None) -> registry.BackboneSpec:
  """The spec of a named preset: facts of the local copy if there is one, else the table's."""
  name = name or preset.name
  local = weights_lib.keras_hub_cached(preset.handle)
  if local is not None:
    try:
      return _spec_from_dir(name, preset.handle, local, preset.what)
    except KerasHubError:
      pass  # a damaged copy: listed from the table; building names the problem
  params = None if preset.vision_language else preset.params
  return _spec(name, preset.handle, preset.size, preset.fixed, params, preset.feature_dim,
               f"{preset.what} (keras-hub {preset.handle})")


def _keras_hub_handles() -> dict[str, str]:
  """Every backbone preset keras-hub knows, name -> Kaggle handle (imports keras-hub: slow)."""
  presets = _import_keras_hub().models.Backbone.presets
  return {name: entry["kaggle_handle"] for name, entry in presets.items()
          if "kaggle_handle" in entry}


def _unknown_preset(name: str, known: list[str]) -> registry.UnknownBackboneError:
  close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
  hint = f" Did you mean: {', '.join(close)}?" if close else ""
  return registry.UnknownBackboneError(
      f"Unknown keras-hub preset {name!r}.{hint} Named here: {', '.join(_BY_NAME)}. "
      "Also accepted: keras_hub:kaggle://<owner>/<model>/keras/<variation>/<version> or "
      "keras_hub:/path/to/preset_dir (see docs/keras_hub.md).")


_PATH_RE = re.compile(r"^(/|~|\.{1,2}/|[A-Za-z]:[\\/])")


def resolve(rest: str) -> registry.BackboneSpec:
  """Resolves `keras_hub:<rest>` into a spec.

  Args:
    rest: A local preset directory, a `kaggle://` handle, or a keras-hub preset name.

  Returns:
    An unregistered spec named `keras_hub:<rest>`.

  Raises:
    KerasHubError: For a path that is not a preset directory.
    UnknownBackboneError: For a preset name keras-hub does not know.
  """
  text = rest.strip()
  full_name = PREFIX + text
  if not text:
    raise KerasHubError("Empty preset in 'keras_hub:'; use keras_hub:<preset name>, "
                        "keras_hub:kaggle://... or keras_hub:/path/to/preset_dir.")
  if _PATH_RE.match(text) or os.path.isdir(text):
    path = os.path.abspath(os.path.expanduser(text))
    if not os.path.isdir(path):
      raise KerasHubError(f"keras-hub preset directory not found: {path}")
    return _spec_from_dir(full_name, path, path, "local keras-hub preset")
  if text.startswith("kaggle://"):
    parts = text[len("kaggle://"):].strip("/").split("/")
    if len(parts) not in (4, 5) or parts[2] != "keras":
      raise KerasHubError(f"Bad Kaggle handle {text!r}; expected "
                          "kaggle://<owner>/<model>/keras/<variation>[/<version>].")
    local = weights_lib.keras_hub_cached(text)
    if local is not None:
      return _spec_from_dir(full_name, text, local, "keras-hub preset")
    return _spec(full_name, text, DEFAULT_SIZE, False, None, None,
                 f"keras-hub preset {text} (not on this machine)")
  if text in _BY_NAME:
    return preset_spec(_BY_NAME[text], full_name)
  handles = _keras_hub_handles()
  if text not in handles:
    raise _unknown_preset(text, sorted(set(handles) | set(_BY_NAME)))
  handle = handles[text]
  local = weights_lib.keras_hub_cached(handle)
  if local is not None:
    return _spec_from_dir(full_name, handle, local, "keras-hub preset")
  return _spec(full_name, handle, DEFAULT_SIZE, False, None, None,
               f"keras-hub preset {text} (not on this machine)")


# ---------------------------------------------------------------------- building
def missing_message(spec: registry.BackboneSpec, reason: str) -> str:
  """Explains where a keras-hub preset's files must go on an offline machine."""
  handle = spec.handle or "?"
  places = weights_lib.keras_hub_preset_dirs(handle)
  where = "\n".join(f"  {p}" for p in places) or "  (none: not a Kaggle handle)"
  variation = os.path.basename(places[0]) if places else "<preset>"
  return (
      f"keras-hub preset for backbone {spec.name!r} ({handle}) is not on this machine "
      f"({reason}).\nA preset directory (config.json, model.weights.h5, "
      f"image_converter.json, ...) is looked for in\n{where}\n"
      "On a machine with internet, fill the cache and copy it here:\n"
      f"  python -c \"import keras_hub as h; h.models.Backbone.from_preset('{handle}'); "
      f"h.layers.ImageConverter.from_preset('{handle}')\"\n"
      f"  (kagglehub writes {weights_lib.kagglehub_cache_dir()}/models/...; copy that "
      f"tree to $KAGGLEHUB_CACHE here), or save it with Backbone.from_preset(...)"
      f".save_to_preset('{variation}') plus the ImageConverter's save_to_preset, and copy "
      f"the directory to {weights_lib.keras_hub_presets_dir()}/.\n"
      "Or pass --backbone=keras_hub:/path/to/preset_dir. See docs/keras_hub.md.")


def _import_keras_hub():
  try:
    import keras_hub
  except ImportError as e:
    raise KerasHubError(f"keras-hub is not installed: {INSTALL_HINT}.") from e
  return keras_hub


def locate(spec: registry.BackboneSpec) -> str:
  """Returns the local preset directory for `spec`, downloading it if allowed.

  Raises:
    WeightsNotAvailableError: If it is not local and cannot be downloaded.
  """
  local = weights_lib.keras_hub_cached(spec.handle or "")
  if local is not None:
    return local
  if not (spec.handle or "").startswith("kaggle://"):
    raise KerasHubError(f"keras-hub preset directory not found: {spec.handle}")
  if weights_lib.offline():
    raise weights_lib.WeightsNotAvailableError(missing_message(
        spec, f"{weights_lib.OFFLINE_ENV}=1 forbids downloading"))
  keras_hub = _import_keras_hub()
  from keras_hub.src.utils import preset_utils
  try:
    with weights_lib.socket_timeout(weights_lib.DOWNLOAD_SOCKET_TIMEOUT_S):
      config = preset_utils.get_file(spec.handle, weights_lib.PRESET_CONFIG)
      keras_hub.models.Backbone.from_preset(spec.handle)  # fetches the weights too
      if preset_utils.check_file_exists(spec.handle, CONVERTER_FILE):
        preset_utils.get_file(spec.handle, CONVERTER_FILE)
  except Exception as e:
    raise weights_lib.WeightsNotAvailableError(missing_message(
        spec, f"download failed: {type(e).__name__}: {str(e)[:300]}")) from e
  return os.path.dirname(config)


def converter_layer(scale, offset, name: str = CONVERTER_LAYER) -> keras.layers.Layer:
  """The preset ImageConverter's `x * scale + offset` (scalar or per channel)."""
  import keras
  return keras.layers.Rescaling(scale=1.0 if scale is None else scale,
                                offset=0.0 if offset is None else offset, name=name)


def select_features(features, facts: PresetFacts, where: str):
  """Picks the feature a new head and a linear probe should use.

  Token sequences (B, T, D) give their CLS token (index 0) -- the representation
  DINO, ViT, DeiT and CLIP are evaluated with -- or the token mean when there is no
  CLS token; (B, D) vectors (SigLIP's attention pooling) and (B, h, w, C) CNN maps
  (pooled by the head) pass through.
  """
  import keras
  if isinstance(features, dict):
    for key in ("pooled_output", "sequence_output"):
      if key in features:
        features = features[key]
        break
    else:
      raise KerasHubError(f"{where} returns {', '.join(sorted(features))}; expected a "
                          "feature tensor.")
  rank = len(features.shape)
  if rank == 3:
    if facts.class_token:
      return features[:, 0, :]
    return keras.ops.mean(features, axis=1)
  if rank in (2, 4):
    return features
  raise KerasHubError(f"{where} gives features of shape {tuple(features.shape)}; "
                      "expected (B, T, D), (B, D) or (B, h, w, C).")


def build_from_preset(path: str, name: str, image_size, weights: str) -> keras.Model:
  """Builds `images in [0, 255] -> features` from a local preset directory.

  Args:
    path: Local keras-hub preset directory.
    name: Model name (made Keras-safe).
    image_size: (height, width).
    weights: "imagenet" (the preset's pretrained weights), "none" (the preset's
      architecture, random init) or a checked weights-file path (random init, then
      that file is loaded by the caller).

  Returns:
    The backbone model; float32 input, features in the global dtype policy.

  Raises:
    KerasHubError: For a preset without image_converter.json, a size a fixed-size
      preset cannot take, or keras-hub missing.
  """
  import keras
  keras_hub = _import_keras_hub()
  facts = read_preset(path)
  if not facts.has_converter:
    # `Backbone.from_preset` alone does not fetch it; guessing the scaling would train
    # the pretrained weights on inputs they never saw.
    raise KerasHubError(
        f"{path} has no {CONVERTER_FILE}, so the preset's input scaling is unknown. Add "
        "it on a machine with network: keras_hub.layers.ImageConverter.from_preset("
        f"'<preset>').save_to_preset('{path}') (for your own preset, save the converter "
        "it was trained with).")
  size = imagesize.require(image_size)
  kwargs = {}
  if facts.size is not None and size != facts.size:
    if facts.fixed:
      raise KerasHubError(
          f"{path} ({facts.class_name}) takes only "
          f"{imagesize.text(facts.size, both_sides=True)} inputs (learned position "
          f"embeddings), not {imagesize.text(size, both_sides=True)}. Pass "
          f"--image_size={imagesize.text(facts.size)}.")
    if not facts.vision_language:
      kwargs["image_shape"] = (*size, 3)
  backbone = keras_hub.models.Backbone.from_preset(
      path, load_weights=weights == "imagenet", **kwargs)
  backbone = native_position_embeddings(backbone)
  encoder = getattr(backbone, "vision_encoder", None) or backbone
  safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "keras_hub"
  inputs = keras.Input((*size, 3), dtype="float32", name="images")
  x = inputs
  if facts.scale is not None or facts.offset is not None:
    x = converter_layer(facts.scale, facts.offset)(x)
  # keras-hub's vision towers take a dict ({"images": x}; DINOv3 {"pixel_values": x});
  # calling them with the bare tensor works but warns on every call.
  if isinstance(encoder.input, dict):
    if len(encoder.input) != 1:
      raise KerasHubError(f"{path} ({facts.class_name}) takes inputs "
                          f"{', '.join(sorted(encoder.input))}; expected one image input.")
    x = {next(iter(encoder.input)): x}
  features = encoder(x)
  features = select_features(features, facts, f"keras-hub {facts.class_name} at {path}")
  model = keras.Model(inputs, features, name=safe)
  track_for_checkpoints(model, encoder)
  return model


def _interpolating_embeddings(model: keras.Model) -> list:
  """Layers that keep a trained `interpolated_position_embeddings` beside a stored
  `position_embeddings` (keras-hub's DINOv2 embedding)."""
  from tfbackbones import layer_walk  # imports Keras, which this module defers

  return [layer for layer in layer_walk.walk(model)
          if hasattr(layer, "interpolated_position_embeddings")
          and hasattr(layer, "position_embeddings")]


def native_position_embeddings(backbone: keras.Model) -> keras.Model:
  """Makes a DINOv2 backbone's position embeddings its own, at the size it runs at.

  keras-hub's DINOv2 trains `interpolated_position_embeddings` (the preset's table,
  interpolated to the input size) but saves and loads only `position_embeddings`, the
  table at the preset's size: `save_own_variables` interpolates the trained table back
  only when `sum(original - trained) > epsilon` -- a signed sum, so about half of all
  fine-tunes keep the pretrained table -- and `load_own_variables` interpolates it
  forward again. A run's model.keras then lost the trained position embeddings (3 of 359
  test predictions changed in the suite; docs/keras_hub.md), and at a size other than
  the preset's the down-and-up bicubic round trip is lossy even when the sum is right.

  So the backbone is made native at its input size (`position_embedding_shape ==
  image_shape`: interpolation is then a copy), carrying the interpolated table as its
  stored one, and each such layer copies the trained table into the stored one whenever
  it is saved. `model.keras`, `save_weights` and presets then round-trip exactly
  (tests/test_keras_hub.py). Other backbones are returned unchanged.

  Args:
    backbone: A keras-hub backbone, built (weights loaded) at its input size.

  Returns:
    The backbone to use: `backbone` itself, or an equal one built natively.
  """
  layers = _interpolating_embeddings(backbone)
  if not layers:
    return backbone
  config = backbone.get_config()
  image_shape = tuple(config.get("image_shape") or ())
  stored = tuple(config.get("position_embedding_shape") or ())
  if len(image_shape) == 3 and len(stored) == 3 and image_shape[:2] != stored[:2]:
    native = type(backbone).from_config({**config, "position_embedding_shape": image_shape})
    if len(native.weights) != len(backbone.weights):
      raise KerasHubError(f"{backbone.name}: rebuilding it at {image_shape[:2]} gave "
                          f"{len(native.weights)} variables, not {len(backbone.weights)}.")
    source = {w.path: w for w in backbone.weights}
    for target in native.weights:
      name = target.path
      if name.endswith("/position_embeddings"):  # the table it runs with, not the preset's
        name = name[:-len("position_embeddings")] + "interpolated_position_embeddings"
      target.assign(source[name])
    backbone, layers = native, _interpolating_embeddings(native)
  for layer in layers:
    _save_trained_table(layer)
  return backbone


def _save_trained_table(layer) -> None:
  """Has `layer` store the table it trained (see `native_position_embeddings`).

  An attribute of this instance, not a patch of keras-hub's class: Keras saving calls
  `layer.save_own_variables`; loading needs no change (with equal shapes it copies the
  stored table into the trained one).
  """
  save_class = type(layer).save_own_variables

  def save_own_variables(store):
    layer.position_embeddings.assign(layer.interpolated_position_embeddings)
    save_class(layer, store)

  layer.save_own_variables = save_own_variables


def track_for_checkpoints(model: keras.Model, backbone: keras.Model) -> None:
  """Makes every backbone variable reachable by `tf.train.Checkpoint` from `model`.

  keras-hub's transformer encoders keep their blocks in a plain `self.layers` list
  that Keras tracks for `model.weights` but TensorFlow's object graph does not reach:
  a `tf.train.Checkpoint` of the classifier silently skipped every encoder block of
  DINOv2 (found when the run's model.keras, rebuilt from the best checkpoint,
  disagreed with the trained model). Resume, the best-weights restore and model.keras
  all read such checkpoints, so the variables are attached here as an explicit
  dependency, in the backbone's own (deterministic) order. A variable already
  reachable is still saved once: checkpoints key values by object, not by path.
  """
  import tensorflow as tf
  holder = tf.Module(name="keras_hub_variables")
  holder.variables_in_order = [v.value if hasattr(v, "value") else v for v in backbone.weights]
  # A tf.Module is no Keras layer or variable: Keras ignores it (weights are not
  # counted twice) while TensorFlow tracks it as a checkpoint dependency.
  model.keras_hub_variables = holder


def _build(spec: registry.BackboneSpec, image_size, weights: str) -> keras.Model:
  """Builder for keras-hub specs (named and `keras_hub:`)."""
  choice = weights_lib.parse_weights_arg(weights)
  user_path = None
  if choice not in ("imagenet", "none"):
    user_path = weights_lib.check_weights_path(choice)
  path = locate(spec)  # even random init needs the preset's architecture config
  model = build_from_preset(path, spec.name, image_size,
                            "imagenet" if choice == "imagenet" else "none")
  if user_path is not None:
    weights_lib.load_weights_file(model, user_path, spec.name)
  return model


for _preset in PRESETS:
  registry.register(preset_spec(_preset))
registry.register_dynamic(PREFIX, resolve)
