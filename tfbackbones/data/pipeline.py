"""The input pipeline: TFDS -> id-keyed splits -> decode/resize -> cache -> batches.

Design points:
  * Splits are drawn from example ids (see `splits.py`), so the validation split, the
    derived test split and the training fraction are identical for every backbone, seed
    and machine.
  * Images are resized once and cached as uint8 (4x smaller than float32) when they fit;
    augmentation and the backbone's own normalisation run after the cache. With
    `augment_at="native"` the training images are cached at their native size instead and
    augmented *before* the resize, the reference code's order (see `prepare`).
  * Every epoch is a separate, seeded permutation (`shuffle(seed=f(seed, epoch))`), so a
    resumed run sees exactly the batches an uninterrupted one would have seen, without
    checkpointing iterator state.
  * Evaluation pads to whole global batches with weight-0 examples: static shapes for TPU
    and exact per-sample metrics (padding never counts).
  * No `py_function`: the whole graph runs on TPU hosts too.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfbackbones import imagesize
from tfbackbones.config import ConfigError
from tfbackbones.data import augment as augment_lib
from tfbackbones.data import catalog, checks, offline
from tfbackbones.data import resize as resize_lib
from tfbackbones.data import splits as splits_lib

AUTOTUNE = tf.data.AUTOTUNE
# Cache decoded images in host memory when they take less than this.
MEMORY_CACHE_BUDGET_BYTES = 8 * 2**30


class DataNotAvailableError(RuntimeError):
  """The dataset is not prepared and cannot be prepared here; the message says how."""


@dataclasses.dataclass
class SplitIds:
  """Which example ids form each split, and how they were drawn (for result.json)."""
  train: list
  val: list
  test: list | None          # None: the dataset's own test split is used as a whole
  val_from: str                 # "train" (held out) or "test" (selection on test)
  counts: dict
  # {"train"|"val"|"test": [images per class]} (None where not read): the data checks
  # and the degenerate rule (majority-class rate of the selection split) use them.
  class_counts: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PreparedData:
  """The datasets of one run, before batching and distribution."""
  spec: catalog.DatasetSpec
  num_classes: int
  class_names: list
  image_size: tuple             # (height, width), see tfbackbones/imagesize.py
  ids: SplitIds
  train: tf.data.Dataset        # (uint8 image, int32 label), cached, unbatched
  val: tf.data.Dataset
  test: tf.data.Dataset

  # "cached": `train` holds images at `image_size`; "native": at their native size, and
  # `train_dataset_fn` resizes each one after augmenting it.
  augment_at: str = "cached"
  # Facts for result.json's `data` and the start line: skipped/ignored files, dropped
  # classes, images per class and split.
  facts: dict = dataclasses.field(default_factory=dict)

  @property
  def num_train(self) -> int:
    return self.ids.counts["train"]


def _import_builders():
  """Registers the project's own TFDS builders (tfds_builders/) with TFDS."""
  try:
    import tfds_builders  # noqa: F401
  except ImportError as e:  # pragma: no cover - only when the package is not installed
    logging.warning("tfds_builders not importable (%s); only TFDS catalog datasets work", e)


def tfds_builder(spec: catalog.DatasetSpec, data_dir: str | None):
  """The TFDS builder of `spec` (our own builders registered first); nothing prepared."""
  _import_builders()
  if spec.builder_factory is not None:
    try:
      return spec.builder_factory(data_dir)
    except (FileNotFoundError, RuntimeError, ValueError) as e:  # missing, changed, unusable
      raise DataNotAvailableError(str(e)) from e
  return tfds.builder(spec.tfds_name, data_dir=data_dir)


