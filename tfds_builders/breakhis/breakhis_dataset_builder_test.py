"""Tests for the breakhis builder on dummy_data/ (the real BreaKHis_v1 layout, tiny PNGs)."""

import collections
import os
import pathlib
import tarfile
import tempfile
import time

import tensorflow_datasets as tfds
from absl.testing import absltest

from tfds_builders.breakhis import breakhis_dataset_builder as bh

Builder = bh.Builder


def _prepare(config, manual_dir, data_dir):
  builder = Builder(config=config, data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))
  return builder


def _examples(builder, split):
  ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  return {ex["id"].decode(): ex for ex in tfds.as_numpy(ds)}


class BreakhisTest(tfds.testing.DatasetBuilderTestCase):
  """Standard TFDS checks for all four configs, then the split and the sources."""

  DATASET_CLASS = Builder
  # Per magnification: 10 patient folders x 2 images (+ 1 truncated file at 40X).
  # Cases drawn for test (30% of 4 benign and 4 malignant cases, seed 0): 14-21998 and
  # 14-2523, 2 images each.
  SPLITS = {"train": 16, "test": 4}

  def _data_dir(self):
    return tempfile.mkdtemp(dir=self.tmp_dir)

  def test_split_is_by_case_and_the_same_at_every_magnification(self):
    test_cases = {}
    for config in ("40x", "400x"):
      builder = _prepare(config, self.dummy_data, self._data_dir())
      cases = {}
      for split in ("train", "test"):
        for ex in _examples(builder, split).values():
          patient = ex["patient_id"].decode()
          self.assertIn(patient, ex["id"].decode())  # from the file name
          cases.setdefault(patient.rstrip("ABCDEFGH"), set()).add(split)
      self.assertTrue(all(len(s) == 1 for s in cases.values()), cases)
      test_cases[config] = {c for c, s in cases.items() if s == {"test"}}
      self.assertEqual(sorted(test_cases[config]), builder.info.metadata["test_cases"])
      # Sections AB and CD of case 14-22549 and both filings of 14-13412 stay together.
      self.assertLen(cases["14-22549"], 1)
      self.assertLen(cases["14-13412"], 1)
    self.assertEqual(test_cases["40x"], test_cases["400x"])
    self.assertEqual(test_cases["40x"], {"14-21998", "14-2523"})

  def test_labels_and_tumor_types_come_from_the_folders(self):
    builder = _prepare("100x", self.dummy_data, self._data_dir())
    label = builder.info.features["label"]
    tumor = builder.info.features["tumor_type"]
    seen = collections.Counter()
    for split in ("train", "test"):
      for name, ex in _examples(builder, split).items():
        kind = tumor.int2str(ex["tumor_type"])
        self.assertEqual(label.int2str(ex["label"]),
                         "benign" if kind in bh.BENIGN_TYPES else "malignant")
        self.assertIn("-100-", name)
        seen[kind] += 1
    self.assertEqual(seen["lobular_carcinoma"], 2)
    self.assertEqual(seen["adenosis"], 4)
    self.assertLen(seen, 8)

  def test_truncated_png_is_skipped_named_and_counted(self):
    with self.assertLogs("SOB_M_MC-14-10147-40-003.png", level="warning"):
      builder = _prepare("40x", self.dummy_data, self._data_dir())
    self.assertEqual(builder.info.metadata["num_skipped"], 1)
    self.assertEqual([s["file"] for s in builder.info.metadata["skipped_files"]["train"]],
                     ["SOB_M_MC-14-10147-40-003.png"])
    self.assertEqual(_prepare("200x", self.dummy_data,
                              self._data_dir()).info.metadata["num_skipped"], 0)

  def test_archive_is_streamed_and_gives_the_same_dataset(self):
    manual = pathlib.Path(tempfile.mkdtemp(dir=self.tmp_dir))
    with tarfile.open(manual / bh.ARCHIVE_NAME, "w:gz") as tar:
      tar.add(pathlib.Path(self.dummy_data) / bh.FOLDER_NAME, arcname=bh.FOLDER_NAME)
    from_tar = _prepare("40x", manual, self._data_dir())
    from_tree = _prepare("40x", self.dummy_data, self._data_dir())
    self.assertEqual(from_tar.info.metadata["source"], bh.ARCHIVE_NAME)
    for split in ("train", "test"):
      a, b = _examples(from_tar, split), _examples(from_tree, split)
      self.assertEqual(set(a), set(b))
      for key in a:
        for feature in ("image", "label", "tumor_type", "patient_id"):
          self.assertEqual(a[key][feature], b[key][feature], (key, feature))
    # The PNGs are stored byte for byte.
    name = "SOB_B_F-14-9133-40-001.png"
    original = next(pathlib.Path(self.dummy_data).rglob(name)).read_bytes()
    self.assertEqual(_examples(from_tree, "train")[name]["image"], original)

  def test_missing_files_fail_fast_with_instructions(self):
    start = time.monotonic()
    manual = pathlib.Path(tempfile.mkdtemp(dir=self.tmp_dir))
    (manual / "something_else.zip").write_bytes(b"x")  # not empty, but no BreakHis
    with self.assertRaisesRegex(FileNotFoundError, "BreaKHis_v1.tar.gz"):
      _prepare("40x", manual, self._data_dir())
    with self.assertRaisesRegex(Exception, "BreaKHis_v1.tar.gz"):  # no manual dir at all
      _prepare("40x", manual / "absent", self._data_dir())
    self.assertLess(time.monotonic() - start, 10.0)


