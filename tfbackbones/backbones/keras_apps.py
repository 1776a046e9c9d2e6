"""keras.applications backbones: the table of facts and the builder.

Facts, per backbone, and where they come from:
  * weights_file / weights_url / weights_hash: exactly what the installed
    keras.applications constructor passes to `get_file` for
    include_top=False (tests intercept `get_file` to keep this honest).
  * params_m: the full ImageNet classifier's parameter count (docs/protocol.md
    where it lists the model, else the Keras documentation table, which
    matches `count_params()` of include_top=True models).
  * imagenet_top1: top-1 of the Keras weights that are loaded, from the Keras
    applications documentation (mobilenet_v3.py docstring for MobileNetV3).
    docs/protocol.md's numbers are torchvision weights and differ.
  * feature_dim: channels of the include_top=False, pooling=None output.
  * default_size: the native ImageNet resolution.

Two Keras traps the builder avoids: EfficientNetV2 looks up its block
configuration by model name and picks its built-in normalisation from the
name (B0-B3: ImageNet mean/std; S/M/L: [-1, 1]), and ConvNeXt derives layer
names from it, so the constructors must keep their default `name`. The
builder therefore builds with the default name and re-wraps the same layers
in a functional model named after the backbone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib

if TYPE_CHECKING:
  import keras

_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# name: (constructor, extra kwargs)
_CONSTRUCTORS: dict[str, tuple[str, dict[str, Any]]] = {}


def _add(name: str, constructor: str, *, default_size: int,
         preprocessing: str, params_m: float, imagenet_top1: float,
         feature_dim: int, weights_file: str, url_dir: str,
         weights_hash: str, description: str,
         extra: dict[str, Any] | None = None) -> None:
  """Registers one keras.applications backbone."""
  _CONSTRUCTORS[name] = (constructor, dict(extra or {}))
  registry.register(registry.BackboneSpec(
      name=name,
      source="keras.applications",
      default_size=default_size,
      preprocessing=preprocessing,
      params_m=params_m,
      imagenet_top1=imagenet_top1,
      feature_dim=feature_dim,
      weights_file=weights_file,
      description=description,
      weights_url=_URL + url_dir + "/" + weights_file,
      weights_hash=weights_hash,
      builder=build_keras_app,
  ))


def keras_constructor(name: str) -> Callable[..., keras.Model]:
  """Returns the keras.applications constructor for a registered backbone.

  The returned callable has the backbone's fixed options bound (e.g.
  `include_preprocessing=True`), and accepts the usual constructor keywords
  (`include_top`, `weights`, `input_shape`, `pooling`).

  Args:
    name: A keras.applications backbone name, e.g. "efficientnetv2_s".

  Returns:
    A callable building the raw Keras model.
  """
  import keras

  constructor, extra = _CONSTRUCTORS[name]
  return functools.partial(getattr(keras.applications, constructor), **extra)


def build_keras_app(spec: registry.BackboneSpec, image_size: tuple,
                    weights: str) -> keras.Model:
  """Builds a keras.applications backbone without its classifier.

  Weights are located before the (slow) build so that a missing file fails
  in milliseconds. ImageNet weights are loaded exactly as the Keras
  constructor would (legacy .h5 into the default-named model), but from the
  cache directory computed at call time (see `weights.keras_cache_dir`).

  Args:
    spec: The backbone spec.
    image_size: (height, width), each >= 32; non-square is fine (the
      ImageNet weights are convolutional and load at any size).
    weights: "imagenet", "none" or a path to a weights file.

  Returns:
    Functional model named `spec.name`: (B, H, W, 3) -> (B, h, w, C).
  """
  import keras

  choice = weights_lib.parse_weights_arg(weights)
  imagenet_path = None
  user_path = None
  if choice == "imagenet":
    imagenet_path = weights_lib.fetch_imagenet_weights(spec)
  elif choice != "none":
    user_path = weights_lib.check_weights_path(choice)

  base = keras_constructor(spec.name)(
      include_top=False,
      weights=None,
      input_shape=(*image_size, 3),
      pooling=None,
  )
  if imagenet_path is not None:
    weights_lib.load_weights_file(base, imagenet_path, spec.name)
  model = keras.Model(base.inputs, base.outputs, name=spec.name)
  if user_path is not None:
    weights_lib.load_weights_file(model, user_path, spec.name)
  return model


_ENV2 = "EfficientNetV2 (Tan & Le 2021), ImageNet-1k"
_EV2 = dict(include_preprocessing=True)

_add("efficientnetv2_b0", "EfficientNetV2B0", default_size=224,
     preprocessing="raw255", params_m=7.2, imagenet_top1=78.7,
     feature_dim=1280, weights_file="efficientnetv2-b0_notop.h5",
     url_dir="efficientnet_v2",
     weights_hash="893217f2bb855e2983157299931e43ff",
     description=f"{_ENV2} B0", extra=_EV2)
_add("efficientnetv2_b1", "EfficientNetV2B1", default_size=240,
     preprocessing="raw255", params_m=8.2, imagenet_top1=79.8,
     feature_dim=1280, weights_file="efficientnetv2-b1_notop.h5",
     url_dir="efficientnet_v2",
     weights_hash="0e80663031ca32d657f9caa404b6ec37",
     description=f"{_ENV2} B1", extra=_EV2)
_add("efficientnetv2_b2", "EfficientNetV2B2", default_size=260,
     preprocessing="raw255", params_m=10.2, imagenet_top1=80.5,
     feature_dim=1408, weights_file="efficientnetv2-b2_notop.h5",
     url_dir="efficientnet_v2",
     weights_hash="1dfe2e7a5d45b6632553a8961ea609eb",
     description=f"{_ENV2} B2", extra=_EV2)
_add("efficientnetv2_b3", "EfficientNetV2B3", default_size=300,
     preprocessing="raw255", params_m=14.5, imagenet_top1=82.0,
     feature_dim=1536, weights_file="efficientnetv2-b3_notop.h5",
     url_dir="efficientnet_v2",
     weights_hash="f6abf7b5849ac99a89b50dd3fd532856",
     description=f"{_ENV2} B3", extra=_EV2)
_add("efficientnetv2_s", "EfficientNetV2S", default_size=384,
     preprocessing="raw255", params_m=21.5, imagenet_top1=83.9,
     feature_dim=1280, weights_file="efficientnetv2-s_notop.h5",
     url_dir="efficientnet_v2",
     weights_hash="af0682fb74e8c54910f2d4393339c070",
     description=f"{_ENV2} S (paper backbone)", extra=_EV2)
_add("efficientnetv2_m", "EfficientNetV2M", default_size=480,
     preprocessing="raw255", params_m=54.4, imagenet_top1=85.3,
     feature_dim=1280, weights_file="efficientnetv2-m_notop.h5",
     url_dir="efficientnet_v2",
     weights_hash="1b8dc055df72dde80d614482840fe342",
     description=f"{_ENV2} M", extra=_EV2)
_add("efficientnetv2_l", "EfficientNetV2L", default_size=480,
     preprocessing="raw255", params_m=119.0, imagenet_top1=85.7,
     feature_dim=1280, weights_file="efficientnetv2-l_notop.h5",
     url_dir="efficientnet_v2",
     weights_hash="b0b66b5c863aef5b46e8608fe1711615",
     description=f"{_ENV2} L", extra=_EV2)

_CNX = dict(include_preprocessing=True)
_add("convnext_tiny", "ConvNeXtTiny", default_size=224,
     preprocessing="raw255", params_m=28.6, imagenet_top1=81.3,
     feature_dim=768, weights_file="convnext_tiny_notop.h5",
     url_dir="convnext",
     weights_hash=("d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85a"
                   "b9e49ef1"),
     description="ConvNeXt-T (Liu et al. 2022), ImageNet-1k (paper backbone)",
     extra=_CNX)
_add("convnext_small", "ConvNeXtSmall", default_size=224,
     preprocessing="raw255", params_m=50.2, imagenet_top1=82.3,
     feature_dim=768, weights_file="convnext_small_notop.h5",
     url_dir="convnext",
     weights_hash=("6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e208"
                   "43da6eab"),
     description="ConvNeXt-S (Liu et al. 2022), ImageNet-1k", extra=_CNX)
_add("convnext_base", "ConvNeXtBase", default_size=224,
     preprocessing="raw255", params_m=88.6, imagenet_top1=85.3,
     feature_dim=1024, weights_file="convnext_base_notop.h5",
     url_dir="convnext",
     weights_hash=("40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb"
                   "24cb7c45"),
     description="ConvNeXt-B (Liu et al. 2022), ImageNet-21k -> 1k",
     extra=_CNX)

_MBV3 = dict(include_preprocessing=True)
_add("mobilenet_v3_small", "MobileNetV3Small", default_size=224,
     preprocessing="raw255", params_m=2.5, imagenet_top1=68.1,
     feature_dim=576,
     weights_file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
     url_dir="mobilenet_v3",
     weights_hash="d3e8ec802a04aa4fc771ee12a9a9b836",
     description="MobileNetV3-Small 1.0 (Howard et al. 2019), ImageNet-1k",
     extra=_MBV3)
_add("mobilenet_v3_large", "MobileNetV3Large", default_size=224,
     preprocessing="raw255", params_m=5.5, imagenet_top1=75.6,
     feature_dim=960,
     weights_file="weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
     url_dir="mobilenet_v3",
     weights_hash="07fb09a5933dd0c8eaafa16978110389",
     description=("MobileNetV3-Large 1.0 (Howard et al. 2019), ImageNet-1k "
                  "(paper backbone)"),
     extra=_MBV3)

_RN = "ResNet (He et al. 2016), Caffe-converted ImageNet-1k weights"
_add("resnet50", "ResNet50", default_size=224, preprocessing="caffe",
     params_m=25.6, imagenet_top1=74.9, feature_dim=2048,
     weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
     url_dir="resnet", weights_hash="4d473c1dd8becc155b73f8504c6f6626",
     description=f"{_RN}, 50 layers (paper backbone)")
_add("resnet101", "ResNet101", default_size=224, preprocessing="caffe",
     params_m=44.7, imagenet_top1=76.4, feature_dim=2048,
     weights_file="resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
     url_dir="resnet", weights_hash="88cf7a10940856eca736dc7b7e228a21",
     description=f"{_RN}, 101 layers")
_add("resnet152", "ResNet152", default_size=224, preprocessing="caffe",
     params_m=60.4, imagenet_top1=76.6, feature_dim=2048,
     weights_file="resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
     url_dir="resnet", weights_hash="ee4c566cf9a93f14d82f913c2dc6dd0c",
     description=f"{_RN}, 152 layers")

_RN2 = "ResNetV2 pre-activation (He et al. 2016), ImageNet-1k"
_add("resnet50_v2", "ResNet50V2", default_size=224, preprocessing="tf",
     params_m=25.6, imagenet_top1=76.0, feature_dim=2048,
     weights_file="resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
     url_dir="resnet", weights_hash="fac2f116257151a9d068a22e544a4917",
     description=f"{_RN2}, 50 layers")
_add("resnet101_v2", "ResNet101V2", default_size=224, preprocessing="tf",
     params_m=44.7, imagenet_top1=77.2, feature_dim=2048,
     weights_file="resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
     url_dir="resnet", weights_hash="c0ed64b8031c3730f411d2eb4eea35b5",
     description=f"{_RN2}, 101 layers")
_add("resnet152_v2", "ResNet152V2", default_size=224, preprocessing="tf",
     params_m=60.4, imagenet_top1=78.0, feature_dim=2048,
     weights_file="resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
     url_dir="resnet", weights_hash="ed17cf2e0169df9d443503ef94b23b33",
     description=f"{_RN2}, 152 layers")

_DN = "DenseNet (Huang et al. 2017), ImageNet-1k"
_add("densenet121", "DenseNet121", default_size=224, preprocessing="torch",
     params_m=8.1, imagenet_top1=75.0, feature_dim=1024,
     weights_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
     url_dir="densenet", weights_hash="30ee3e1110167f948a6b9946edeeb738",
     description=f"{_DN}, 121 layers (paper used DenseNet-161: not in Keras)")
_add("densenet169", "DenseNet169", default_size=224, preprocessing="torch",
     params_m=14.3, imagenet_top1=76.2, feature_dim=1664,
     weights_file="densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
     url_dir="densenet", weights_hash="b8c4d4c20dd625c148057b9ff1c1176b",
     description=f"{_DN}, 169 layers")
_add("densenet201", "DenseNet201", default_size=224, preprocessing="torch",
     params_m=20.2, imagenet_top1=77.3, feature_dim=1920,
     weights_file="densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
     url_dir="densenet", weights_hash="c13680b51ded0fb44dff2d8f86ac8bb1",
     description=f"{_DN}, 201 layers")
