"""sklearn_digits: scikit-learn's bundled 8x8 handwritten digits as a TFDS dataset.

The data ships inside scikit-learn (`sklearn.datasets.load_digits()`), so the build needs
no download, no checksums and no network. scikit-learn (and the split helper) are imported
lazily in `_split_generators`, so importing this module stays cheap.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

_HOMEPAGE = "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits"

# The deterministic split: `tfbackbones.data.splits.stratified_split` keyed on the ids.
TEST_FRACTION = 0.2
SPLIT_SEED = 0
NUM_CLASSES = 10
MAX_INTENSITY = 16  # sklearn's digits are counts of "on" pixels in 4x4 blocks: 0..16.


def example_id(index: int) -> str:
  """The stable id of the `index`-th example of `load_digits()`."""
  return f"digit-{index:04d}"


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Maps sklearn's 0..16 intensities to 0..255 as `round(v * 255 / 16)` (uint8)."""
  images = np.asarray(images)
  if images.size and (images.min() < 0 or images.max() > MAX_INTENSITY
                      or not np.array_equal(images, np.round(images))):
    raise ValueError("expected integer intensities in [0, 16] from load_digits()")
  # floor(x + 0.5): round half up; the only exact half (v=8 -> 127.5) gives 128 either way.
  return np.floor(images.astype(np.float64) * 255.0 / MAX_INTENSITY + 0.5).astype(np.uint8)


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for sklearn_digits (named after this module by TFDS)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: load_digits() 8x8 images scaled to uint8, id-keyed "
               "stratified 80/20 train/test split (seed 0).",
  }

  def _info(self) -> tfds.core.DatasetInfo:
    # Description and citation come from README.md and CITATIONS.bib next to this file.
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=[str(d) for d in range(NUM_CLASSES)]),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage=_HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Returns the train/test generators; the data is bundled, nothing is downloaded."""
    del dl_manager  # Unused: the data ships inside scikit-learn.
    from sklearn.datasets import load_digits

    from tfbackbones.data.splits import stratified_split

    digits = load_digits()
    images = to_uint8(digits.images)[..., np.newaxis]  # (1797, 8, 8, 1)
    labels = [int(y) for y in digits.target]
    ids = [example_id(i) for i in range(len(labels))]
    test_ids, train_ids = stratified_split(
        ids, labels, fraction=TEST_FRACTION, seed=SPLIT_SEED)
    index_of = {example_id_: i for i, example_id_ in enumerate(ids)}
    return {
        "train": self._generate_examples(
            images, labels, [index_of[i] for i in train_ids]),
        "test": self._generate_examples(
            images, labels, [index_of[i] for i in test_ids]),
    }

  def _generate_examples(self, images, labels, indices):
    """Yields (id, example) for the given indices into `load_digits()`."""
    for index in indices:
      key = example_id(index)
      yield key, {
          "image": images[index],
          "label": labels[index],
          "id": key,
      }
