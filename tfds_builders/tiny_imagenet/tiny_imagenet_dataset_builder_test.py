"""Tests for the tiny_imagenet builder, offline, on a miniature copy of the real archive.

`dummy_data/tiny-imagenet-200/` is the extracted archive in its real layout (3 of the 200
classes; see make_dummy_data.py), returned in place of `download_and_extract(_URL)`.
"""

import io
import tempfile
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders.tiny_imagenet import tiny_imagenet_dataset_builder

Builder = tiny_imagenet_dataset_builder.Builder
DUMMY_ROOT = Builder.code_path.parent / "dummy_data" / "tiny-imagenet-200"


class TinyImagenetTest(tfds.testing.DatasetBuilderTestCase):
  """The standard TFDS builder checks on the dummy archive."""

  DATASET_CLASS = Builder
  SPLITS = {"train": 9, "validation": 6}
  # download_and_extract(_URL) returns dummy_data/, which holds `tiny-imagenet-200/`.
  DL_EXTRACT_RESULT = ""
  # No checksums.tsv: the archive's sha256 is not published anywhere we could verify it,
  # and inventing one would break real downloads. Record it with --register_checksums
  # on the first real download (README.md).
  SKIP_CHECKSUMS = True

  def test_wnid_list(self):
    wnids = tiny_imagenet_dataset_builder.WNIDS
    self.assertLen(wnids, 200)
    self.assertLen(set(wnids), 200)
    self.assertEqual(list(wnids), sorted(wnids))
    self.assertEqual(self.builder.info.features["label"].num_classes, 200)


class TinyImagenetContentTest(tfds.testing.TestCase):
  """Checks values, not just counts: labels, names, ids, pixels and the ignored test/."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    data_dir = tempfile.mkdtemp()
    builder = Builder(data_dir=data_dir)
    with mock.patch.object(tfds.download.DownloadManager, "download_and_extract",
                           lambda self, url: DUMMY_ROOT.parent):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(
              compute_stats=tfds.download.ComputeStatsMode.SKIP))
    cls.builder = builder
    cls.examples = {split: list(tfds.as_numpy(builder.as_dataset(split=split)))
                    for split in ("train", "validation")}

  def test_labels_names_and_ids(self):
    label = self.builder.info.features["label"]
    train = {ex["id"].decode(): ex for ex in self.examples["train"]}
    self.assertEqual(sorted(train), sorted(
        f"{w}_{n}.JPEG" for w in ("n01443537", "n01629819", "n01641577") for n in range(3)))
    for file_name, ex in train.items():
      self.assertEqual(label.int2str(ex["label"]), file_name.split("_")[0])
    self.assertEqual(train["n01443537_0.JPEG"]["label_name"], b"goldfish")
    self.assertEqual(train["n01629819_1.JPEG"]["label_name"], b"European fire salamander")
    self.assertEqual(train["n01641577_2.JPEG"]["label_name"], b"bullfrog")

    validation = {ex["id"].decode(): ex for ex in self.examples["validation"]}
    self.assertEqual(sorted(validation), [f"val_{i}.JPEG" for i in range(6)])
    annotations = tiny_imagenet_dataset_builder.read_val_annotations(
        DUMMY_ROOT / "val" / "val_annotations.txt")
    for file_name, ex in validation.items():
      self.assertEqual(label.int2str(ex["label"]), annotations[file_name])
    # test/ (unlabeled) is not part of any split.
    self.assertNotIn("test_0.JPEG", validation)

  def test_images_are_the_archive_jpegs(self):
    for split, examples in self.examples.items():
      for ex in examples:
        self.assertEqual(ex["image"].shape, (64, 64, 3), split)
        self.assertEqual(ex["image"].dtype, np.uint8)
    # Stored byte for byte (no second lossy encoding): the raw feature is the file.
    raw = self.builder.as_dataset(
        split="train", decoders={"image": tfds.decode.SkipDecoding()})
    for ex in tfds.as_numpy(raw):
      wnid = ex["id"].decode().split("_")[0]
      path = DUMMY_ROOT / "train" / wnid / "images" / ex["id"].decode()
      self.assertEqual(ex["image"], path.read_bytes())
    # The grayscale JPEG of the archive comes out as 3 equal channels.
    gray = next(e for e in self.examples["train"] if e["id"] == b"n01443537_2.JPEG")
    np.testing.assert_array_equal(gray["image"][..., 0], gray["image"][..., 1])
    np.testing.assert_array_equal(gray["image"][..., 0], gray["image"][..., 2])

  def test_rejects_foreign_class_and_wrong_size(self):
    with tempfile.TemporaryDirectory() as tmp:
      wnids = tiny_imagenet_dataset_builder.epath.Path(tmp) / "wnids.txt"
      wnids.write_text("n01443537\nn99999999\n")
      with self.assertRaisesRegex(ValueError, "n99999999"):
        tiny_imagenet_dataset_builder.read_wnids(wnids)
    buffer = io.BytesIO()
    Image.new("RGB", (32, 64)).save(buffer, format="JPEG")
    with self.assertRaisesRegex(ValueError, "64x64"):
      tiny_imagenet_dataset_builder._check_jpeg(buffer.getvalue(), "x.JPEG")

  def test_first_name(self):
    self.assertEqual(tiny_imagenet_dataset_builder.first_name(
        "goldfish, Carassius auratus"), "goldfish")
    self.assertEqual(tiny_imagenet_dataset_builder.first_name("entity"), "entity")


if __name__ == "__main__":
  tfds.testing.test_main()
