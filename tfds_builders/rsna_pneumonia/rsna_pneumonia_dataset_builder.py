"""rsna_pneumonia: RSNA Pneumonia Detection Challenge (stage 2) chest X-rays, normal vs
pneumonia, one example per patient.

The Kaggle labels file has one row per bounding box, so a patient with pneumonia has
one to four rows; the label of a patient is the maximum `Target` of its rows, and each
patient is one example. Splitting rows instead (as the 24,181 / 6,046 counts of the paper
this project re-runs suggest: they add up to the 30,227 rows) would put the same image in
train and test.

DICOMs are read with pydicom (imported only when the dataset is prepared). The real files
are 1024x1024 8-bit MONOCHROME2 images compressed as baseline JPEG inside the DICOM, so
that JPEG stream is stored as it is (no generation loss, 4x smaller than PNG); any other
DICOM (MONOCHROME1, more than 8 bits, uncompressed, ...) is converted to 8-bit grayscale
and stored as PNG.
"""

from __future__ import annotations

import collections
import csv
import io
import zipfile
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from tfds_builders.image_folder import image_codec

_HOMEPAGE = "https://www.kaggle.com/competitions/rsna-pneumonia-detection-challenge"
LABELS_CSV = "stage_2_train_labels.csv"
IMAGES_DIR = "stage_2_train_images"
KAGGLE_ZIP = "rsna-pneumonia-detection-challenge.zip"
LABELS = ("normal", "pneumonia")  # Target 0 / 1
TEST_FRACTION = 0.2
SPLIT_SEED = 0
_JPEG_BASELINE_8BIT = "1.2.840.10008.1.2.4.50"
_JPEG_SOI = b"\xff\xd8"


def _import_pydicom():
  """pydicom, imported lazily: only preparing this dataset needs it."""
  try:
    import pydicom
  except ImportError as e:
    raise ImportError(
        "rsna_pneumonia reads DICOM files with pydicom, which is not installed: "
        "`pip install pydicom` (tested with pydicom 3.0.2; Pillow decodes the JPEG "
        "inside the files).") from e
  return pydicom


def read_labels(text: str) -> tuple[dict[str, int], int]:
  """Parses stage_2_train_labels.csv: {patientId: max Target of its rows}, row count.

  Raises:
    ValueError: the patientId or Target column is missing, or a Target is not 0 or 1.
  """
  reader = csv.DictReader(io.StringIO(text))
  if not reader.fieldnames or not {"patientId", "Target"} <= set(reader.fieldnames):
    raise ValueError(f"{LABELS_CSV}: expected columns patientId,x,y,width,height,Target; "
                     f"got {reader.fieldnames}")
  labels: dict[str, int] = {}
  rows = 0
  for row in reader:
    rows += 1
    target = int(float(row["Target"]))
    if target not in (0, 1):
      raise ValueError(f"{LABELS_CSV} line {rows + 1}: Target must be 0 or 1, got {target}")
    patient = row["patientId"].strip()
    labels[patient] = max(labels.get(patient, 0), target)
  return labels, rows


def to_uint8_gray(pixels: np.ndarray, dataset) -> np.ndarray:
  """The stored pixels of a monochrome DICOM as 8-bit grayscale, 0 = black.

  8-bit data is kept as stored. Deeper data goes through the modality LUT (rescale
  slope/intercept), then the file's VOI window/LUT if it has one (what a radiologist's
  viewer shows), then a min-max stretch to 0..255. MONOCHROME1 (0 = white) is inverted.

  Args:
    pixels: `dataset.pixel_array`, 2-D.
    dataset: the pydicom Dataset.

  Returns:
    A uint8 array of the same shape.
  """
  photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
  if pixels.dtype == np.uint8 and int(dataset.get("BitsStored", 8)) <= 8:
    gray = pixels
  else:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
    values = apply_modality_lut(pixels, dataset)
    if "WindowCenter" in dataset or "VOILUTSequence" in dataset:
      values = apply_voi_lut(values, dataset)
    gray = np.clip(np.floor(image_codec.stretch(values) + 0.5), 0, 255).astype(np.uint8)
  if photometric == "MONOCHROME1":
    gray = 255 - gray
  return gray


def dicom_to_image(data: bytes, name: str) -> image_codec.EncodedImage:
  """Decodes one DICOM and returns the bytes to store (JPEG as is, else PNG).

  Raises:
    image_codec.UnreadableImageError: not a readable single-frame monochrome DICOM.
  """
  pydicom = _import_pydicom()
  try:
    dataset = pydicom.dcmread(io.BytesIO(data))
    pixels = dataset.pixel_array
  except Exception as e:
    raise image_codec.UnreadableImageError(f"{name}: {type(e).__name__}: {e}") from e
  photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
  if photometric not in ("MONOCHROME1", "MONOCHROME2") or pixels.ndim != 2:
    raise image_codec.UnreadableImageError(
        f"{name}: expected one monochrome frame, got {photometric} {pixels.shape}")
  height, width = pixels.shape
  transfer_syntax = str(dataset.file_meta.get("TransferSyntaxUID", ""))
  if (transfer_syntax == _JPEG_BASELINE_8BIT and photometric == "MONOCHROME2"
      and pixels.dtype == np.uint8):
    frame = next(pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=1))
    if frame[:2] == _JPEG_SOI:
      return image_codec.EncodedImage(frame, "jpeg", height, width, 1, False)
  gray = to_uint8_gray(pixels, dataset)
  from PIL import Image
  return image_codec.EncodedImage(image_codec.encode_png(Image.fromarray(gray, "L")), "png",
                                  height, width, 1, True)


