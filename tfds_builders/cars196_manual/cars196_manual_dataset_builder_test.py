"""cars196 from manual files, on dummy files in the real formats (tgz, .mat)."""

import os
import tempfile
import time

import tensorflow_datasets as tfds

from tfds_builders.cars196_manual import cars196_manual_dataset_builder


class Cars196ManualTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = cars196_manual_dataset_builder.Builder
  SPLITS = {"train": 3, "test": 2}
  EXAMPLE_DIR = os.path.join(os.path.dirname(__file__), "dummy_data")

  def test_missing_files_name_what_to_download_fast(self):
    empty = tempfile.mkdtemp(dir=self.tmp_dir)
    builder = cars196_manual_dataset_builder.Builder(data_dir=tempfile.mkdtemp(
        dir=self.tmp_dir))
    start = time.time()
    with self.assertRaisesRegex(Exception, "no longer served(.|\n)*cars_train.tgz"):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=empty))
    self.assertLess(time.time() - start, 30)

  def test_a_partial_manual_dir_names_the_missing_files(self):
    partial = tempfile.mkdtemp(dir=self.tmp_dir)
    with open(os.path.join(self.EXAMPLE_DIR, "cars_train.tgz"), "rb") as src, \
        open(os.path.join(partial, "cars_train.tgz"), "wb") as dst:
      dst.write(src.read())
    builder = cars196_manual_dataset_builder.Builder(data_dir=tempfile.mkdtemp(
        dir=self.tmp_dir))
    with self.assertRaisesRegex(FileNotFoundError,
                                "cars_test.tgz.*car_devkit.tgz.*withlabels.mat"):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=partial))

  def test_keeps_tfds_features_and_labels(self):
    info = cars196_manual_dataset_builder.Builder(
        data_dir=tempfile.mkdtemp(dir=self.tmp_dir)).info
    self.assertEqual(info.features["label"].num_classes, 196)
    self.assertIn("id", info.features)


if __name__ == "__main__":
  tfds.testing.test_main()
