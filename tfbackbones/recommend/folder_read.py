"""The recommender's first pass over an image folder: list it, split it, read each file once.

`tfbackbones.train --dataset=folder:PATH` prepares the folder as a TFDS dataset first: every
file is decoded once to check it, then decoded again by the input pipeline. For a first
answer that is twice the work, so the recommender reads the folder directly:

* **Split without preparing.** The folder is listed with `folder_lib.scan` and split with
  `folder_lib.assign_splits` and the image_folder builder's own `TEST_FRACTION` and
  `SPLIT_SEED`; the train/val split is then drawn by `pipeline.split_ids_from_index`, the
  rule `tfbackbones.train` applies to the prepared copy. So the sample is taken from the
  images fine-tuning will train and select on, and never from its test images.
* **One decode per file, in parallel `tf.data`.** Files whose bytes a prepared copy stores
  unchanged (8-bit RGB/gray JPEG or PNG without EXIF rotation, `image_codec.stored_as_is`)
  are read and decoded by TensorFlow; the others (EXIF-rotated, CMYK, 16-bit, palette,
  BMP, TIFF, WebP, ...) go through `image_codec.encode_for_tfds`, the builder's own
  conversion, so their pixels are the prepared copy's too.
* **DCT scaling** (`dct_scaling`, on by default): a JPEG at least twice the target size in
  both sides is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (`decode_jpeg(ratio=)`, never
  below the target size), then resized as usual. It skips most of the inverse DCT and the
  resize's work; the pixels differ slightly from a full decode + resize (docs/recommend.md
  has what that did to the scores).
* **Corrupt files** are skipped and counted (one line), as preparation would skip them.

The TFDS copy is prepared only when fine-tuning starts (`--finetune_top`).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tfbackbones.config import ConfigError
from tfbackbones.data import pipeline

# Routes: how a file's bytes reach the decoder.
_CONVERT, _AS_IS = 0, 1
_DCT_RATIOS = (8, 4, 2)


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


def _decode_scaled(encoded, size):
  """A JPEG decoded at the largest 1/2, 1/4 or 1/8 scale still >= `size` on both sides;
  anything else (a smaller JPEG, a PNG) as `pipeline.decode_image` decodes it."""
  import tensorflow as tf
  height, width = size

  def jpeg():
    shape = tf.io.extract_jpeg_shape(encoded)
    factor = tf.minimum(shape[0] // height, shape[1] // width)
    branches = [(tf.greater_equal(factor, r),
                 lambda r=r: tf.io.decode_jpeg(encoded, channels=3, ratio=r,
                                               dct_method="INTEGER_ACCURATE"))
                for r in _DCT_RATIOS]
    return tf.case(branches, default=lambda: pipeline.decode_image(encoded),
                   exclusive=False)

  # Unscaled files decode exactly as fine-tuning decodes them: `pipeline.decode_image`.
  return tf.cond(tf.io.is_jpeg(encoded), jpeg, lambda: pipeline.decode_image(encoded))


def read(root: str, rel_paths: list, size, dct_scaling: bool,
         batch_size: int = 64) -> tuple[np.ndarray, list]:
  """Reads and resizes `rel_paths` under `root`, each file once, in parallel.

  The images land in one preallocated array while `tf.data` decodes the next ones, so
  nothing is copied or stacked after the last file (at 224 px that copy alone was ~10%
  of a first pass over 800 photos).

  Args:
    root: the folder.
    rel_paths: files to read (relative paths, the examples' ids).
    size: (height, width) to resize to (`pipeline.resize_uint8`, as fine-tuning does).
    dct_scaling: decode large JPEGs at a reduced DCT scale (see the module docstring).
    batch_size: images per tf.data batch.

  Returns:
    ((len(rel_paths), height, width, 3) uint8 in `rel_paths` order, [relative paths that
    could not be read]; their rows are undefined).
  """
  import tensorflow as tf

  from tfds_builders.image_folder import image_codec
  full = [os.path.join(root, rel) for rel in rel_paths]
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
    image = (_decode_scaled(encoded, size) if dct_scaling
             else pipeline.decode_image(encoded))
    return i, pipeline.resize_uint8(image, size)

  ds = tf.data.Dataset.from_tensor_slices(
      (np.arange(len(full), dtype=np.int64), full, np.asarray(routes, np.int32)))
  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  ds = ds.ignore_errors().batch(batch_size).prefetch(1)
  images = np.empty((len(full), *size, 3), np.uint8)
  seen = np.zeros(len(full), bool)
  for indices, batch in ds.as_numpy_iterator():
    images[indices] = batch
    seen[indices] = True
  unreadable = [rel for rel, ok in zip(rel_paths, seen, strict=True) if not ok]
  return images, unreadable
