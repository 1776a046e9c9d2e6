"""Tests for the rsna_pneumonia builder on dummy_data/ (the Kaggle layout, tiny real
DICOMs written by pydicom), plus the DICOM conversion rules."""

import builtins
import io
import os
import pathlib
import tempfile
import time
import unittest
import zipfile
from unittest import mock

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl.testing import absltest

from tfds_builders.rsna_pneumonia import rsna_pneumonia_dataset_builder as rsna

try:
  import pydicom
  from pydicom.dataset import Dataset, FileMetaDataset
  from pydicom.uid import (
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
  )
except ImportError:
  pydicom = None

Builder = rsna.Builder
_NEEDS_PYDICOM = unittest.skipIf(pydicom is None, "needs pydicom (add it to setup.cfg)")
# dummy_data: 12 patients in the CSV (15 rows: two patients have 2 and 3 boxes), 8 normal
# and 4 pneumonia. Test (20% per label, seed 0): 2 normal + 1 pneumonia. In train, one
# DICOM is truncated and one is missing: both skipped. One DICOM is not in the CSV.
_TRUNCATED = "eb1167b3-67a9-4378-bc65-c1e582e2e662"
_MISSING = "e443df78-9558-467f-9ba9-1faf7a024204"
_NOT_IN_CSV = "5a921187-19c7-4df4-8f4f-f31e78de5857"


def _prepare(manual_dir, data_dir):
  builder = Builder(data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))
  return builder


def _examples(builder, split, raw=False):
  decoders = {"image": tfds.decode.SkipDecoding()} if raw else None
  ds = builder.as_dataset(split=split, decoders=decoders)
  return {ex["id"].decode(): ex for ex in tfds.as_numpy(ds)}


def _dicom(pixels, photometric="MONOCHROME2", bits_stored=None, **elements) -> bytes:
  """An uncompressed single-frame DICOM (what the real files are not; edge cases)."""
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
  meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = Dataset()
  ds.file_meta = meta
  ds.SOPClassUID = SecondaryCaptureImageStorage
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.Rows, ds.Columns = pixels.shape[:2]
  ds.SamplesPerPixel = 1 if pixels.ndim == 2 else pixels.shape[2]
  ds.PhotometricInterpretation = photometric
  if pixels.ndim == 3:
    ds.PlanarConfiguration = 0
  bits = pixels.dtype.itemsize * 8
  ds.BitsAllocated, ds.BitsStored = bits, bits_stored or bits
  ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, int(pixels.dtype.kind == "i")
  for key, value in elements.items():
    setattr(ds, key, value)
  ds.PixelData = pixels.tobytes()
  out = io.BytesIO()
  ds.save_as(out, enforce_file_format=True)
  return out.getvalue()


@_NEEDS_PYDICOM
class RsnaPneumoniaTest(tfds.testing.DatasetBuilderTestCase):
  """The standard TFDS checks, then labels, skipping, storage and sources."""

  DATASET_CLASS = Builder
  SPLITS = {"train": 7, "test": 3}

  def _data_dir(self):
    return tempfile.mkdtemp(dir=self.tmp_dir)

  def test_one_example_per_patient_with_the_max_target(self):
    builder = _prepare(self.dummy_data, self._data_dir())
    csv_text = (pathlib.Path(self.dummy_data) / rsna.LABELS_CSV).read_text()
    expected = {}
    for line in csv_text.splitlines()[1:]:
      patient, target = line.split(",")[0], int(line.split(",")[-1])
      expected[patient] = max(expected.get(patient, 0), target)
    seen = {}
    for split in ("train", "test"):
      for patient, ex in _examples(builder, split).items():
        self.assertNotIn(patient, seen)
        seen[patient] = int(ex["label"])
        self.assertEqual(ex["image"].shape, (16, 16, 1))
    self.assertEqual(seen, {p: t for p, t in expected.items()
                            if p not in (_TRUNCATED, _MISSING)})
    self.assertNotIn(_NOT_IN_CSV, seen)
    metadata = builder.info.metadata
    self.assertEqual((metadata["csv_rows"], metadata["patients"]), (15, 12))
    self.assertEqual(metadata["patients_per_label"], {"normal": 8, "pneumonia": 4})
    self.assertEqual(builder.info.features["label"].names, ["normal", "pneumonia"])

  def test_missing_and_truncated_dicoms_are_skipped_named_and_counted(self):
    with self.assertLogs(_TRUNCATED, level="warning"):
      builder = _prepare(self.dummy_data, self._data_dir())
    self.assertEqual(builder.info.metadata["num_skipped"], 2)
    skipped = {s["file"]: s["reason"]
               for s in builder.info.metadata["skipped_files"]["train"]}
    self.assertEqual(set(skipped), {f"stage_2_train_images/{_TRUNCATED}.dcm",
                                    f"stage_2_train_images/{_MISSING}.dcm"})
    self.assertIn("missing", skipped[f"stage_2_train_images/{_MISSING}.dcm"])

  def test_the_files_jpeg_is_stored_and_decodes_like_pydicom(self):
    builder = _prepare(self.dummy_data, self._data_dir())
    raw = _examples(builder, "test", raw=True)
    decoded = _examples(builder, "test")
    for patient, ex in raw.items():
      path = pathlib.Path(self.dummy_data) / rsna.IMAGES_DIR / f"{patient}.dcm"
      dataset = pydicom.dcmread(path)
      frame = next(pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=1))
      self.assertEqual(ex["image"], frame)
      accurate = tf.io.decode_jpeg(ex["image"], channels=1,
                                   dct_method="INTEGER_ACCURATE").numpy()[..., 0]
      np.testing.assert_array_equal(accurate, dataset.pixel_array)
      self.assertLessEqual(
          np.abs(decoded[patient]["image"][..., 0].astype(int)
                 - dataset.pixel_array.astype(int)).max(), 8)

  def test_kaggle_zip_gives_the_same_dataset(self):
    manual = pathlib.Path(tempfile.mkdtemp(dir=self.tmp_dir))
    with zipfile.ZipFile(manual / rsna.KAGGLE_ZIP, "w") as archive:
      for path in sorted(pathlib.Path(self.dummy_data).rglob("*")):
        if path.is_file():
          archive.write(path, path.relative_to(self.dummy_data).as_posix())
    from_zip = _prepare(manual, self._data_dir())
    from_folder = _prepare(self.dummy_data, self._data_dir())
    self.assertEqual(from_zip.info.metadata["source"], rsna.KAGGLE_ZIP)
    for split in ("train", "test"):
      a, b = _examples(from_zip, split, raw=True), _examples(from_folder, split, raw=True)
      self.assertEqual(set(a), set(b))
      for patient in a:
        self.assertEqual(a[patient]["image"], b[patient]["image"])
        self.assertEqual(a[patient]["label"], b[patient]["label"])

  def test_missing_files_fail_fast_with_instructions(self):
    start = time.monotonic()
    manual = pathlib.Path(tempfile.mkdtemp(dir=self.tmp_dir))
    (manual / "unrelated.txt").write_text("x")
    with self.assertRaisesRegex(FileNotFoundError, "rsna-pneumonia-detection-challenge"):
      _prepare(manual, self._data_dir())
    (manual / rsna.LABELS_CSV).write_text("patientId,x,y,width,height,Target\n")
    with self.assertRaisesRegex(FileNotFoundError, "stage_2_train_images"):
      _prepare(manual, self._data_dir())
    self.assertLess(time.monotonic() - start, 10.0)


