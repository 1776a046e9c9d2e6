"""Tests for the plantclef builder on dummy_data/plantclef/ (train/ + test/ class folders)."""

import os
import pathlib
import shutil
import tempfile
import time

import tensorflow_datasets as tfds

from tfds_builders.plantclef import plantclef_dataset_builder as pc

Builder = pc.Builder


def _prepare(manual_dir, data_dir):
  builder = Builder(data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))
  return builder


def _ids(builder, split):
  ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  return {ex["id"].decode() for ex in tfds.as_numpy(ds)}


class PlantclefTest(tfds.testing.DatasetBuilderTestCase):
  """The standard TFDS checks, then the three accepted layouts."""

  DATASET_CLASS = Builder
  # 3 classes x 4 train; 3 x 2 test + 1 truncated test file (skipped).
  SPLITS = {"train": 12, "test": 6}

  def _data_dir(self):
    return tempfile.mkdtemp(dir=self.tmp_dir)

  def _copy(self, transform):
    """Copies the dummy images into a new manual dir, at transform(relative path)."""
    manual = pathlib.Path(tempfile.mkdtemp(dir=self.tmp_dir))
    source = pathlib.Path(self.dummy_data) / pc.FOLDER_NAME
    for path in source.rglob("*.jpg"):
      target = manual / pc.FOLDER_NAME / transform(path.relative_to(source))
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.copy(path, target)
    return manual

  def test_classes_ids_and_skipped_file(self):
    with self.assertLogs("test/130657/84210.jpg", level="warning"):
      builder = _prepare(self.dummy_data, self._data_dir())
    # Sorted folder names (string order, as torchvision's ImageFolder sorts them).
    self.assertEqual(builder.info.features["label"].names, ["105951", "130657", "29990"])
    self.assertEqual(builder.info.metadata["num_skipped"], 1)
    self.assertEqual(builder.info.metadata["layout"], "split")
    self.assertIn("test/29990/81818.jpg", _ids(builder, "test"))
    self.assertTrue(all(i.startswith("train/") for i in _ids(builder, "train")))

  def test_val_folder_is_the_test_set(self):
    # The paper's reference code reads PlantCLEF_Subset/train and PlantCLEF_Subset/val.
    manual = self._copy(lambda rel: pathlib.Path(str(rel).replace("test", "val", 1)))
    builder = _prepare(manual, self._data_dir())
    self.assertEqual(builder.info.splits["test"].num_examples, 6)
    self.assertTrue(all(i.startswith("val/") for i in _ids(builder, "test")))

  def test_unsplit_tree_gets_a_stratified_90_10_split(self):
    manual = self._copy(lambda rel: pathlib.Path(*rel.parts[1:]))  # drop train/, test/
    builder = _prepare(manual, self._data_dir())
    self.assertEqual(builder.info.metadata["layout"], "flat")
    train, test = _ids(builder, "train"), _ids(builder, "test")
    self.assertFalse(train & test)
    # 6, 7 and 6 files per class: round(0.1 * n) = 1, at least one per class; the
    # truncated file is one of the 19 and is skipped wherever it falls.
    self.assertEqual({i.split("/")[0] for i in test}, {"105951", "130657", "29990"})
    self.assertLen(train | test, 18)

  def test_missing_folder_fails_fast_with_instructions(self):
    start = time.monotonic()
    manual = pathlib.Path(tempfile.mkdtemp(dir=self.tmp_dir))
    (manual / "other_dataset").mkdir()
    with self.assertRaisesRegex(FileNotFoundError, "PlantCLEF_Subset"):
      _prepare(manual, self._data_dir())
    self.assertLess(time.monotonic() - start, 10.0)


if __name__ == "__main__":
  tfds.testing.test_main()