def get_builder(spec: catalog.DatasetSpec, data_dir: str | None, download: bool,
                manual_dir: str | None = None):
  """Returns a prepared TFDS builder, preparing it if allowed.

  Raises:
    DataNotAvailableError: not prepared and `download` is False, or preparation failed
      (no network, missing manual files); the message names the dataset and the fix.
  """
  builder = tfds_builder(spec, data_dir)
  if builder.is_prepared():
    return builder
  where = builder.data_dir
  if not download:
    raise DataNotAvailableError(
        f"dataset {spec.name!r} ({spec.tfds_name}) is not prepared under {where}. "
        f"Prepare it once with `python -m tfbackbones.datasets --prepare={spec.name} "
        "--data_dir=DIR` on a machine with network access and copy DIR here (pass "
        "--data_dir=DIR), or rerun without --nodownload.")
  offline_why = None
  try:
    with offline.attempts(builder) as offline_why:  # offline: one try, not minutes of them
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except Exception as e:
    filename = getattr(e, "filename", None)
    if isinstance(e, OSError) and filename and str(where).startswith(str(filename)):
      # Neither the folder nor the network: the data_dir cannot be written.
      raise DataNotAvailableError(
          f"cannot prepare dataset {spec.name!r} into {where}: {type(e).__name__}: "
          f"{e.strerror}: {filename}. Give a --data_dir you can write to.") from e
    if spec.builder_factory is not None:  # the user's folder: no network involved
      raise DataNotAvailableError(
          f"could not prepare the image folder {spec.name[len(catalog.FOLDER_PREFIX):]} "
          f"into {where}: {type(e).__name__}: {e}. Fix the folder (one sub-folder of "
          "images per class, or train/ and test/ folders of class folders; see "
          "tfds_builders/image_folder/README.md) and rerun.") from e
    cause = f"{offline_why}. " if offline_why else "Offline? "
    raise DataNotAvailableError(
        f"could not prepare dataset {spec.name!r} ({spec.tfds_name}) into {where}: "
        f"{type(e).__name__}: {e}. {cause}Prepare it where the network works "
        f"(`python -m tfbackbones.datasets --prepare={spec.name} --data_dir=DIR`) and "
        "copy DIR here, or, for a manual dataset, put the files where the message above "
        "says.") from e
  return builder


def _read_index(builder, split: str, spec: catalog.DatasetSpec):
  """Returns (ids, labels, groups) of a split without decoding images."""
  ds = _as_dataset(builder, split, spec)
  id_key = _id_key(spec)
  group_key = spec.group_key or id_key
  ds = ds.map(lambda ex: (ex[id_key], ex[spec.label_key], ex[group_key]),
              num_parallel_calls=AUTOTUNE)
  text = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)  # noqa: E731
  ids, labels, groups = [], [], []
  for batch_ids, batch_labels, batch_groups in ds.batch(4096).as_numpy_iterator():
    ids.extend(text(i) for i in batch_ids)
    labels.extend(int(l) for l in batch_labels)
    groups.extend(text(g) for g in batch_groups)
  return ids, labels, groups


def _split_size(builder, spec, split: str) -> int:
  """Examples in `split`: from the metadata, else counted (no image decoding)."""
  try:
    return int(builder.info.splits[split].num_examples)
  except (KeyError, ValueError):
    return len(_read_index(builder, split, spec)[0])


def _id_key(spec) -> str:
  return spec.id_key or "tfds_id"


def _as_dataset(builder, split, spec):
  """Examples with the image still encoded: decoding is ours (see `decode_image`)."""
  return builder.as_dataset(
      split=split, shuffle_files=False,
      decoders={spec.image_key: tfds.decode.SkipDecoding()},
      read_config=tfds.ReadConfig(add_tfds_id=spec.id_key is None,
                                  interleave_cycle_length=1))


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
  """PNG or JPEG bytes -> (H, W, 3) uint8; grayscale becomes RGB.

  JPEG uses the accurate integer DCT: TF's default fast DCT differs from libjpeg/PIL
  (which the PyTorch reference decodes with) by ~1 grey level on average, up to 18.
  """
  return tf.cond(
      tf.io.is_jpeg(encoded),
      lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
      lambda: tf.io.decode_png(encoded, channels=3))


def draw_split_ids(spec, builder, *, val_fraction: float, train_fraction: float,
                   split_seed: int, select_on: str) -> SplitIds:
  """Draws the train / val / test ids for a run (deterministic, stratified)."""
  pool_ids, pool_labels, pool_groups = _read_index(builder, spec.train_split, spec)
  num_classes = int(builder.info.features[spec.label_key].num_classes)
  return split_ids_from_index(spec, pool_ids, pool_labels, pool_groups, num_classes,
                              val_fraction=val_fraction, train_fraction=train_fraction,
                              split_seed=split_seed, select_on=select_on)


