"""Writes dummy_data/: the real Kaggle layout with tiny DICOMs made by pydicom.

Run from the repository root: `python -m tfds_builders.rsna_pneumonia.make_dummy_data`.
The DICOMs copy the real files' encoding (Secondary Capture, CR, 8-bit MONOCHROME2,
pixel data compressed as baseline JPEG inside the file) at 16x16 pixels. The labels CSV
has the real columns and several box rows for pneumonia patients. Edge cases: one
truncated DICOM, one patient of the CSV without a DICOM, one DICOM not in the CSV.
"""

import io
import pathlib
import random
import uuid

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

DUMMY_DIR = pathlib.Path(__file__).parent / "dummy_data"
SIZE = 16
# (number of box rows; 0 = normal): 8 normal and 4 pneumonia patients.
BOXES = [0, 0, 0, 1, 0, 2, 0, 0, 3, 0, 1, 0]
TRUNCATED_INDEX = 2  # a normal patient whose file is cut short
MISSING_INDEX = 4  # a normal patient with no DICOM file


def patient_ids(n: int) -> list[str]:
  rng = random.Random(0)
  return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def chest(seed: int) -> np.ndarray:
  """A 16x16 uint8 'chest X-ray': bright mediastinum, dark lungs, noise."""
  rng = np.random.default_rng(seed)
  x = np.abs(np.arange(SIZE) - SIZE / 2)[None, :]
  image = 200 - 120 * np.exp(-((x - 4) ** 2) / 6) + rng.normal(0, 8, (SIZE, SIZE))
  return np.clip(image, 0, 255).astype(np.uint8)


def dicom_bytes(patient: str, pixels: np.ndarray, view: str) -> bytes:
  jpeg = io.BytesIO()
  Image.fromarray(pixels, "L").save(jpeg, format="JPEG", quality=95)
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
  meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[patient, "sop"])
  meta.TransferSyntaxUID = JPEGBaseline8Bit
  ds = Dataset()
  ds.file_meta = meta
  ds.SpecificCharacterSet = "ISO_IR 100"
  ds.SOPClassUID = SecondaryCaptureImageStorage
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.StudyDate, ds.StudyTime = "19010101", "000000.00"
  ds.Modality, ds.ConversionType = "CR", "WSD"
  ds.SeriesDescription = f"view: {view}"
  ds.PatientName = ds.PatientID = patient
  ds.PatientSex, ds.PatientAge = "F", "51"  # sic: the real files store a bare number
  ds.BodyPartExamined, ds.ViewPosition = "CHEST", view
  ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient, "study"])
  ds.SeriesInstanceUID = generate_uid(entropy_srcs=[patient, "series"])
  ds.SeriesNumber = ds.InstanceNumber = 1
  ds.SamplesPerPixel = 1
  ds.PhotometricInterpretation = "MONOCHROME2"
  ds.Rows, ds.Columns = pixels.shape
  ds.PixelSpacing = [0.139, 0.139]
  ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
  ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
  ds.PixelData = encapsulate([jpeg.getvalue()])
  ds["PixelData"].VR = "OB"
  out = io.BytesIO()
  ds.save_as(out, enforce_file_format=True)
  return out.getvalue()


def main() -> None:
  ids = patient_ids(len(BOXES) + 1)
  stray = ids.pop()  # has a DICOM but no row in the CSV
  images = DUMMY_DIR / "stage_2_train_images"
  images.mkdir(parents=True, exist_ok=True)
  rows = ["patientId,x,y,width,height,Target"]
  rng = random.Random(1)
  for index, (patient, boxes) in enumerate(zip(ids, BOXES)):
    if boxes == 0:
      rows.append(f"{patient},,,,,0")
    for _ in range(boxes):
      x, y = rng.randint(100, 600), rng.randint(100, 500)
      w, h = rng.randint(100, 300), rng.randint(150, 450)
      rows.append(f"{patient},{x}.0,{y}.0,{w}.0,{h}.0,1")
    if index == MISSING_INDEX:
      continue
    data = dicom_bytes(patient, chest(index), "PA" if index % 2 else "AP")
    if index == TRUNCATED_INDEX:
      data = data[: len(data) - 300]
    (images / f"{patient}.dcm").write_bytes(data)
  (images / f"{stray}.dcm").write_bytes(dicom_bytes(stray, chest(99), "PA"))
  header, body = rows[0], sorted(rows[1:], key=lambda row: row.split(",")[0])
  (DUMMY_DIR / "stage_2_train_labels.csv").write_text("\n".join([header] + body) + "\n")
  print("pydicom", pydicom.__version__, "wrote", len(ids), "patients")


if __name__ == "__main__":
  main()
