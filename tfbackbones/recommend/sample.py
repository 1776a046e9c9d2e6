"""The images the recommender looks at: a stratified sample of the train and val splits.

The train/val split is drawn exactly as `tfbackbones.train` draws it (same rule, same
`val_fraction` and `split_seed` defaults), so the recommender never sees a test image and
its validation images are the ones fine-tuning selects on. From each split a stratified
sample (every class in proportion, at least one per class) is taken with its own seed.

Images are decoded only when a candidate actually needs a forward pass (`Sample.images`):
a rerun whose features are all cached reads no pixels. A `folder:PATH` dataset is read
directly (`folder_read`: listed, split by the same rule, each file decoded once) and is
prepared as a TFDS copy only if fine-tuning starts; other datasets are read from TFDS.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable

import numpy as np

from tfbackbones import imagesize
from tfbackbones.config import ConfigError
from tfbackbones.data import catalog, pipeline
from tfbackbones.data import splits as splits_lib


@dataclasses.dataclass
class Sample:
  """Which images are sampled, their labels, and how to decode them.

  Attributes:
    dataset: the dataset name as given.
    domain: its catalog domain.
    num_classes / class_names: from the TFDS metadata.
    image_size: (height, width) the images are resized to.
    train_ids / val_ids: sampled example ids (sorted).
    labels: id -> class id of every sampled example.
    num_train: size of the whole training split (for fine-tune time estimates).
    key: a digest of everything that decides the sample's pixels and labels; part of
      the feature cache key.
    unreadable: sampled files that could not be decoded (folder datasets): dropped from
      `train_ids` / `val_ids` when found (decoding, or a cache file that recorded them).
    read_mode: how the pixels are read: "fast" or "exact" for a folder (folder_read.py),
      "tfds" for a prepared dataset (fine-tuning's own pixels).
  """
  dataset: str
  domain: str
  num_classes: int
  class_names: list
  image_size: tuple
  train_ids: list
  val_ids: list
  labels: dict
  num_train: int
  key: str
  # fn(ids) -> ((len(ids), H, W, 3) uint8 in ids order, [unreadable ids]).
  _read: Callable | None = dataclasses.field(repr=False, default=None)
  _images: dict | None = dataclasses.field(repr=False, default=None)
  unreadable: list = dataclasses.field(default_factory=list)
  read_mode: str = "tfds"

  def label_array(self, ids: list) -> np.ndarray:
    return np.asarray([self.labels[i] for i in ids], np.int32)

  def drop(self, ids) -> None:
    """Leaves unreadable files out of the sample (idempotent)."""
    bad = set(ids) - set(self.unreadable)
    if not bad:
      return
    self.unreadable = sorted(set(self.unreadable) | bad)
    self.train_ids = [i for i in self.train_ids if i not in bad]
    self.val_ids = [i for i in self.val_ids if i not in bad]
    if self._images is not None:
      raise RuntimeError("drop() after the images were decoded")

  def images(self) -> dict:
    """{"train": (N, H, W, 3) uint8, "val": ...}, rows in `train_ids` / `val_ids` order.

    Decoded on first use and kept for the other candidates of this run. Files that
    cannot be decoded are dropped from the sample (`unreadable`).
    """
    if self._images is None:
      ids = self.train_ids + self.val_ids  # disjoint: rows [:n] are train, [n:] val
      images, unreadable = self._read(ids)
      self.drop(unreadable)
      if not self.train_ids or not self.val_ids:
        raise ConfigError(f"no readable images left in the sample of {self.dataset!r} "
                          f"({len(self.unreadable)} unreadable, e.g. "
                          f"{self.unreadable[:3]}); check the files.")
      if unreadable:
        bad = set(unreadable)
        images = images[[i not in bad for i in ids]]
      n = len(self.train_ids)
      self._images = {"train": images[:n], "val": images[n:]}
    return self._images


def _tfds_reader(builder, spec, dataset: str, size) -> Callable:
  """Reads sampled examples back from a prepared TFDS dataset (all must be there)."""
  def read(ids):
    ds = pipeline.decoded_with_ids(builder, spec, spec.train_split, ids, size)
    row = {example_id: i for i, example_id in enumerate(ids)}
    images = np.empty((len(ids), *size, 3), np.uint8)
    seen = np.zeros(len(ids), bool)
    for batch_ids, batch, _ in ds.batch(256).as_numpy_iterator():
      rows = [row[example_id.decode("utf-8")] for example_id in batch_ids]
      images[rows] = batch
      seen[rows] = True
    if not seen.all():
      missing = [i for i, ok in zip(ids, seen, strict=True) if not ok]
      raise ConfigError(f"{len(missing)} sampled images of {dataset!r} could not be read "
                        f"again (e.g. {missing[:3]}); the prepared dataset "
                        "changed. Prepare it again.")
    return images, []
  return read


def _take(ids: list, labels: list, count: int, seed: int) -> list:
  """A stratified subset of about `count` ids (all of them if there are fewer)."""
  if count >= len(ids):
    return sorted(ids)
  chosen, _ = splits_lib.stratified_split(ids, labels, count / len(ids), seed=seed,
                                          min_per_class=1)
  return chosen


@dataclasses.dataclass
class _Source:
  """Where a dataset's sample comes from: its split, labels and a reader of pixels."""
  ids: pipeline.SplitIds
  labels: dict
  class_names: list
  domain: str
  size: tuple
  key_facts: dict       # version, fingerprint (and decode mode): part of the cache key
  read: Callable        # fn(ids) -> ((len(ids), H, W, 3) uint8 in ids order, [unreadable])
  read_mode: str = "tfds"  # Sample.read_mode


def _source(config) -> _Source:
  """A folder is listed and read directly; anything else comes from TFDS."""
  spec = catalog.get(config.dataset)
  size = imagesize.resolve(config.image_size, spec.image_size)
  if spec.builder_factory is not None and spec.name.startswith(catalog.FOLDER_PREFIX):
    from tfbackbones.recommend import folder_read
    folder = folder_read.index(spec.name[len(catalog.FOLDER_PREFIX):],
                               val_fraction=config.val_fraction,
                               train_fraction=config.train_fraction,
                               split_seed=config.split_seed)
    facts = {"version": folder.version, "fingerprint": folder.fingerprint}
    if config.fast_read:
      facts["decode"] = "pillow"  # other pixels than fine-tuning's: other features
    return _Source(folder.ids, folder.labels, folder.class_names, spec.domain, size, facts,
                   lambda ids: folder_read.read(folder.root, ids, size, config.fast_read),
                   "fast" if config.fast_read else "exact")
  builder = pipeline.get_builder(spec, config.data_dir, config.download, config.manual_dir)
  ids = pipeline.draw_split_ids(spec, builder, val_fraction=config.val_fraction,
                                train_fraction=config.train_fraction,
                                split_seed=config.split_seed, select_on="val")
  metadata = dict(getattr(builder.info, "metadata", None) or {})
  facts = {"version": str(builder.info.version),
           "fingerprint": str(metadata.get("fingerprint", ""))}
  return _Source(ids, pipeline.labels_by_id(builder, spec, spec.train_split),
                 list(builder.info.features[spec.label_key].names), spec.domain, size,
                 facts, _tfds_reader(builder, spec, config.dataset, size))


def _check_classes(dataset: str, class_names: list, ids: pipeline.SplitIds) -> None:
  """Refuses what fine-tuning refuses: a class without a train or a val image.

  `tfbackbones.train` stops on such a class (`checks.plan_classes`), so a ranking of it
  would end in fine-tuning commands that fail. Its `--min_images_per_class` (drop the
  class) has no counterpart here, so the fix named is the data's.
  """
  from tfbackbones.data import checks
  train, val = ids.class_counts.get("train"), ids.class_counts.get("val")
  if train is None or val is None:
    return
  bad = checks.starved_classes(train, val)
  if bad:
    listed = "; ".join(f"{class_names[i]!r}: {train[i]} train, {val[i]} val" for i in bad)
    raise checks.DataError(
        f"{dataset}: {len(bad)} class(es) have no training or no validation image after "
        f"the split: {listed}. Fine-tuning (tfbackbones.train) refuses such a dataset "
        "unless told to drop the class (--min_images_per_class), which the recommender "
        "cannot do: add images to the class (a folder needs about 4 per class: 20% go to "
        "test, 10% of the rest to validation) or remove its folder.")


def draw(config) -> Sample:
  """Draws the sample of `config` (preparing a catalog dataset if needed and allowed).

  Args:
    config: a validated RecommendConfig.

  Returns:
    The Sample (no image decoded yet).

  Raises:
    UnknownDatasetError, DataNotAvailableError, ConfigError: bad name, missing data,
      or a dataset too small to rank on.
  """
  source = _source(config)
  ids, label_of, size = source.ids, source.labels, source.size
  _check_classes(config.dataset, source.class_names, ids)
  n_val = max(1, int(round(config.max_images * config.val_share)))
  n_train = config.max_images - n_val
  train_ids = _take(ids.train, [label_of[i] for i in ids.train], n_train,
                    config.sample_seed)
  val_ids = _take(ids.val, [label_of[i] for i in ids.val], n_val, config.sample_seed + 1)
  classes_seen = len({label_of[i] for i in train_ids})
  if classes_seen < 2 or len(train_ids) < 4:
    raise ConfigError(
        f"dataset {config.dataset!r} gives {len(train_ids)} training images in "
        f"{classes_seen} classes; ranking backbones needs at least 2 classes and a few "
        "images per class (use a folder with one subfolder per class).")
  key_parts = {"dataset": config.dataset, **source.key_facts, "size": list(size),
               "train": train_ids, "val": val_ids}
  key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
  return Sample(dataset=config.dataset, domain=source.domain,
                num_classes=len(source.class_names), class_names=source.class_names,
                image_size=size, train_ids=train_ids, val_ids=val_ids,
                labels={i: label_of[i] for i in train_ids + val_ids},
                num_train=len(ids.train), key=key, _read=source.read,
                read_mode=source.read_mode)