def split_ids_from_index(spec, pool_ids: list, pool_labels: list, pool_groups: list,
                         num_classes: int, *, val_fraction: float, train_fraction: float,
                         split_seed: int, select_on: str) -> SplitIds:
  """The split rule of `draw_split_ids`, given the training pool's ids, labels, groups.

  Separate so that a reader that knows the pool without a prepared dataset (the
  recommender's direct read of an image folder) draws exactly the split fine-tuning
  will draw: one rule, one place.
  """
  label_of = dict(zip(pool_ids, pool_labels))
  group_of = dict(zip(pool_ids, pool_groups))
  test_ids = None
  if spec.test_split is None:
    test_ids, pool_ids = splits_lib.stratified_split(
        pool_ids, [label_of[i] for i in pool_ids], spec.test_fraction,
        seed=spec.test_split_seed)
  if select_on == "val" and spec.group_key:
    val_ids, train_pool = splits_lib.group_stratified_split(
        pool_ids, [label_of[i] for i in pool_ids], [group_of[i] for i in pool_ids],
        val_fraction, seed=split_seed)
    val_from = "train"
  elif select_on == "val":
    val_ids, train_pool = splits_lib.stratified_split(
        pool_ids, [label_of[i] for i in pool_ids], val_fraction, seed=split_seed,
        min_per_class=1)
    val_from = "train"
  else:
    val_ids, train_pool, val_from = None, list(pool_ids), "test"
  if train_fraction < 1.0:
    # Another seed than the val split's, so the two draws are independent.
    train_ids, _ = splits_lib.stratified_split(
        train_pool, [label_of[i] for i in train_pool], train_fraction,
        seed=split_seed + 1, min_per_class=1)
  else:
    train_ids = sorted(train_pool)
  counts = {"pool": len(label_of), "train": len(train_ids),
            "val": len(val_ids) if val_ids is not None else None}
  if test_ids is not None:
    counts["test"] = len(test_ids)

  def per_class(split_ids):
    return None if split_ids is None else _per_class([label_of[i] for i in split_ids],
                                                     num_classes)

  class_counts = {"train": per_class(train_ids), "val": per_class(val_ids),
                  "test": per_class(test_ids)}
  return SplitIds(train=train_ids, val=val_ids, test=test_ids, val_from=val_from,
                  counts=counts, class_counts=class_counts)


def _per_class(labels, num_classes: int) -> list:
  return np.bincount(np.asarray(labels, np.int64), minlength=num_classes).tolist()


def _filter_ids(ds, id_key: str, keep: list):
  table = tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant(keep, dtype=tf.string), tf.ones([len(keep)], tf.int32)),
      default_value=0)
  return ds.filter(lambda ex: table.lookup(ex[id_key]) > 0)


def resize_uint8(image: tf.Tensor, size) -> tf.Tensor:
  """Any (H, W, C) uint8 image -> (height, width, 3) uint8; grayscale becomes 3-channel.

  `size` is an int (square) or anything `imagesize.parse` takes (`(h, w)`, `"672x448"`).
  Aspect ratio is not kept, as in the paper's `Resize((h, w))`.
  """
  height, width = imagesize.require(size)
  image = tf.convert_to_tensor(image)
  channels = image.shape[-1]
  if channels == 1:
    image = tf.image.grayscale_to_rgb(image)
  elif channels == 4:
    image = image[..., :3]
  elif channels is None:  # unknown statically: decide at run time, static result shape
    image = tf.cond(tf.shape(image)[-1] == 1,
                    lambda: tf.image.grayscale_to_rgb(image[..., :1]),
                    lambda: image[..., :3])
  # `tf.image.resize(image, (height, width), "bilinear", antialias=True)`, bit for bit
  # on every shape tests/test_resize.py draws, at about 60% of its CPU (data/resize.py).
  resized = resize_lib.antialiased_bilinear(image, height, width)
  resized = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
  return tf.ensure_shape(resized, (height, width, 3))


def _decoded(builder, spec, split: str, keep_ids: list | None, size,
             resize: bool = True, label_map: list | None = None):
  """(uint8 image, int32 label): resized to `size`, or (resize=False) checked to be it.

  `label_map[old label]` is the new label, or -1 to drop the example (dropped classes).
  """
  ds = _as_dataset(builder, split, spec)
  if keep_ids is not None:
    ds = _filter_ids(ds, _id_key(spec), keep_ids)
  if label_map is not None:
    table = tf.constant(label_map, tf.int64)
    ds = ds.filter(lambda ex: tf.gather(table, tf.cast(ex[spec.label_key], tf.int64)) >= 0)
    ds = ds.map(lambda ex: {**ex, spec.label_key: tf.gather(
        table, tf.cast(ex[spec.label_key], tf.int64))})
  if not resize:  # native size: every image has it (see native_size)
    image_fn = lambda encoded: tf.ensure_shape(decode_image(encoded), (*size, 3))  # noqa: E731
  else:
    image_fn = lambda encoded: resize_uint8(decode_image(encoded), size)  # noqa: E731
  return ds.map(lambda ex: (image_fn(ex[spec.image_key]),
                            tf.cast(ex[spec.label_key], tf.int32)),
                num_parallel_calls=AUTOTUNE, deterministic=True)


