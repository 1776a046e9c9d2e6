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

from tfbackbones.backbones import cnn_ports  # noqa: F401
from tfbackbones.backbones import efficientnet_lite  # noqa: F401
from tfbackbones.backbones import hub  # registers hub specs and `hub:`
from tfbackbones.backbones import keras_apps  # registers keras.applications
from tfbackbones.backbones import keras_hub_presets  # registers presets and `keras_hub:`
from tfbackbones.backbones import savedmodel  # registers `savedmodel:`
from tfbackbones.backbones import transformer_ports  # noqa: F401
from tfbackbones.backbones.preprocessing import PREPROCESSING_KINDS
from tfbackbones.backbones.preprocessing import preprocess_images
from tfbackbones.backbones.registry import BackboneSpec
from tfbackbones.backbones.registry import get
from tfbackbones.backbones.registry import names
from tfbackbones.backbones.registry import register
from tfbackbones.backbones.registry import UnknownBackboneError
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
]
