"""Backbones: which ImageNet models exist, how to build and feed them.

Public API:
  get(name) -> BackboneSpec; names(); register(spec); BackboneSpec.build(
  image_size, weights) -> keras.Model mapping preprocessed images to
  features; preprocess_images(images, spec.preprocessing);
  WeightsNotAvailableError when pretrained weights cannot be had offline.

Importing this package registers the keras.applications, TF Hub and keras-hub
specs and the `savedmodel:` / `hub:` / `keras_hub:` name resolvers. It does not
import TensorFlow; building a model or preprocessing does.
"""

from __future__ import annotations

# Imported for what importing does: each module registers its backbones (and `hub:`,
# `keras_hub:`, `savedmodel:` name forms) with the registry.
from tfbackbones.backbones import (  # noqa: F401
    efficientnet_lite,
    hub,
    keras_apps,
    keras_hub_presets,
    savedmodel,
)
from tfbackbones.backbones.ports import (  # noqa: F401
    convnext,
    densenet,
    efficientnetv2,
    mobilenetv3,
    regnet,
    resnet,
    shufflenet,
    swin,
    vit,
    wavemix,
)
from tfbackbones.backbones.preprocessing import PREPROCESSING_KINDS, preprocess_images
from tfbackbones.backbones.registry import BackboneSpec, UnknownBackboneError, get, names, register
from tfbackbones.backbones.weights import WeightsNotAvailableError

__all__ = [
    "BackboneSpec",
    "PREPROCESSING_KINDS",
    "UnknownBackboneError",
    "WeightsNotAvailableError",
    "get",
    "names",
    "preprocess_images",
    "register",
    "register_layers",
]


def register_layers() -> None:
  """Registers the ports' custom layers with Keras, as loading a saved model needs.

  Importing this package does not: the ports define their layers when a model is first
  built (`ports.blocks.layer_classes`), so that listing backbones does not import
  Keras. A fresh process loading a ShuffleNet, WaveMix, Swin or ViT `model.keras`
  failed with "Could not locate class".
  """
  for port in (shufflenet, swin, vit, wavemix):
    port.layer_classes()