def labels_by_id(builder, spec, split: str) -> dict:
  """{example id: label} of a split, read without decoding any image."""
  ids, labels, _ = _read_index(builder, split, spec)
  return dict(zip(ids, labels))


def decoded_with_ids(builder, spec, split: str, keep_ids: list, size):
  """(id, uint8 image resized to `size`, int32 label) of the examples of `keep_ids`.

  For consumers that pick their own examples and must match images to ids (the
  recommender's stratified sample), in the dataset's order.
  """
  ds = _filter_ids(_as_dataset(builder, split, spec), _id_key(spec), keep_ids)
  return ds.map(lambda ex: (ex[_id_key(spec)],
                            resize_uint8(decode_image(ex[spec.image_key]), size),
                            tf.cast(ex[spec.label_key], tf.int32)),
                num_parallel_calls=AUTOTUNE, deterministic=True)


AUGMENT_AT = ("cached", "native")


def native_size(builder, spec: catalog.DatasetSpec) -> tuple:
  """(height, width) every image of the dataset has, from its TFDS features.

  Raises:
    ConfigError: the dataset's images vary in size (the message says what to use).
  """
  shape = tuple(builder.info.features[spec.image_key].shape)
  if len(shape) != 3 or shape[0] is None or shape[1] is None:
    raise ConfigError(
        f"--augment_at=native needs images of one native size, but {spec.name!r} has "
        f"images of varying size (TFDS shape {shape}); TrivialAugment is built with "
        "static shapes (it runs on TPU hosts). Use --augment_at=cached (augment after "
        "the resize to the protocol size). Native-size datasets: CIFAR, EuroSAT, Tiny "
        "ImageNet, Galaxy10, sklearn_digits.")
  return (int(shape[0]), int(shape[1]))


def _maybe_cache(ds, count: int, size, mode: str):
  nbytes = count * imagesize.pixels(size) * 3
  if mode == "memory" or (mode == "auto" and nbytes <= MEMORY_CACHE_BUDGET_BYTES):
    return ds.cache()
  return ds


def prepare(spec: catalog.DatasetSpec, *, data_dir: str | None, image_size,
            val_fraction: float, train_fraction: float, split_seed: int, select_on: str,
            cache: str = "auto", download: bool = True,
            manual_dir: str | None = None, augment_at: str = "cached",
            min_images_per_class: int = 0) -> PreparedData:
  """Builds the cached, unbatched train/val/test datasets of one run.

  `image_size` is 0 for the dataset's protocol size, an int, or any form
  `imagesize.parse` accepts (`"672x448"` = 672 wide, 448 high).

  `augment_at` says where training augmentation happens. "cached" (default, cheapest):
  on images already resized to `image_size`. "native": on the images at their native
  size, then resized, as the reference code does (torchvision's TrivialAugmentWide
  before `Resize`). It matters for small images: TrivialAugmentWide translates by up to
  32 *pixels* whatever the size, so on CIFAR at 32 px a shift can empty the frame, while
  after the resize to 256 px the same shift moves it by an eighth. Only datasets whose
  images share one size support "native" (static shapes); validation and test are
  always resized once and cached.

  Before any image is decoded, every class must have a train and a validation image
  (`checks.plan_classes`; `min_images_per_class` drops the ones that do not).
  """
  if augment_at not in AUGMENT_AT:
    raise ValueError(f"augment_at must be one of {AUGMENT_AT}, got {augment_at!r}")
  builder = get_builder(spec, data_dir, download, manual_dir)
  label_feature = builder.info.features[spec.label_key]
  num_classes = int(label_feature.num_classes)
  if spec.num_classes and num_classes != spec.num_classes:
    logging.warning("%s: TFDS says %d classes, the catalog %d; using TFDS's",
                    spec.name, num_classes, spec.num_classes)
  ids = draw_split_ids(spec, builder, val_fraction=val_fraction,
                       train_fraction=train_fraction, split_seed=split_seed,
                       select_on=select_on)
  class_names = list(label_feature.names)
  test_labels = None
  if spec.test_split is not None and (select_on == "test" or spec.builder_factory
                                      or min_images_per_class > 0):
    # The dataset's own test split, read without decoding images: its per-class counts
    # are the majority-class rate under selection on test, and facts for folders.
    test_labels = _read_index(builder, spec.test_split, spec)[1]
    ids.class_counts["test"] = _per_class(test_labels, num_classes)
  if ids.val is None:
    ids.class_counts["val"] = ids.class_counts["test"]
  plan = checks.plan_classes(spec.name, class_names, ids.class_counts,
                             needs_val=ids.val is not None,
                             min_images_per_class=min_images_per_class)
  label_map = None
  if plan.changed:
    ids, label_map, class_names, num_classes = _drop_classes(
        builder, spec, ids, plan, class_names, test_labels)
  size = imagesize.resolve(image_size, spec.image_size)
  train_keep = None if (train_fraction >= 1.0 and ids.val is None
                        and spec.test_split is not None and not plan.changed) else ids.train
  native = augment_at == "native"
  train_cached_size = native_size(builder, spec) if native else size
  train = _decoded(builder, spec, spec.train_split, train_keep, train_cached_size,
                   resize=not native, label_map=label_map)
  if spec.test_split is None:
    test = _decoded(builder, spec, spec.train_split, ids.test, size, label_map=label_map)
  else:
    test = _decoded(builder, spec, spec.test_split, None, size, label_map=label_map)
    ids.counts["test"] = (sum(ids.class_counts["test"]) if ids.class_counts.get("test")
                          is not None else _split_size(builder, spec, spec.test_split))
  if ids.val is None:  # selection on test: the test set is read every epoch, cache it
    test = val = _maybe_cache(test, ids.counts["test"], size, cache)
    ids.counts["val"] = ids.counts["test"]
  else:
    val = _maybe_cache(_decoded(builder, spec, spec.train_split, ids.val, size,
                                label_map=label_map),
                       len(ids.val), size, cache)
  return PreparedData(
      spec=spec, num_classes=num_classes, class_names=class_names,
      image_size=size, ids=ids,
      train=_maybe_cache(train, ids.counts["train"], train_cached_size, cache), val=val,
      test=test, augment_at=augment_at,
      facts=_facts(builder, ids, class_names, plan))


