"""The recommender's first pass over an image folder: list it, split it, read each file once.

`tfbackbones.train --dataset=folder:PATH` prepares the folder as a TFDS dataset first: every
file is decoded once to check it, then decoded again by the input pipeline. For a first
answer that is twice the work, so the recommender reads the folder directly:

* **Split without preparing.** The folder is listed with `folder_lib.scan` and split with
  `folder_lib.assign_splits` and the image_folder builder's own `TEST_FRACTION` and
  `SPLIT_SEED`; the train/val split is then drawn by `pipeline.split_ids_from_index`, the
  rule `tfbackbones.train` applies to the prepared copy. So the sample is taken from the
  images fine-tuning will train and select on, and never from its test images.
* **One decode per file.** Each file is decoded to the picture a prepared copy would
  hold: files it stores unchanged (8-bit RGB/gray JPEG or PNG without EXIF rotation)
  as they are, the others (EXIF-rotated, CMYK, 16-bit, palette, BMP, TIFF, WebP, ...)
  through the builder's own conversion (`image_codec.prepared_pixels`).
* **Fast read** (`fast`, on by default; `--fast_read`): Pillow decodes and resizes on a
  thread pool (its C code releases the GIL), with no TensorFlow in the loop. A JPEG at
  least twice the target size on both sides is decoded by libjpeg at 1/2, 1/4 or 1/8
  scale (never below the target size), and the resize is Pillow's antialiased bilinear,
  the one torchvision's `Resize` uses. Why not TensorFlow's decode + resize, the pixels
  fine-tuning sees: in a parallel `tf.data` map on 2 cores it costs ~3 CPU ms a 500x375
  photo at 224 px and kept both cores busy only in some runs (wall time alternated
  between ~370 and ~600 img/s on an idle machine), against ~2.4 ms and ~800 img/s here.
  The pixels differ from fine-tuning's by at most one grey level (on ~15% of them, at
  full scale; DCT scaling moves them more: 2-7 levels on average on a noisy photo,
  up to 30 on single pixels), and what that does to the scores is
  measured by `experiments.benchmark --what=recommend` (docs/recommend.md).
* **Exact read** (`fast=False`, `--nofast_read`): TensorFlow decodes and resizes in a
  parallel `tf.data` map, exactly as the training pipeline does (`pipeline.decode_image`,
  `pipeline.resize_uint8`), so the pixels are the prepared copy's, bit for bit.
* **Corrupt files** are skipped and counted (one line), as preparation would skip them.

The TFDS copy is prepared only when fine-tuning starts (`--finetune_top`).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tfbackbones import cores
from tfbackbones.config import ConfigError
from tfbackbones.data import pipeline

# Routes: how a file's bytes reach the decoder.
_CONVERT, _AS_IS = 0, 1


@dataclasses.dataclass
class FolderIndex:
  """A folder's train/val split and labels, known without reading any image.

  Attributes:
    root: the folder (absolute).
    class_names: sorted class folder names (the prepared copy's ClassLabel names).
    ids: the train/val/test ids `tfbackbones.train` would draw (relative paths).
    labels: relative path -> class index, for every file of the training pool.
    fingerprint: `folder_lib.scan`'s fingerprint (also in a prepared copy's metadata).
    version: the image_folder builder's version (part of the feature cache key).
  """
  root: str
  class_names: list
  ids: pipeline.SplitIds
  labels: dict
  fingerprint: str
  version: str


def index(path: str, *, val_fraction: float, train_fraction: float,
          split_seed: int) -> FolderIndex:
  """Lists `path` and draws the split fine-tuning will draw from its prepared copy.

  Raises:
    DataNotAvailableError: `path` is not a folder.
    ConfigError: it cannot make a dataset (fewer than two classes, an empty class, an
      ambiguous layout); the message says why.
  """
  from etils import epath

  from tfbackbones.data import catalog
  from tfds_builders.image_folder import folder_lib
  from tfds_builders.image_folder.image_folder_dataset_builder import Builder
  root = epath.Path(path).expanduser().resolve()
  try:
    folder = folder_lib.scan(root)
  except FileNotFoundError as e:
    raise pipeline.DataNotAvailableError(
        f"{e}. Pass --dataset=folder:PATH with PATH a folder of class folders "
        "(PATH/<class>/<image>).") from e
  except ValueError as e:
    raise ConfigError(str(e)) from e
  splits = folder_lib.assign_splits(folder, Builder.TEST_FRACTION, Builder.SPLIT_SEED)
  pool = splits.get("train", [])
  spec = catalog.folder_spec(str(root))
  ids = pipeline.split_ids_from_index(
      spec, [rel for rel, _ in pool], [label for _, label in pool], [rel for rel, _ in pool],
      len(folder.class_names), val_fraction=val_fraction, train_fraction=train_fraction,
      split_seed=split_seed, select_on="val")
  return FolderIndex(root=str(root), class_names=list(folder.class_names), ids=ids,
                     labels=dict(pool), fingerprint=folder.fingerprint,
                     version=str(Builder.VERSION))


def _convert(path: bytes) -> bytes:
  """The bytes a prepared copy would store for this file (PIL conversion); raises if
  the file is unreadable (tf.data then drops it)."""
  from etils import epath

  from tfds_builders.image_folder import image_codec
  name = path.decode("utf-8")
  return image_codec.encode_for_tfds(epath.Path(name).read_bytes(), name).data


def read(root: str, rel_paths: list, size, fast: bool,
         batch_size: int = 64) -> tuple[np.ndarray, list]:
  """Reads and resizes `rel_paths` under `root`, each file once, in parallel.

  The images land in one preallocated array as they are decoded, so nothing is copied or
  stacked after the last file (at 224 px that copy alone was ~10% of a first pass over
  800 photos).

  Args:
    root: the folder.
    rel_paths: files to read (relative paths, the examples' ids).
    size: (height, width) to resize to.
    fast: Pillow on threads (the module docstring's fast read), else TensorFlow's exact
      pixels.
    batch_size: images per tf.data batch (exact read).

  Returns:
    ((len(rel_paths), height, width, 3) uint8 in `rel_paths` order, [relative paths that
    could not be read]; their rows are undefined).
  """
  full = [os.path.join(root, rel) for rel in rel_paths]
  images = np.empty((len(full), *size, 3), np.uint8)
  seen = (_read_fast if fast else _read_exact)(full, tuple(size), images, batch_size)
  unreadable = [rel for rel, ok in zip(rel_paths, seen, strict=True) if not ok]
  return images, unreadable


def _fast_pixels(path: str, size: tuple) -> np.ndarray | None:
  """One file -> (height, width, 3) uint8 with Pillow, or None if it cannot be read."""
  from PIL import Image

  from tfds_builders.image_folder import image_codec
  height, width = size
  try:
    with open(path, "rb") as f:
      data = f.read()
    image = image_codec.prepared_pixels(data, path, jpeg_min_size=(width, height))
  except (OSError, image_codec.UnreadableImageError):
    return None
  # Gray stays one channel through the resize (a third of the work); RGB after it is the
  # same picture, as the resize treats channels apart.
  image = image.resize((width, height), Image.Resampling.BILINEAR)
  return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _read_fast(full: list, size: tuple, images: np.ndarray, batch_size: int) -> np.ndarray:
  """Fills `images` with Pillow on a thread pool; returns which rows were read."""
  del batch_size  # whole files are the unit of work here
  from tfds_builders.image_folder import image_codec
  seen = np.zeros(len(full), bool)
  pixels = image_codec.map_ordered(lambda path: _fast_pixels(path, size), full,
                                   num_threads=_threads())
  for i, image in enumerate(pixels):
    if image is not None:
      images[i] = image
      seen[i] = True
  return seen


def _threads() -> int:
  """The cores this process may run on (what a DataLoader's `num_workers` would be)."""
  return cores.usable()


def _read_exact(full: list, size: tuple, images: np.ndarray, batch_size: int) -> np.ndarray:
  """Fills `images` through a parallel `tf.data` map with the training pipeline's decode
  and resize; returns which rows were read."""
  import tensorflow as tf

  from tfds_builders.image_folder import image_codec
  routes = [_AS_IS if image_codec.stored_as_is(p) else _CONVERT for p in full]

  # Plain TF ops with explicit tf.cond: AutoGraph has nothing to convert, and converting
  # it cost ~0.8 s on a process's first read (measured at 224 px), more than reading
  # 300 photos.
  @tf.autograph.experimental.do_not_convert
  def load(i, path, route):
    encoded = tf.cond(
        route == _AS_IS, lambda: tf.io.read_file(path),
        lambda: tf.reshape(tf.numpy_function(_convert, [path], tf.string, stateful=False),
                           []))
    return i, pipeline.resize_uint8(pipeline.decode_image(encoded), size)

  ds = tf.data.Dataset.from_tensor_slices(
      (np.arange(len(full), dtype=np.int64), full, np.asarray(routes, np.int32)))
  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  ds = ds.ignore_errors().batch(batch_size).prefetch(1)
  seen = np.zeros(len(full), bool)
  for indices, batch in ds.as_numpy_iterator():
    images[indices] = batch
    seen[indices] = True
  return seen
