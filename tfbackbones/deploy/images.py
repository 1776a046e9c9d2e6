"""Image files -> uint8 RGB arrays at a model's input size, as training saw them, in NumPy.

Why not TensorFlow: `predict` must run LiteRT and ONNX models on machines without it.
Why not PIL's resize: the training pipeline (`tfbackbones/data/pipeline.py`,
`resize_uint8`) resizes with `tf.image.resize(..., "bilinear", antialias=True)`, TF's
ScaleAndTranslate with a triangle kernel widened by the downscale factor. PIL's bilinear
is close but not equal; a model shipped to users should see the pixels it was trained on.
`resize` below is that kernel, separable, in float32; tests check it against TF (the
rounded uint8 results differ by at most 1 grey level, on a few pixels).

Decoding gives the picture a prepared copy of the file holds, the one training saw: the
image_folder builder's own rule (`image_codec.prepared_pixels`: EXIF-rotated photos turned
upright, 16-bit images scaled by 255/65535, CMYK and palettes to RGB, truncated files
refused). Pillow then expands grayscale to RGB as `tf.io.decode_image(channels=3)` does.
JPEG: both use libjpeg's accurate integer DCT (the pipeline asks TF for
`INTEGER_ACCURATE`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageError(ValueError):
  """An input path is missing, holds no images, or is not a readable image."""


def find_images(paths: Sequence[str]) -> list[tuple[str, bool]]:
  """Expands files and folders (recursively, sorted) into image files.

  Returns:
    (path, named) per image: `named` is True for a file given itself, False for one
    found inside a folder.

  Raises:
    ImageError: a path does not exist, or a folder holds no image files.
  """
  found = []
  for path in paths:
    if os.path.isdir(path):
      inside = sorted(
          os.path.join(root, name) for root, _, names in os.walk(path) for name in names
          if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
      if not inside:
        raise ImageError(f"folder {path} holds no image files "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
      found.extend((p, False) for p in inside)
    elif os.path.isfile(path):
      found.append((path, True))
    else:
      raise ImageError(f"{path}: no such file or folder")
  if not found:
    raise ImageError("no images given: pass image files or folders")
  return found


def _image_codec():
  """tfds_builders' `image_codec` (NumPy and Pillow only), loaded from its file.

  `import tfds_builders.image_folder.image_codec` would first run the package's
  `__init__`, which registers every builder with TFDS and so imports TensorFlow; predict
  must run LiteRT and ONNX models without it.
  """
  name = "tfbackbones.deploy._image_codec"
  if name not in sys.modules:
    package = importlib.util.find_spec("tfds_builders")  # locates, does not import
    path = os.path.join(os.path.dirname(package.origin), "image_folder", "image_codec.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
  return sys.modules[name]


def read_rgb(path: str) -> np.ndarray:
  """Decodes an image file to (H, W, 3) uint8 RGB: the picture training saw of it.

  Raises:
    ImageError: the file is not an image, or is corrupt or truncated (as preparation
      decides).
  """
  codec = _image_codec()
  try:
    with open(path, "rb") as f:
      image = codec.prepared_pixels(f.read(), path)
  except (OSError, codec.UnreadableImageError) as e:
    why = str(e).removeprefix(f"{path}: ")  # the codec names the file too
    raise ImageError(f"{path}: not a readable image ({why})") from e
  return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)


def _weights(in_size: int, out_size: int) -> np.ndarray:
  """(out_size, in_size) float32 matrix of TF's antialiased triangle resize along one axis.

  Follows `ComputeSpansCore` in tensorflow/core/kernels/image/scale_and_translate_op.cc
  (translation 0, kernel radius 1): output pixel x samples at (x + 0.5) / scale, the
  kernel is widened by 1/scale when shrinking, and each row is normalised to sum 1.
  """
  scale = out_size / in_size
  inv_scale = np.float32(1.0 / scale)
  kernel_scale = max(inv_scale, np.float32(1.0))
  matrix = np.zeros((out_size, in_size), np.float32)
  for x in range(out_size):
    sample = np.float32(x + 0.5) * inv_scale
    if sample < 0 or sample > in_size:
      continue
    start = int(np.ceil(sample - kernel_scale - 0.5))
    end = int(np.floor(sample + kernel_scale - 0.5))
    start, end = min(max(start, 0), in_size - 1), min(max(end, 0), in_size - 1) + 1
    source = np.arange(start, end, dtype=np.float32)
    weight = np.maximum(0.0, 1.0 - np.abs((source + 0.5 - sample) / kernel_scale))
    total = weight.sum(dtype=np.float32)
    if abs(total) >= 1000 * np.finfo(np.float32).tiny:
      weight = weight / total
    matrix[x, start:end] = weight
  return matrix


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """(H, W, 3) uint8 -> (height, width, 3) uint8, as `pipeline.resize_uint8` computes it."""
  if image.shape[:2] == (height, width):
    return image.astype(np.uint8, copy=False)
  x = image.astype(np.float32)
  x = np.einsum("oh,hwc->owc", _weights(image.shape[0], height), x)
  x = np.einsum("pw,owc->opc", _weights(image.shape[1], width), x)
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def load(paths: Iterable[str], height: int, width: int) -> np.ndarray:
  """Image files -> (N, height, width, 3) uint8, ready for any artifact's input.

  Each file is resized as soon as it is decoded: a 12 MP photo is 36 MB decoded, and
  holding every one at full size took gigabytes for a folder of phone photos.
  """
  return load_found([(p, True) for p in paths], height, width)[0]


def load_found(found: Sequence[tuple[str, bool]], height: int,
               width: int) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
  """`find_images`' images -> (batch, their paths, [(skipped path, why)]).

  A file named itself that cannot be read is an error: the user asked for it. One found
  inside a folder is skipped and reported instead, as dataset preparation and the
  recommender skip unreadable files: one stray `notes.jpg` must not cost a folder's
  predictions.

  Raises:
    ImageError: a named file is unreadable, or no image at all could be read.
  """
  images, kept, skipped = [], [], []
  for path, named in found:
    try:
      images.append(resize(read_rgb(path), height, width))
    except ImageError as e:
      if named:
        raise
      skipped.append((path, str(e)))
      continue
    kept.append(path)
  if not images:
    raise ImageError(f"none of the {len(found)} images could be read"
                     + (f" (e.g. {skipped[0][1]})" if skipped else ""))
  return np.stack(images), kept, skipped
