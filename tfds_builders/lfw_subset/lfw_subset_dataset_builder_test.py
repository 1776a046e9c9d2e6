"""Tests for the lfw_subset builder (offline: the data ships inside scikit-image)."""

import collections
import os
import socket
import tempfile
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders.lfw_subset import lfw_subset_dataset_builder as lfw

pytest.importorskip("skimage.data", reason="lfw_subset ships in scikit-image (photos extra)")

Builder = lfw.Builder
NUM_TRAIN = 100
NUM_TEST = 100


def _no_network(*args, **kwargs):
  raise AssertionError(f"lfw_subset must build offline; tried to connect: {args}")


class LfwSubsetTest(tfds.testing.DatasetBuilderTestCase):
  """The standard TFDS builder checks, on the real (bundled) data."""

  DATASET_CLASS = Builder
  # No dummy_data/: the data is the real file bundled with scikit-image (200 tiny images),
  # and the builder never touches dl_manager; the harness still wants a directory.
  EXAMPLE_DIR = os.fspath(Builder.code_path.parent)
  SPLITS = {"train": NUM_TRAIN, "test": NUM_TEST}

  def _read(self):
    builder = tfds.builder("lfw_subset", data_dir=tempfile.mkdtemp(dir=self.tmp_dir))
    with mock.patch.object(socket.socket, "connect", _no_network), \
         mock.patch.object(socket, "create_connection", _no_network):
      builder.download_and_prepare()
    return {split: list(tfds.as_numpy(builder.as_dataset(split=split)))
            for split in ("train", "test")}

  def test_real_images_balanced_classes_and_deterministic_split(self):
    first, second = self._read(), self._read()
    source = lfw.load_images(lfw.npy_path())
    for split, examples in first.items():
      counts = collections.Counter(int(ex["label"]) for ex in examples)
      half = len(examples) // 2
      self.assertEqual(counts, {0: half, 1: half}, split)
      for ex in examples:
        index = int(ex["id"].decode().split("-")[1])
        self.assertEqual(int(ex["label"]), 0 if index < 100 else 1)
        np.testing.assert_array_equal(ex["image"], source[index])  # lossless PNG round trip
    ids = {ex["id"].decode(): split for split, exs in first.items() for ex in exs}
    self.assertLen(ids, 200)                                     # disjoint and complete
    self.assertEqual(ids, {ex["id"].decode(): split for split, exs in second.items()
                           for ex in exs})
    self.assertGreater(source.astype(np.float64).std(), 20)     # photos, not a constant

  def test_quantisation_and_checksum(self):
    np.testing.assert_array_equal(lfw.to_uint8(np.array([0.0, 0.5 / 255, 1.0])), [0, 1, 255])
    with self.assertRaises(ValueError):
      lfw.to_uint8(np.array([1.5]))
    bad = os.path.join(self.tmp_dir, "lfw_subset.npy")
    np.save(bad, np.zeros((200, 25, 25)))
    with self.assertRaisesRegex(lfw.DataMissingError, "sha256"):
      lfw.load_images(bad)


if __name__ == "__main__":
  tfds.testing.test_main()
