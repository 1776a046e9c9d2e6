"""Tests for the sklearn_digits builder (runs offline: the data ships inside scikit-learn)."""

import collections
import os
import socket
import tempfile
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.sklearn_digits import sklearn_digits_dataset_builder

Builder = sklearn_digits_dataset_builder.Builder

NUM_TRAIN = 1438
NUM_TEST = 359


def _no_network(*args, **kwargs):
  raise AssertionError(f"sklearn_digits must build offline; tried to connect: {args}")


class SklearnDigitsTest(tfds.testing.DatasetBuilderTestCase):
  """The standard TFDS builder checks, on the real (bundled) data."""

  DATASET_CLASS = Builder
  # No dummy_data/: the "fake" data is the real data bundled with scikit-learn, and the
  # builder never touches dl_manager. The harness still requires an existing example
  # directory (it patches DownloadManager.download_dir with it), so point it here.
  EXAMPLE_DIR = os.fspath(Builder.code_path.parent)
  SPLITS = {"train": NUM_TRAIN, "test": NUM_TEST}

  def _build(self, download_config=None):
    builder = tfds.builder("sklearn_digits", data_dir=tempfile.mkdtemp(dir=self.tmp_dir))
    with mock.patch.object(socket.socket, "connect", _no_network), \
         mock.patch.object(socket, "create_connection", _no_network):
      builder.download_and_prepare(download_config=download_config)
    return builder

  def _read(self, builder):
    return {split: list(tfds.as_numpy(builder.as_dataset(split=split)))
            for split in ("train", "test")}

  def test_images_classes_and_deterministic_split(self):
    # Registered by `import tfds_builders`, built by name with the default config and
    # with an explicit default DownloadConfig, with Python sockets disabled.
    first = self._read(self._build())
    second = self._read(self._build(tfds.download.DownloadConfig()))

    for split, examples in first.items():
      images = np.stack([ex["image"] for ex in examples])
      self.assertEqual(images.dtype, np.uint8)
      self.assertEqual(images.shape[1:], (8, 8, 1))
      self.assertEqual(images.min(), 0)
      self.assertEqual(images.max(), 255)  # 16 -> 255
      counts = collections.Counter(int(ex["label"]) for ex in examples)
      self.assertEqual(sorted(counts), list(range(10)), f"{split} misses a class")

    def assignment(split_examples):
      return {ex["id"].decode(): split
              for split, examples in split_examples.items() for ex in examples}

    ids = assignment(first)
    self.assertLen(ids, NUM_TRAIN + NUM_TEST)  # disjoint and complete
    self.assertEqual(set(ids), {f"digit-{i:04d}" for i in range(NUM_TRAIN + NUM_TEST)})
    self.assertEqual(ids, assignment(second))

  def test_intensity_mapping(self):
    v = np.arange(17, dtype=np.float64)
    expected = np.array([round(x * 255 / 16) for x in v], dtype=np.uint8)
    np.testing.assert_array_equal(sklearn_digits_dataset_builder.to_uint8(v), expected)
    self.assertEqual(int(sklearn_digits_dataset_builder.to_uint8(np.array([8.0]))[0]), 128)
    with self.assertRaises(ValueError):
      sklearn_digits_dataset_builder.to_uint8(np.array([17.0]))


if __name__ == "__main__":
  tfds.testing.test_main()
