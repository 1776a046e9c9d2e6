"""lfw_subset: scikit-image's 200 real 25x25 photos, faces vs non-faces, as a TFDS dataset.

The data ships inside scikit-image (`skimage/data/lfw_subset.npy`, read by
`skimage.data.lfw_subset()`), so the build needs no download and no network. The file is
checked against the sha256 that scikit-image's own data registry pins, so a different
file fails the build instead of silently changing the dataset. scikit-image is imported
lazily in `_split_generators`, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

_HOMEPAGE = "https://scikit-image.org/docs/stable/api/skimage.data.html#skimage.data.lfw_subset"

# scikit-image 0.26 skimage/data/_registry.py: registry["data/lfw_subset.npy"].
SHA256 = "9560ec2f5edfac01973f63a8a99d00053fecd11e21877e18038fbe500f8e872c"
NUM_IMAGES = 200
NUM_FACES = 100  # images 0..99 are faces, 100..199 non-faces (skimage's docstring)
CLASS_NAMES = ("face", "non_face")
# The deterministic split: `tfbackbones.data.splits.stratified_split` keyed on the ids,
# per version (TFDS generates only the newest; 1.0.0 stays here so the README's account of
# it is checkable). 1.0.0 held out 25% (50 test images: one image = 2 points of accuracy,
# too coarse to tell a 10-point gap from noise); 2.0.0 holds out half (100 test images,
# one image = 1 point), which leaves 100 for training and validation: the quickstart
# trains on a few labels per class anyway (tfbackbones/protocols/quickstart.py).
TEST_FRACTIONS = {"1.0.0": 0.25, "2.0.0": 0.5}
SPLIT_SEED = 0


class DataMissingError(FileNotFoundError):
  """scikit-image (and so its lfw_subset.npy) is not installed, or the file differs."""


def example_id(index: int) -> str:
  """The stable id of the `index`-th image of `lfw_subset.npy`."""
  return f"lfw-{index:03d}"


def label_of(index: int) -> int:
  """0 (face) for the first 100 images, 1 (non_face) for the rest."""
  return 0 if index < NUM_FACES else 1


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Maps skimage's float [0, 1] intensities to uint8 as `round(v * 255)` (half up).

  The stored floats are not multiples of 1/255 (the 25x25 crops were resampled), so this
  quantises: every pixel moves by at most 0.5/255.
  """
  images = np.asarray(images, dtype=np.float64)
  if images.size and (images.min() < 0.0 or images.max() > 1.0):
    raise ValueError("expected intensities in [0, 1] from lfw_subset.npy")
  return np.floor(images * 255.0 + 0.5).astype(np.uint8)


def npy_path() -> str:
  """Where the installed scikit-image keeps lfw_subset.npy (checked, not fetched)."""
  try:
    import skimage.data
  except ImportError as e:
    raise DataMissingError(
        "lfw_subset ships inside scikit-image, which is not installed: "
        "pip install scikit-image (or pip install -e '.[photos]').") from e
  path = os.path.join(os.path.dirname(skimage.data.__file__), "lfw_subset.npy")
  if not tf.io.gfile.exists(path):
    raise DataMissingError(f"{path} is missing from the installed scikit-image; reinstall it "
                           "(pip install --force-reinstall scikit-image).")
  return path


def load_images(path: str) -> np.ndarray:
  """Reads and checks the file: sha256, shape (200, 25, 25); returns uint8 (200, 25, 25, 1)."""
  # tf.io.gfile, not open(): TFDS builders read through it (any filesystem).
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  digest = hashlib.sha256(data).hexdigest()
  if digest != SHA256:
    raise DataMissingError(f"{path} has sha256 {digest}, not the {SHA256} this builder "
                           "was written for: a different scikit-image data file.")
  images = np.load(io.BytesIO(data), allow_pickle=False)
  if images.shape != (NUM_IMAGES, 25, 25):
    raise DataMissingError(f"{path} holds an array of shape {images.shape}, "
                           f"expected ({NUM_IMAGES}, 25, 25).")
  return to_uint8(images)[..., np.newaxis]


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for lfw_subset (named after this module by TFDS)."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: skimage lfw_subset.npy as uint8, id-keyed stratified "
               "75/25 train/test split (seed 0).",
      "2.0.0": "The same images, a 50/50 train/test split (id-keyed, stratified, seed 0): "
               "100 test images, one image = 1 point of accuracy.",
  }

  def _info(self) -> tfds.core.DatasetInfo:
    # Description and citation come from README.md and CITATIONS.bib next to this file.
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(25, 25, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage=_HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Returns the train/test generators; the data is bundled, nothing is downloaded."""
    del dl_manager  # Unused: the data ships inside scikit-image.
    from tfbackbones.data.splits import stratified_split

    images = load_images(npy_path())
    ids = [example_id(i) for i in range(NUM_IMAGES)]
    labels = [label_of(i) for i in range(NUM_IMAGES)]
    test_ids, train_ids = stratified_split(
        ids, labels, fraction=TEST_FRACTIONS[str(self.version)], seed=SPLIT_SEED)
    index_of = {key: i for i, key in enumerate(ids)}
    return {
        "train": self._generate_examples(images, [index_of[i] for i in train_ids]),
        "test": self._generate_examples(images, [index_of[i] for i in test_ids]),
    }

  def _generate_examples(self, images, indices):
    """Yields (id, example) for the given indices into lfw_subset.npy."""
    for index in indices:
      key = example_id(index)
      yield key, {"image": images[index], "label": label_of(index), "id": key}