def _drop_classes(builder, spec, ids: SplitIds, plan: checks.ClassPlan, class_names: list,
                  test_labels):
  """The split ids, label map, class names and count without the dropped classes."""
  num_old = len(class_names)
  label_map = [plan.keep.get(i, -1) for i in range(num_old)]
  label_of = dict(zip(*_read_index(builder, spec.train_split, spec)[:2], strict=True))

  def kept(split_ids):
    return None if split_ids is None else [i for i in split_ids if label_map[label_of[i]] >= 0]

  new_names = [class_names[old] for old in sorted(plan.keep)]

  def remap(counts):
    return None if counts is None else [counts[old] for old in sorted(plan.keep)]

  train, val, test = kept(ids.train), kept(ids.val), kept(ids.test)
  counts = dict(ids.counts, train=len(train))
  if val is not None:
    counts["val"] = len(val)
  if test is not None:
    counts["test"] = len(test)
  class_counts = {k: remap(v) for k, v in ids.class_counts.items()}
  if test_labels is not None:
    class_counts["test"] = remap(_per_class(test_labels, num_old))
  ids = SplitIds(train=train, val=val, test=test, val_from=ids.val_from, counts=counts,
                 class_counts=class_counts)
  return ids, label_map, new_names, len(new_names)


def _facts(builder, ids: SplitIds, class_names: list, plan: checks.ClassPlan) -> dict:
  """What result.json's `data` records about the data this run saw."""
  metadata = builder.info.metadata or {}
  facts = {
      "skipped_files": int(metadata.get("num_skipped", 0)),
      "ignored_files": int(metadata.get("num_ignored_files", 0)),
      "broken_links": int(metadata.get("num_broken_links", 0)),
      "images_per_class": {
          split: dict(zip(class_names, counts, strict=True))
          for split, counts in ids.class_counts.items() if counts is not None},
  }
  if plan.dropped:
    facts["dropped_classes"] = plan.dropped
  return facts


# ----------------------------------------------------------------------------------------
# Batching for a distribution strategy.

Preprocess = Callable[[tf.Tensor], tf.Tensor]


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  return tf.image.stateless_random_flip_left_right(image, seed)


# name -> fn(uint8 (H,W,3) image, int32 [2] seed) -> uint8 image; pure functions of their
# inputs, so an epoch's augmentations are reproducible on resume.
AUGMENTERS = {"none": None, "flip": random_flip, "trivial": augment_lib.trivial_augment}


