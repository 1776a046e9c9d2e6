"""Input normalisation that each backbone family expects, as plain TF ops.

Every backbone is fed images that were normalised by `preprocess_images` with
the backbone's `BackboneSpec.preprocessing` kind. The kinds reproduce, op for
op, what each keras.applications family's own `preprocess_input` does (see
keras/src/applications/imagenet_utils.py), so pretrained weights see the input
statistics they were trained with. The function uses TensorFlow ops only (no
NumPy, no py_function), so it runs eagerly, inside `tf.function` and inside
`tf.data.Dataset.map` on single images (H, W, 3) or batches (B, H, W, 3).

TensorFlow is imported lazily so that importing the registry (for example to
print the backbone table) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
  import tensorflow as tf

# Kinds, with the families that use them:
#   raw255: identity; the model normalises internally (EfficientNetV2,
#           ConvNeXt, MobileNetV3 built with include_preprocessing=True).
#   caffe:  RGB->BGR, subtract the ImageNet BGR mean, no scaling (ResNet v1).
#   torch:  scale to [0, 1], then ImageNet mean/std per channel (DenseNet,
#           ports of PyTorch models such as Swin on TF Hub).
#   tf:     scale to [-1, 1] (ResNetV2, ViT feature vectors on TF Hub).
#   unit:   scale to [0, 1] (the TF Hub image convention, e.g. BiT).
#   lite:   (x - 127) / 128 (EfficientNet-Lite: the TF builder's MEAN_RGB 127 and
#           STDDEV_RGB 128, chosen for post-training quantization).
PREPROCESSING_KINDS = ("raw255", "caffe", "torch", "tf", "unit", "lite")

# Constants as written in keras/src/applications/imagenet_utils.py.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
_TORCH_STD_RGB = (0.229, 0.224, 0.225)


def check_kind(kind: str) -> str:
  """Validates a preprocessing kind.

  Args:
    kind: Name of a preprocessing kind.

  Returns:
    The same kind, so the call can be used inline.

  Raises:
    ValueError: If `kind` is not one of `PREPROCESSING_KINDS`.
  """
  if kind not in PREPROCESSING_KINDS:
    raise ValueError(
        f"Unknown preprocessing kind {kind!r}; expected one of "
        f"{', '.join(PREPROCESSING_KINDS)}.")
  return kind


def preprocess_images(images: tf.Tensor, kind: str) -> tf.Tensor:
  """Normalises RGB images in [0, 255] the way a backbone family expects.

  Args:
    images: Image or batch of images, channels last, RGB, values in [0, 255].
      Any real dtype (uint8 included); it is cast to float32.
    kind: One of `PREPROCESSING_KINDS`, normally `spec.preprocessing`.

  Returns:
    A float32 tensor of the same shape, ready for `spec.build(...)` models.

  Raises:
    ValueError: If `kind` is unknown.
  """
  import tensorflow as tf

  check_kind(kind)
  x = tf.cast(images, tf.float32)
  if kind == "raw255":
    return x
  if kind == "unit":
    return x / 255.0
  if kind == "lite":
    return (x - 127.0) / 128.0
  if kind == "tf":
    # keras: x /= 127.5; x -= 1.0
    return x / 127.5 - 1.0
  if kind == "torch":
    # keras: x /= 255; x += -mean; x /= std
    mean = tf.constant(_TORCH_MEAN_RGB, tf.float32)
    std = tf.constant(_TORCH_STD_RGB, tf.float32)
    return (x / 255.0 - mean) / std
  # caffe. keras: reorder channels to BGR, then x += -mean_bgr.
  mean = tf.constant(_CAFFE_MEAN_BGR, tf.float32)
  return x[..., ::-1] - mean
