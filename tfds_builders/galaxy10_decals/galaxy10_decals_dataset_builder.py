"""galaxy10_decals: Galaxy10 DECaLS (17,736 galaxies, 10 morphology classes) as TFDS.

The data is one HDF5 file, `Galaxy10_DECals.h5` (2.54 GB), with `images` (N, 256, 256, 3)
uint8 and `ans` (N,) class labels. It ships as a single pool, so the paper's 90/10
train/test split is drawn here: stratified, seeded and keyed on example ids (see
`tfbackbones.data.splits`), so that it is the same on every machine.

Images are read lazily in blocks aligned with the file's HDF5 chunks: the decompressed
images are 3.5 GB, which must never be held in memory at once. They are stored as PNG,
not JPEG, because a benchmark must not add its own lossy compression to the source pixels.
h5py and the split helper are imported inside the generation code, so importing this
module costs no more than importing `tensorflow_datasets`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

_URL = "https://zenodo.org/records/10845026/files/Galaxy10_DECals.h5"
_HOMEPAGE = "https://astronn.readthedocs.io/en/latest/galaxy10.html"
# The file's SHA-256 as published in the astroNN documentation and enforced by astroNN's
# own loader (`astroNN.datasets.load_galaxy10`). It is checked after the download, since
# the TFDS checksum file also needs the exact byte size, which is not published.
SOURCE_SHA256 = "19aefc477c41bb7f77ff07599a6b82a038dc042f889a111b0d4d98bb755c1571"

NUM_EXAMPLES = 17_736
IMAGE_SHAPE = (256, 256, 3)
# Class names of the astroNN documentation, in label order 0..9.
CLASS_NAMES = (
    "Disturbed",
    "Merging",
    "Round Smooth",
    "In-between Round Smooth",
    "Cigar Shaped Smooth",
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
)

# The deterministic split: `tfbackbones.data.splits.stratified_split` keyed on the ids.
TEST_FRACTION = 0.1
SPLIT_SEED = 0
# Images per read when the file gives no larger chunking (64 x 196,608 B = 12.6 MB).
BLOCK_ROWS = 64


def example_id(index: int) -> str:
  """The stable id of the `index`-th galaxy of the file."""
  return f"galaxy-{index:05d}"


def sha256_of(path: epath.Path, block_size: int = 1 << 23) -> str:
  """Returns the hex SHA-256 of a file, read in 8 MB blocks."""
  digest = hashlib.sha256()
  with path.open("rb") as f:
    while block := f.read(block_size):
      digest.update(block)
  return digest.hexdigest()


def verify_sha256(path: epath.Path, expected: str) -> None:
  """Raises ValueError if `path` is not the published Galaxy10_DECals.h5."""
  actual = sha256_of(path)
  if actual != expected.lower():
    raise ValueError(
        f"{path} has SHA-256 {actual}, but the published Galaxy10_DECals.h5 has "
        f"{expected.lower()} (astroNN documentation). The download is incomplete or the "
        f"file changed: delete it and download {_URL} again.")


def open_h5(path: epath.Path):
  """Opens the HDF5 file read-only: natively for local paths, as a file object otherwise."""
  import h5py

  local = os.fspath(path)
  if "://" not in local:
    return h5py.File(local, "r")
  return h5py.File(path.open("rb"), "r")  # e.g. gs://: h5py reads through the object.


def check_format(h5) -> np.ndarray:
  """Checks the datasets of an opened Galaxy10_DECals.h5 and returns its labels.

  Args:
    h5: an open `h5py.File`.

  Returns:
    The `ans` labels as an int64 array (17,736 values; 70 kB, read in full).

  Raises:
    ValueError: the file is not in the Galaxy10 DECaLS format (e.g. the older 69x69
      Galaxy10 SDSS file, or a file without `images` / `ans`).
  """
  missing = [key for key in ("images", "ans") if key not in h5]
  if missing:
    raise ValueError(f"{h5.filename}: no {missing} dataset; found {sorted(h5.keys())}. "
                     "Expected Galaxy10_DECals.h5 with `images` and `ans`.")
  images, ans = h5["images"], h5["ans"]
  if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE or images.dtype != np.uint8:
    raise ValueError(f"{h5.filename}: `images` is {images.shape} {images.dtype}; Galaxy10 "
                     f"DECaLS images are (N, {', '.join(map(str, IMAGE_SHAPE))}) uint8.")
  if ans.shape != (images.shape[0],):
    raise ValueError(f"{h5.filename}: `ans` has shape {ans.shape}, expected "
                     f"({images.shape[0]},), one label per image.")
  labels = np.asarray(ans[()])
  if not np.issubdtype(labels.dtype, np.integer) and not np.array_equal(
      labels, np.round(labels)):
    raise ValueError(f"{h5.filename}: `ans` holds non-integer labels ({labels.dtype}).")
  labels = labels.astype(np.int64)
  if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
    raise ValueError(f"{h5.filename}: labels span {labels.min()}..{labels.max()}, "
                     f"expected 0..{len(CLASS_NAMES) - 1}.")
  if images.shape[0] != NUM_EXAMPLES:
    # Only the test fixture is smaller; the published file has 17,736 galaxies.
    logging.warning("%s holds %d images, not %d", h5.filename, images.shape[0], NUM_EXAMPLES)
  return labels


def block_rows(dataset, default: int = BLOCK_ROWS) -> int:
  """Rows per read: a whole number of HDF5 chunks, at least `default` rows.

  Reading whole chunks means every compressed chunk is decompressed once, not once per
  image that it holds.
  """
  chunks = getattr(dataset, "chunks", None)
  if not chunks:
    return default
  rows = int(chunks[0])
  return rows * max(1, math.ceil(default / rows))


def iter_rows(dataset, indices: Iterable[int], rows_per_block: int
              ) -> Iterator[tuple[int, np.ndarray]]:
  """Yields (index, dataset[index]) for the given indices, in increasing order.

  Reads `dataset[start:start + rows_per_block]` blocks aligned on multiples of
  `rows_per_block`, and only blocks that hold a requested index: memory stays at one
  block, whatever the size of the dataset.
  """
  indices = sorted(set(int(i) for i in indices))
  total = int(dataset.shape[0])
  if indices and (indices[0] < 0 or indices[-1] >= total):
    raise IndexError(f"indices must be in [0, {total}), got {indices[0]}..{indices[-1]}")
  position = 0
  while position < len(indices):
    start = (indices[position] // rows_per_block) * rows_per_block
    stop = min(start + rows_per_block, total)
    block = dataset[start:stop]
    while position < len(indices) and indices[position] < stop:
      index = indices[position]
      yield index, np.array(block[index - start])
      position += 1


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for galaxy10_decals (named after this module by TFDS)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: Galaxy10_DECals.h5 (Zenodo 10845026) as lossless PNG, "
               "id-keyed stratified 90/10 train/test split (seed 0).",
  }

  def _info(self) -> tfds.core.DatasetInfo:
    # Description and citation come from README.md and CITATIONS.bib next to this file.
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=IMAGE_SHAPE, encoding_format="png"),
            "label": tfds.features.ClassLabel(names=CLASS_NAMES),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage=_HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Downloads the file, checks it, and returns the train/test generators."""
    from tfbackbones.data.splits import stratified_split

    path = epath.Path(dl_manager.download(_URL))
    verify_sha256(path, SOURCE_SHA256)
    with open_h5(path) as h5:
      labels = check_format(h5)
    ids = [example_id(i) for i in range(len(labels))]
    test_ids, train_ids = stratified_split(
        ids, labels.tolist(), fraction=TEST_FRACTION, seed=SPLIT_SEED)
    index_of = {id_: i for i, id_ in enumerate(ids)}
    return {
        "train": self._generate_examples(path, [index_of[i] for i in train_ids], labels),
        "test": self._generate_examples(path, [index_of[i] for i in test_ids], labels),
    }

  def _generate_examples(self, path: epath.Path, indices: Sequence[int],
                         labels: np.ndarray) -> Iterator[tuple[str, dict]]:
    """Yields (id, example) for the given indices, reading the file block by block."""
    with open_h5(path) as h5:
      images = h5["images"]
      for index, image in iter_rows(images, indices, block_rows(images)):
        key = example_id(index)
        yield key, {"image": image, "label": int(labels[index]), "id": key}