def register_augmenter(name: str, fn) -> None:
  """Adds an augmentation: fn(uint8 (H,W,3) image, int32 [2] seed) -> uint8 image."""
  AUGMENTERS[name] = fn


def train_dataset_fn(data: PreparedData, *, global_batch: int, steps_per_epoch: int,
                     epoch: int, seed: int, preprocess: Preprocess, augment: str = "none"):
  """Returns fn(input_context) for `strategy.distribute_datasets_from_function`.

  The dataset yields exactly `steps_per_epoch` global batches: epoch `epoch`'s seeded
  permutation of the training set. One dataset per epoch (sharing the in-memory cache of
  `data.train`) makes every epoch's order a pure function of (seed, epoch), so a resumed
  run sees the batches an uninterrupted run would have seen. (`shuffle` takes only a
  Python seed, hence a dataset per epoch rather than a `flat_map` over epochs.)
  """
  if augment not in AUGMENTERS:
    raise ValueError(f"unknown augmentation {augment!r}; known: {sorted(AUGMENTERS)}")
  augmenter = AUGMENTERS[augment]
  n = data.num_train
  epoch_seed = (seed * 1_000_003 + epoch) % (2**31 - 1)

  def fn(ctx: tf.distribute.InputContext):
    per_replica = ctx.get_per_replica_batch_size(global_batch)
    per_pipeline = global_batch // ctx.num_input_pipelines
    ds = data.train.shuffle(n, seed=epoch_seed, reshuffle_each_iteration=False)
    ds = ds.take(steps_per_epoch * global_batch).enumerate()
    if ctx.num_input_pipelines > 1:
      # Every input pipeline (one per worker) shuffles the whole split with the same seed
      # and keeps its own slice of each global batch. So step s trains on the same
      # examples, each replica on the same slice, whether the replicas live in one
      # process or on several workers: a multi-worker run reproduces a 1-process run with
      # as many replicas (tests/test_multiworker.py checks it). Only kept examples are
      # decoded and augmented.
      count, pipeline_id = ctx.num_input_pipelines, ctx.input_pipeline_id
      ds = ds.filter(lambda index, _: index // per_pipeline % count == pipeline_id)

    def element(index, example):
      image, label = example
      if augmenter is not None:
        # `index` is the example's place in the epoch's global order, the same on any
        # cluster layout, so its augmentation is too.
        pair = tf.stack([tf.constant(epoch_seed, tf.int32), tf.cast(index, tf.int32) * 64])
        image = augmenter(image, pair)
      if data.augment_at == "native":
        image = resize_uint8(image, data.image_size)
      return preprocess(tf.cast(image, tf.float32)), label

    ds = ds.map(element, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(per_replica, drop_remainder=True).prefetch(AUTOTUNE)

  return fn


def eval_steps(count: int, global_batch: int) -> int:
  return max(1, math.ceil(count / global_batch))


def eval_dataset_fn(dataset: tf.data.Dataset, count: int, *, global_batch: int,
                    image_size, preprocess: Preprocess):
  """fn(input_context) yielding (images, labels, weights), padded to whole batches."""
  steps = eval_steps(count, global_batch)
  height, width = imagesize.require(image_size)

  def fn(ctx: tf.distribute.InputContext):
    per_replica = ctx.get_per_replica_batch_size(global_batch)
    per_pipeline = global_batch // ctx.num_input_pipelines
    ds = dataset
    if ctx.num_input_pipelines > 1:
      ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    ds = ds.map(lambda image, label: (image, label, tf.constant(1.0)))
    pad = tf.data.Dataset.from_tensors(
        (tf.zeros((height, width, 3), tf.uint8), tf.constant(0, tf.int32),
         tf.constant(0.0))).repeat()
    ds = ds.concatenate(pad).take(steps * per_pipeline)
    ds = ds.map(lambda image, label, weight: (preprocess(tf.cast(image, tf.float32)),
                                              label, weight),
                num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(per_replica, drop_remainder=True).prefetch(AUTOTUNE)

  return fn, steps


def steps_per_epoch(num_train: int, global_batch: int) -> int:
  if num_train < global_batch:
    raise checks.DataError(
        f"the training split has {num_train} examples, fewer than one global batch "
        f"({global_batch}); lower --batch_size or raise --train_fraction")
  return num_train // global_batch


def labels_of(ds: tf.data.Dataset) -> np.ndarray:
  """All labels of an unbatched (image, label) dataset (for tests and reports)."""
  return np.concatenate([l for _, l in ds.batch(4096).as_numpy_iterator()])