@_NEEDS_PYDICOM
class DicomConversionTest(absltest.TestCase):

  def test_monochrome1_is_inverted(self):
    pixels = np.array([[0, 100], [200, 255]], np.uint8)
    encoded = rsna.dicom_to_image(_dicom(pixels, "MONOCHROME1"), "x.dcm")
    self.assertEqual((encoded.format, encoded.reencoded), ("png", True))
    np.testing.assert_array_equal(tf.io.decode_png(encoded.data).numpy()[..., 0],
                                  255 - pixels)

  def test_twelve_bit_is_stretched_to_8_bits(self):
    pixels = np.array([[0, 1024], [2048, 4095]], np.uint16)
    encoded = rsna.dicom_to_image(_dicom(pixels, bits_stored=12), "x.dcm")
    np.testing.assert_array_equal(tf.io.decode_png(encoded.data).numpy()[..., 0],
                                  [[0, 64], [128, 255]])

  def test_voi_window_and_rescale_are_applied(self):
    pixels = np.array([[0, 1000], [2000, 3000]], np.uint16)
    dicom = _dicom(pixels, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1000,
                   WindowCenter=0, WindowWidth=2000)  # window: -1000..1000 after rescale
    gray = tf.io.decode_png(rsna.dicom_to_image(dicom, "x.dcm").data).numpy()[..., 0]
    self.assertEqual(gray[0, 0], 0)
    self.assertEqual(gray[1, 0], 255)
    self.assertEqual(gray[1, 1], 255)  # above the window: saturated
    self.assertTrue(100 < gray[0, 1] < 155)  # the window's centre: mid-gray

  def test_colour_and_garbage_are_unreadable(self):
    with self.assertRaisesRegex(rsna.image_codec.UnreadableImageError, "c.dcm"):
      rsna.dicom_to_image(_dicom(np.zeros((2, 2, 3), np.uint8), "RGB"), "c.dcm")
    with self.assertRaisesRegex(rsna.image_codec.UnreadableImageError, "g.dcm"):
      rsna.dicom_to_image(b"not a dicom at all", "g.dcm")


class LabelsAndImportTest(absltest.TestCase):

  def test_read_labels_collapses_rows(self):
    labels, rows = rsna.read_labels(
        "patientId,x,y,width,height,Target\na,,,,,0\nb,1.0,2.0,3.0,4.0,1\n"
        "b,5.0,6.0,7.0,8.0,1\n")
    self.assertEqual((labels, rows), ({"a": 0, "b": 1}, 3))
    with self.assertRaisesRegex(ValueError, "Target"):
      rsna.read_labels("patientId,label\na,0\n")

  def test_missing_pydicom_says_how_to_install_it(self):
    real_import = builtins.__import__

    def no_pydicom(name, *args, **kwargs):
      if name == "pydicom":
        raise ImportError("No module named 'pydicom'")
      return real_import(name, *args, **kwargs)

    with mock.patch.object(builtins, "__import__", no_pydicom):
      with self.assertRaisesRegex(ImportError, "pip install pydicom"):
        rsna.dicom_to_image(b"", "x.dcm")


if __name__ == "__main__":
  tfds.testing.test_main()
