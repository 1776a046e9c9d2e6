"""TF Hub / Kaggle Models backbones (`hub:` names and a few named ones).

A hub handle is resolved to a local SavedModel directory, then built like a
`savedmodel:` backbone (TFSMLayer, see savedmodel.py). Resolution order, so
that offline machines fail in milliseconds:

1. a handle that is a local directory is used as is;
2. the TF Hub cache (`$TFHUB_CACHE_DIR/<sha1(handle)>`, the layout
   `tensorflow_hub` writes) is used if populated;
3. with TFBACKBONES_OFFLINE=1, `WeightsNotAvailableError` at once;
4. otherwise `tensorflow_hub.resolve()` (imported only here) downloads into
   that cache, with a socket timeout; any failure becomes
   `WeightsNotAvailableError` telling the user how to supply the model.

Name syntax: `hub:<url-or-handle>[?preprocessing=unit&endpoint=...&output=...
&size=...]`. A handle without a scheme (`owner/model/framework/variation/
version`) is read as a Kaggle Models handle.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tfbackbones.backbones import preprocessing as preprocessing_lib
from tfbackbones.backbones import registry, savedmodel
from tfbackbones.backbones import weights as weights_lib

if TYPE_CHECKING:
  import keras

_KAGGLE_MODELS = "https://www.kaggle.com/models/"


def normalize_handle(handle: str) -> str:
  """Returns the handle as tensorflow_hub expects it.

  Args:
    handle: URL, local path, gs:// path, or a bare Kaggle Models handle.

  Returns:
    The handle, with bare Kaggle handles turned into URLs.
  """
  handle = handle.strip()
  if handle.startswith(("http://", "https://", "gs://", "/", "~", ".")):
    return handle
  if os.path.isdir(handle):
    return handle
  return _KAGGLE_MODELS + handle


def _unavailable_message(spec: registry.BackboneSpec, reason: str) -> str:
  """Explains how to provide a hub model by hand."""
  hint = f"?preprocessing={spec.preprocessing}&size={spec.default_size}"
  return (
      f"TF Hub model for backbone {spec.name!r} is not available "
      f"({reason}).\n  handle: {spec.handle}\n"
      "  looked in the TF Hub cache: "
      f"{weights_lib.tfhub_module_dir(spec.handle)}\n"
      "Either download the model on a machine with internet (the "
      "SavedModel archive of the handle; extract it) and use the backbone "
      f"name 'savedmodel:/path/to/extracted_dir{hint}', or set "
      "TFHUB_CACHE_DIR to a cache that tensorflow_hub populated (its "
      "sub-directory is the sha1 of the handle).")


def resolve_handle(spec: registry.BackboneSpec) -> str:
  """Returns a local SavedModel directory for a hub spec.

  Args:
    spec: A tfhub spec.

  Returns:
    Local directory.

  Raises:
    WeightsNotAvailableError: If the model is not cached and cannot be
      downloaded (or TFBACKBONES_OFFLINE=1).
  """
  handle = spec.handle
  local = os.path.expanduser(handle)
  if os.path.isdir(local):
    return local
  cached = weights_lib.tfhub_cached(handle)
  if cached:
    return cached
  if weights_lib.offline():
    raise weights_lib.WeightsNotAvailableError(_unavailable_message(
        spec, f"not cached and {weights_lib.OFFLINE_ENV}=1 forbids "
        "downloading"))
  try:
    import tensorflow_hub as hub
  except ImportError as e:
    # tensorflow-hub 0.16.1 imports pkg_resources, which setuptools >= 81
    # no longer ships.
    raise weights_lib.WeightsNotAvailableError(_unavailable_message(
        spec, f"tensorflow_hub cannot be imported to download it: {e}; "
        "install tensorflow-hub, and 'setuptools<81' if pkg_resources is "
        "missing")) from e
  try:
    with weights_lib.socket_timeout(weights_lib.DOWNLOAD_SOCKET_TIMEOUT_S):
      return hub.resolve(handle)
  except Exception as e:
    raise weights_lib.WeightsNotAvailableError(_unavailable_message(
        spec, f"download failed: {type(e).__name__}: {e}")) from e


def _build(spec: registry.BackboneSpec, image_size: int,
           weights: str) -> keras.Model:
  """Builder for tfhub specs: resolve, then build as a SavedModel."""
  savedmodel.reject_no_weights(spec, weights)
  choice = weights_lib.parse_weights_arg(weights)
  if choice != "imagenet":
    weights_lib.check_weights_path(choice)
  path = resolve_handle(spec)
  return savedmodel.build_from_directory(spec, path, image_size, weights)


def hub_spec(rest: str) -> registry.BackboneSpec:
  """Resolves `hub:<handle>[?options]` into a spec (no network access).

  Args:
    rest: The name without the `hub:` prefix.

  Returns:
    An unregistered tfhub spec named `hub:<rest>`.
  """
  location, options = savedmodel.split_options(rest)
  if not location.strip():
    raise savedmodel.SavedModelError("Empty handle in 'hub:'.")
  kind = preprocessing_lib.check_kind(
      options.get("preprocessing", savedmodel.DEFAULT_PREPROCESSING))
  size = savedmodel.parse_size(options, "hub:" + rest)
  return registry.BackboneSpec(
      name="hub:" + rest,
      source="tfhub",
      default_size=size or savedmodel.DEFAULT_SIZE,
      preprocessing=kind,
      params_m=None,
      imagenet_top1=None,
      feature_dim=None,
      weights_file=None,
      description=f"TF Hub model {location}",
      handle=normalize_handle(location),
      endpoint=options.get("endpoint"),
      output_key=options.get("output"),
      builder=_build,
  )


def _add(name: str, handle: str, *, default_size: int, preprocessing: str,
         params_m: float | None, imagenet_top1: float | None,
         feature_dim: int, fixed_size: bool, description: str) -> None:
  """Registers one well-known hub feature-vector model."""
  registry.register(registry.BackboneSpec(
      name=name,
      source="tfhub",
      default_size=default_size,
      preprocessing=preprocessing,
      params_m=params_m,
      imagenet_top1=imagenet_top1,
      feature_dim=feature_dim,
      weights_file=None,
      description=description,
      handle=handle,
      fixed_size=fixed_size,
      builder=_build,
  ))


# Feature-vector SavedModels (TF2, fine-tunable). tfhub.dev handles redirect
# to Kaggle Models; tensorflow_hub caches them under sha1(handle).
_add("vit_b16", "https://tfhub.dev/sayakpaul/vit_b16_fe/1",
     default_size=224, preprocessing="tf", params_m=86.0, imagenet_top1=81.1,
     feature_dim=768, fixed_size=True,
     description=("ViT-B/16 (Dosovitskiy et al. 2021) feature vector, "
                  "ImageNet-21k -> 1k, inputs in [-1, 1], 224 px only"))
_add("swin_tiny",
     "https://tfhub.dev/sayakpaul/swin_tiny_patch4_window7_224_fe/1",
     default_size=224, preprocessing="torch", params_m=28.3,
     imagenet_top1=81.47, feature_dim=768, fixed_size=True,
     description=("Swin-T (Liu et al. 2021) feature vector, ImageNet-1k, "
                  "ImageNet mean/std inputs, 224 px only (paper backbone)"))
_add("bit_m_r50x1", "https://tfhub.dev/google/bit/m-r50x1/1",
     default_size=224, preprocessing="unit", params_m=25.5,
     imagenet_top1=None, feature_dim=2048, fixed_size=False,
     description=("BiT-M R50x1 (Kolesnikov et al. 2020) feature vector, "
                  "ImageNet-21k (no 1k fine-tune), inputs in [0, 1]"))

registry.register_dynamic("hub:", hub_spec)
