"""The images the recommender looks at: a stratified sample of the train and val splits.

The train/val split is drawn exactly as `tfbackbones.train` draws it (same rule, same
`val_fraction` and `split_seed` defaults), so the recommender never sees a test image and
its validation images are the ones fine-tuning selects on. From each split a stratified
sample (every class in proportion, at least one per class) is taken with its own seed.

Images are decoded only when a candidate actually needs a forward pass (`Sample.images`):
a rerun whose features are all cached reads no pixels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

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
  _builder: object = dataclasses.field(repr=False, default=None)
  _spec: object = dataclasses.field(repr=False, default=None)
  _images: dict | None = dataclasses.field(repr=False, default=None)

  def label_array(self, ids: list) -> np.ndarray:
    return np.asarray([self.labels[i] for i in ids], np.int32)

  def images(self) -> dict:
    """{"train": (N, H, W, 3) uint8, "val": ...}, rows in `train_ids` / `val_ids` order.

    Decoded on first use and kept for the other candidates of this run.
    """
    if self._images is None:
      wanted = set(self.train_ids) | set(self.val_ids)
      ds = pipeline.decoded_with_ids(self._builder, self._spec, self._spec.train_split,
                                     sorted(wanted), self.image_size)
      by_id = {}
      for ids, images, _ in ds.batch(256).as_numpy_iterator():
        for example_id, image in zip(ids, images, strict=True):
          by_id[example_id.decode("utf-8")] = image
      missing = wanted - set(by_id)
      if missing:
        raise ConfigError(f"{len(missing)} sampled images of {self.dataset!r} could not "
                          f"be read again (e.g. {sorted(missing)[:3]}); the prepared "
                          "dataset changed. Prepare it again.")
      self._images = {"train": np.stack([by_id[i] for i in self.train_ids]),
                      "val": np.stack([by_id[i] for i in self.val_ids])}
    return self._images


def _take(ids: list, labels: list, count: int, seed: int) -> list:
  """A stratified subset of about `count` ids (all of them if there are fewer)."""
  if count >= len(ids):
    return sorted(ids)
  chosen, _ = splits_lib.stratified_split(ids, labels, count / len(ids), seed=seed,
                                          min_per_class=1)
  return chosen


def draw(config) -> Sample:
  """Prepares (if needed and allowed) the dataset and draws the sample of `config`.

  Args:
    config: a validated RecommendConfig.

  Returns:
    The Sample (no image decoded yet).

  Raises:
    UnknownDatasetError, DataNotAvailableError, ConfigError: bad name, missing data,
      or a dataset too small to rank on.
  """
  spec = catalog.get(config.dataset)
  builder = pipeline.get_builder(spec, config.data_dir, config.download, config.manual_dir)
  ids = pipeline.draw_split_ids(spec, builder, val_fraction=config.val_fraction,
                                train_fraction=1.0, split_seed=config.split_seed,
                                select_on="val")
  label_of = pipeline.labels_by_id(builder, spec, spec.train_split)
  n_val = max(1, int(round(config.max_images * config.val_share)))
  n_train = config.max_images - n_val
  train_ids = _take(ids.train, [label_of[i] for i in ids.train], n_train,
                    config.sample_seed)
  val_ids = _take(ids.val, [label_of[i] for i in ids.val], n_val, config.sample_seed + 1)
  num_classes = int(builder.info.features[spec.label_key].num_classes)
  classes_seen = len({label_of[i] for i in train_ids})
  if classes_seen < 2 or len(train_ids) < 4:
    raise ConfigError(
        f"dataset {config.dataset!r} gives {len(train_ids)} training images in "
        f"{classes_seen} classes; ranking backbones needs at least 2 classes and a few "
        "images per class (use a folder with one subfolder per class).")
  size = imagesize.resolve(config.image_size, spec.image_size)
  metadata = dict(getattr(builder.info, "metadata", None) or {})
  key_parts = {"dataset": config.dataset, "version": str(builder.info.version),
               "fingerprint": str(metadata.get("fingerprint", "")), "size": list(size),
               "train": train_ids, "val": val_ids}
  key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
  return Sample(dataset=config.dataset, domain=spec.domain, num_classes=num_classes,
                class_names=list(builder.info.features[spec.label_key].names),
                image_size=size, train_ids=train_ids, val_ids=val_ids,
                labels={i: label_of[i] for i in train_ids + val_ids},
                num_train=len(ids.train), key=key, _builder=builder, _spec=spec)