class _Source:
  """The Kaggle files, from the extracted folder or straight from the Kaggle zip."""

  def __init__(self, manual_dir: epath.Path, instructions: str):
    self._zip: zipfile.ZipFile | None = None
    folder_csv = manual_dir / LABELS_CSV
    archive = manual_dir / KAGGLE_ZIP
    if folder_csv.exists():
      self.name, self._root = "folder", manual_dir
      if not (manual_dir / IMAGES_DIR).is_dir():
        raise FileNotFoundError(f"rsna_pneumonia: {manual_dir / IMAGES_DIR}/ is missing.\n"
                                f"{instructions}")
    elif archive.exists():
      self.name, self._root = KAGGLE_ZIP, archive
      self._zip = zipfile.ZipFile(archive.open("rb"))
      self._members = set(self._zip.namelist())
      if LABELS_CSV not in self._members:
        raise FileNotFoundError(f"rsna_pneumonia: {archive} has no {LABELS_CSV}.\n"
                                f"{instructions}")
    else:
      raise FileNotFoundError(
          f"rsna_pneumonia: neither {folder_csv} nor {archive} exists.\n{instructions}")

  def labels_text(self) -> str:
    if self._zip is not None:
      return self._zip.read(LABELS_CSV).decode("utf-8-sig")
    return (self._root / LABELS_CSV).read_text(encoding="utf-8-sig")

  def read_dicom(self, patient: str) -> bytes | None:
    """The patient's DICOM bytes, or None if the file is missing."""
    member = f"{IMAGES_DIR}/{patient}.dcm"
    if self._zip is not None:
      return self._zip.read(member) if member in self._members else None
    path = self._root / member
    return path.read_bytes() if path.exists() else None


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for rsna_pneumonia."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: stage 2 train images, one example per patient (label = "
               "max Target), stratified 80/20 patient split, seed 0.",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Accept the rules of the Kaggle competition "RSNA Pneumonia Detection Challenge"
  ({_HOMEPAGE}), then download its data (`kaggle competitions download -c
  rsna-pneumonia-detection-challenge`, about 3.7 GB) and either put
  {KAGGLE_ZIP} itself in the manual dir (read directly, no extraction), or unzip it
  there so that <manual_dir>/{LABELS_CSV} and <manual_dir>/{IMAGES_DIR}/<patientId>.dcm
  exist. The manual dir is DownloadConfig(manual_dir=...), by default
  <data_dir>/downloads/manual/. Reading the DICOMs needs `pip install pydicom`.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            # 1024x1024 8-bit grayscale; stored as the files' own JPEG (PNG otherwise).
            "image": tfds.features.Image(shape=(None, None, 1), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=list(LABELS)),
            "id": tfds.features.Text(),  # the patientId
        }),
        supervised_keys=("image", "label"),
        homepage=_HOMEPAGE,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Reads the labels (one per patient) and splits the patients."""
    from tfbackbones.data.splits import stratified_split
    source = _Source(epath.Path(dl_manager.manual_dir), self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    _import_pydicom()  # Fail now, not after the split, if pydicom is missing.
    labels, rows = read_labels(source.labels_text())
    patients = sorted(labels)
    test, train = stratified_split(patients, [labels[p] for p in patients],
                                   fraction=TEST_FRACTION, seed=SPLIT_SEED)
    counts = collections.Counter(labels.values())
    self.info.metadata.update({
        "source": source.name,
        "csv_rows": rows,
        "patients": len(patients),
        "patients_per_label": {LABELS[k]: v for k, v in sorted(counts.items())},
        "split_rule": (f"stratified_split(patientIds, labels, fraction={TEST_FRACTION}, "
                       f"seed={SPLIT_SEED}) -> test"),
    })
    logging.info("rsna_pneumonia: %d rows, %d patients %s; train %d, test %d", rows,
                 len(patients), dict(counts), len(train), len(test))
    return {"train": self._generate_examples(source, "train", train, labels),
            "test": self._generate_examples(source, "test", test, labels)}

  def _generate_examples(self, source: _Source, split: str, patients: list[str],
                         labels: dict[str, int]):
    """Yields (patientId, example); missing or unreadable DICOMs are skipped."""

    def read() -> Iterator[tuple[str, bytes | None]]:
      for patient in patients:  # Reading stays in this thread (zip files are not).
        yield patient, source.read_dicom(patient)

    def encode(item):
      patient, data = item
      if data is None:
        return patient, FileNotFoundError(f"{IMAGES_DIR}/{patient}.dcm is missing")
      try:
        return patient, dicom_to_image(data, f"{IMAGES_DIR}/{patient}.dcm")
      except image_codec.UnreadableImageError as e:
        return patient, e

    skipped = []
    for patient, result in image_codec.map_ordered(encode, read()):
      if isinstance(result, Exception):
        logging.warning("rsna_pneumonia: skipping patient %s: %s", patient, result)
        skipped.append((f"{IMAGES_DIR}/{patient}.dcm", str(result)))
        continue
      yield patient, {"image": result.data, "label": labels[patient], "id": patient}
    image_codec.record_skipped(self.info, split, skipped, len(patients))
