"""Tests for the galaxy10_decals builder, offline, on a 28-galaxy file in the real format.

`dummy_data/Galaxy10_DECals.h5` (see make_dummy_data.py) is returned in place of
`download(_URL)`. The builder checks the published SHA-256 of the real file; the tests
replace it with the fixture's own hash, and check separately that a mismatch is refused.
"""

import collections
import tempfile
from unittest import mock

import h5py
import numpy as np
import tensorflow_datasets as tfds

from tfbackbones.data.splits import stratified_split
from tfds_builders.galaxy10_decals import galaxy10_decals_dataset_builder as g10

Builder = g10.Builder
DUMMY_FILE = Builder.code_path.parent / "dummy_data" / "Galaxy10_DECals.h5"
NUM_TRAIN = 25
NUM_TEST = 3


def _patch_expected_hash():
  """Makes the fixture pass the SHA-256 check that guards the real download."""
  return mock.patch.object(g10, "SOURCE_SHA256", g10.sha256_of(DUMMY_FILE))


class Galaxy10DecalsTest(tfds.testing.DatasetBuilderTestCase):
  """The standard TFDS builder checks on the dummy file."""

  DATASET_CLASS = Builder
  SPLITS = {"train": NUM_TRAIN, "test": NUM_TEST}
  DL_DOWNLOAD_RESULT = "Galaxy10_DECals.h5"
  # No checksums.tsv: TFDS needs the exact byte size, which is not published (only the
  # SHA-256 is, and the builder checks that itself). See README.md.
  SKIP_CHECKSUMS = True

  def setUp(self):
    super().setUp()
    patcher = _patch_expected_hash()
    patcher.start()
    self.patchers.append(patcher)  # Stopped by the base class's tearDown.


class Galaxy10DecalsContentTest(tfds.testing.TestCase):
  """Checks values: exact pixels (lossless), labels, ids and the split definition."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    builder = Builder(data_dir=tempfile.mkdtemp())
    with _patch_expected_hash(), mock.patch.object(
        tfds.download.DownloadManager, "download", lambda self, url: DUMMY_FILE):
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          compute_stats=tfds.download.ComputeStatsMode.SKIP))
    cls.builder = builder
    cls.examples = {split: list(tfds.as_numpy(builder.as_dataset(split=split)))
                    for split in ("train", "test")}
    with h5py.File(DUMMY_FILE, "r") as h5:
      cls.images = h5["images"][()]
      cls.labels = h5["ans"][()]

  def test_pixels_are_lossless_and_labels_match(self):
    for split, examples in self.examples.items():
      for ex in examples:
        index = int(ex["id"].decode().split("-")[1])
        np.testing.assert_array_equal(ex["image"], self.images[index], err_msg=split)
        self.assertEqual(ex["label"], self.labels[index])

  def test_split_is_the_id_keyed_stratified_split(self):
    ids = [f"galaxy-{i:05d}" for i in range(len(self.labels))]
    test_ids, train_ids = stratified_split(ids, self.labels.tolist(), 0.1, seed=0)
    got = {split: sorted(ex["id"].decode() for ex in examples)
           for split, examples in self.examples.items()}
    self.assertEqual(got["test"], test_ids)
    self.assertEqual(got["train"], train_ids)
    # One test image from each class with at least 5 images (round(0.1 * n) >= 1).
    test_labels = collections.Counter(int(ex["label"]) for ex in self.examples["test"])
    self.assertEqual(test_labels, {0: 1, 1: 1, 2: 1})

  def test_class_names(self):
    names = self.builder.info.features["label"].names
    self.assertLen(names, 10)
    self.assertEqual(names[3], "In-between Round Smooth")
    self.assertEqual(names[9], "Edge-on with Bulge")

  def test_wrong_hash_is_refused(self):
    with self.assertRaisesRegex(ValueError, "SHA-256"):
      g10.verify_sha256(DUMMY_FILE, g10.SOURCE_SHA256)  # the real file's hash

  def test_wrong_format_is_refused(self):
    with tempfile.TemporaryDirectory() as tmp:
      path = f"{tmp}/Galaxy10.h5"
      with h5py.File(path, "w") as h5:  # the older Galaxy10 (SDSS) layout: 69x69 images
        h5["images"] = np.zeros((2, 69, 69, 3), np.uint8)
        h5["ans"] = np.zeros((2,), np.uint8)
      with h5py.File(path, "r") as h5, self.assertRaisesRegex(ValueError, "256"):
        g10.check_format(h5)
      with h5py.File(path, "w") as h5:
        h5["images"] = np.zeros((2, 256, 256, 3), np.uint8)
        h5["ans"] = np.array([0, 10], np.uint8)
      with h5py.File(path, "r") as h5, self.assertRaisesRegex(ValueError, "0..9"):
        g10.check_format(h5)
      with h5py.File(path, "w") as h5:
        h5["pixels"] = np.zeros((2, 256, 256, 3), np.uint8)
      with h5py.File(path, "r") as h5, self.assertRaisesRegex(ValueError, "images"):
        g10.check_format(h5)


class IterRowsTest(tfds.testing.TestCase):
  """The lazy reader returns the right rows and never reads more than one block."""

  class _Recorder:
    """Wraps an array and records the slices read from it."""

    def __init__(self, array, chunks=None):
      self.array, self.chunks, self.reads = array, chunks, []
      self.shape = array.shape

    def __getitem__(self, item):
      self.reads.append((item.start, item.stop))
      return self.array[item]

  def test_rows_and_reads(self):
    array = np.arange(1000 * 2).reshape(1000, 2)
    rng = np.random.default_rng(0)
    for rows in (1, 7, 64, 1000):
      wanted = sorted(rng.choice(1000, size=50, replace=False).tolist())
      data = self._Recorder(array)
      got = list(g10.iter_rows(data, reversed(wanted), rows))
      self.assertEqual([i for i, _ in got], wanted)
      for i, row in got:
        np.testing.assert_array_equal(row, array[i])
      self.assertTrue(all(stop - start <= rows for start, stop in data.reads))
      self.assertTrue(all(start % rows == 0 for start, _ in data.reads))
      self.assertLen(set(data.reads), len(data.reads))  # each block read once

  def test_block_rows_follows_chunks(self):
    self.assertEqual(g10.block_rows(self._Recorder(np.zeros((4, 1)))), g10.BLOCK_ROWS)
    self.assertEqual(g10.block_rows(self._Recorder(np.zeros((4, 1)), (1, 1))), 64)
    self.assertEqual(g10.block_rows(self._Recorder(np.zeros((4, 1)), (10, 1))), 70)
    self.assertEqual(g10.block_rows(self._Recorder(np.zeros((4, 1)), (500, 1))), 500)

  def test_out_of_range(self):
    with self.assertRaises(IndexError):
      list(g10.iter_rows(np.zeros((3, 1)), [3], 2))


if __name__ == "__main__":
  tfds.testing.test_main()