class ParsePathTest(absltest.TestCase):

  def test_real_names(self):
    record = bh.parse_path("BreaKHis_v1/histology_slides/breast/benign/SOB/adenosis/"
                           "SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-001.png")
    self.assertEqual((record.id, record.label, record.tumor_type, record.patient_id,
                      record.case_id, record.magnification),
                     ("SOB_B_A-14-22549AB-40-001.png", "benign", "adenosis", "14-22549AB",
                      "14-22549", "40"))
    nested = bh.parse_path("./BreaKHis_v1/BreaKHis_v1/histology_slides/breast/malignant/"
                           "SOB/ductal_carcinoma/SOB_M_DC_14-2523/400X/"
                           "SOB_M_DC-14-2523-400-010.png")
    self.assertEqual((nested.patient_id, nested.case_id), ("14-2523", "14-2523"))

  def test_patient_from_the_folder_when_the_file_name_is_odd(self):
    record = bh.parse_path("breast/benign/SOB/tubular_adenoma/SOB_B_TA_14-3411F/100X/x.png")
    self.assertEqual((record.patient_id, record.case_id), ("14-3411F", "14-3411"))

  def test_other_files_are_ignored_and_bad_layouts_raise(self):
    self.assertIsNone(bh.parse_path("BreaKHis_v1/README.txt"))
    self.assertIsNone(bh.parse_path("BreaKHis_v1/histology_slides/breast/thumb.png"))
    with self.assertRaises(ValueError):  # lobular carcinoma filed as benign
      bh.parse_path("breast/benign/SOB/lobular_carcinoma/SOB_M_LC_14-1/40X/a.png")
    with self.assertRaises(ValueError):
      bh.parse_path("breast/benign/SOB/adenosis/SOB_B_A_14-1/40x_bad/a.png")
    with self.assertRaises(ValueError):
      bh.parse_path("breast/benign/SOB/adenosis/unknown/40X/a.png")


class GroupSplitTest(absltest.TestCase):

  def test_whole_groups_per_label(self):
    ids = [f"{g}-{i}" for g in "abcdefghij" for i in range(3)]
    groups = [i.split("-")[0] for i in ids]
    labels = ["m" if g in "abcdefg" else "b" for g in groups]
    test, train = bh.group_stratified_split(ids, labels, groups, 0.3, seed=0)
    self.assertEqual(sorted(test + train), sorted(ids))
    test_groups = {i.split("-")[0] for i in test}
    self.assertFalse(test_groups & {i.split("-")[0] for i in train})
    self.assertEqual(collections.Counter(labels[ids.index(f"{g}-0")] for g in test_groups),
                     {"m": 2, "b": 1})  # round(0.3 * 7), round(0.3 * 3)
    self.assertEqual((test, train), bh.group_stratified_split(ids, labels, groups, 0.3, 0))


if __name__ == "__main__":
  tfds.testing.test_main()
