"""Tests for the neu_surface_defects builder (manual download), offline.

The harness passes `dummy_data/` as the manual directory; it holds `NEU-CLS.zip` (30
real-format BMPs, see make_dummy_data.py). Extra tests extract the same images into the
folder form with a mirror-like layout, add a truncated BMP, and check the errors given
when the manual files are missing.
"""

import collections
import socket
import tempfile
import time
import zipfile
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfbackbones.data.splits import stratified_split
from tfds_builders.neu_surface_defects import neu_surface_defects_dataset_builder as neu

Builder = neu.Builder
DUMMY_ZIP = Builder.code_path.parent / "dummy_data" / "NEU-CLS.zip"
PREFIX_OF = {"crazing": "Cr", "inclusion": "In", "patches": "Pa", "pitted_surface": "PS",
             "rolled-in_scale": "RS", "scratches": "Sc"}


def _no_network(*args, **kwargs):
  raise AssertionError(f"a manual-download builder must not connect: {args}")


def _build(manual_dir):
  """Builds from `manual_dir` into a fresh data_dir with sockets disabled."""
  builder = Builder(data_dir=tempfile.mkdtemp())
  with mock.patch.object(socket.socket, "connect", _no_network), \
       mock.patch.object(socket, "create_connection", _no_network):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP))
  return builder


def _read(builder):
  return {split: list(tfds.as_numpy(builder.as_dataset(split=split)))
          for split in ("train", "test")}


def _assignment(examples):
  return {ex["id"].decode(): split for split, exs in examples.items() for ex in exs}


class NeuSurfaceDefectsTest(tfds.testing.DatasetBuilderTestCase):
  """The standard TFDS builder checks, on dummy_data/NEU-CLS.zip as the manual dir."""

  DATASET_CLASS = Builder
  SPLITS = {"train": 24, "test": 6}


class NeuContentTest(tfds.testing.TestCase):
  """Values, layouts, corrupt files and missing-file errors."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.zip_examples = _read(_build(DUMMY_ZIP.parent))

  def test_zip_build_values(self):
    with zipfile.ZipFile(DUMMY_ZIP) as zf:
      originals = {name.split("/")[-1]: zf.read(name) for name in zf.namelist()
                   if name.endswith(".bmp")}
    label = tfds.features.ClassLabel(names=neu.CLASS_NAMES)
    for split, examples in self.zip_examples.items():
      for ex in examples:
        name = ex["id"].decode()
        self.assertEqual(ex["image"].shape, (200, 200, 1))
        self.assertEqual(name.split("_")[0], PREFIX_OF[label.int2str(ex["label"])])
        expected = neu.decode_bmp(originals[name], name)
        np.testing.assert_array_equal(ex["image"], expected, err_msg=f"{split} {name}")
    ids = sorted(originals)
    test_ids, train_ids = stratified_split(
        ids, [neu.parse_name(i)[1] for i in ids], fraction=0.2, seed=0)
    assignment = _assignment(self.zip_examples)
    self.assertEqual(sorted(i for i, s in assignment.items() if s == "test"), test_ids)
    self.assertEqual(sorted(i for i, s in assignment.items() if s == "train"), train_ids)
    per_class = collections.Counter(i.split("_")[0] for i in test_ids)
    self.assertEqual(per_class, {p: 1 for p in PREFIX_OF.values()})

  def test_folder_layout_and_truncated_file(self):
    """A Kaggle-like tree, odd spellings, junk files and one truncated BMP."""
    manual = epath.Path(tempfile.mkdtemp())
    root = manual / "NEU-CLS" / "NEU Metal Surface Defects Data"
    with zipfile.ZipFile(DUMMY_ZIP) as zf:
      for member in zf.namelist():
        name = member.split("/")[-1]
        if not name.endswith(".bmp"):
          continue
        prefix, n = name[:-4].split("_")
        subset = "test" if n == "1" else "train"
        data = zf.read(member)
        if name == "Sc_3.bmp":
          name, data = "sc_003.BMP", data  # another spelling of the same id
        if name == "PS_2.bmp":
          data = data[:20_000]  # truncated mid-pixels
        folder = root / subset / prefix
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (root / "train" / "Cr" / "Cr_1.xml").write_text("<annotation/>")  # ignored
    (root / "readme.txt").write_text("NEU-CLS mirror")  # ignored

    with self.assertLogs("PS_2.bmp", level="warning"):
      examples = _read(_build(manual))
    assignment = _assignment(examples)
    self.assertNotIn("PS_2.bmp", assignment)
    self.assertIn("Sc_3.bmp", assignment)
    # Same ids, same split as the zip build, except the one skipped file.
    expected = _assignment(self.zip_examples)
    del expected["PS_2.bmp"]
    self.assertEqual(assignment, expected)

  def test_empty_manual_dir_names_what_to_download(self):
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as empty:
      with self.assertRaises(AssertionError) as raised:
        _build(empty)
    message = str(raised.exception)
    for expected in ("NEU-CLS", "Cr_<n>.bmp", "kaggle.com", "NEU-CLS.zip", "manual"):
      self.assertIn(expected, message)
    self.assertLess(time.monotonic() - start, 30)

  def test_wrong_manual_files_name_what_to_download(self):
    with tempfile.TemporaryDirectory() as tmp:
      (epath.Path(tmp) / "archive.zip").write_bytes(b"PK")  # a mirror's default name
      with self.assertRaisesRegex(FileNotFoundError, "NEU-CLS.zip") as raised:
        _build(tmp)
      self.assertIn("kaggle.com", str(raised.exception))
      # A NEU-CLS folder with no correctly named BMP is refused too.
      (epath.Path(tmp) / "NEU-CLS").mkdir()
      (epath.Path(tmp) / "NEU-CLS" / "img1.jpg").write_bytes(b"x")
      with self.assertRaisesRegex(FileNotFoundError, "Cr|In|Pa|PS|RS|Sc"):
        _build(tmp)

  def test_parse_name(self):
    self.assertEqual(neu.parse_name("Cr_1.bmp"), ("Cr_1.bmp", "crazing"))
    self.assertEqual(neu.parse_name("ps_010.BMP"), ("PS_10.bmp", "pitted_surface"))
    self.assertEqual(neu.parse_name("RS_300.bmp"), ("RS_300.bmp", "rolled-in_scale"))
    for not_neu in ("Cr_1.jpg", "._Cr_1.bmp", "crazing_1.bmp", "Cr1.bmp", "Thumbs.db"):
      self.assertIsNone(neu.parse_name(not_neu), not_neu)

  def test_decode_rejects_wrong_size_and_skips_garbage(self):
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("L", (64, 64)).save(buffer, format="BMP")
    with self.assertRaisesRegex(ValueError, "200x200"):
      neu.decode_bmp(buffer.getvalue(), "Cr_1.bmp")
    self.assertIsNone(neu.decode_bmp(b"not a bitmap at all, not at all", "Cr_2.bmp"))

  def test_duplicates(self):
    manual = epath.Path(tempfile.mkdtemp())
    with zipfile.ZipFile(DUMMY_ZIP) as zf:
      cr1, cr2 = zf.read("NEU-CLS/Cr_1.bmp"), zf.read("NEU-CLS/Cr_2.bmp")
    for folder in ("a", "b"):
      (manual / folder).mkdir()
      (manual / folder / "Cr_1.bmp").write_bytes(cr1)
    images = neu.list_folder(manual)
    self.assertLen(images, 2)
    reader = neu._Reader()
    self.assertLen(neu.deduplicate(images, reader), 1)
    (manual / "b" / "Cr_1.bmp").write_bytes(cr2)
    with self.assertRaisesRegex(ValueError, "Two different images"):
      neu.deduplicate(neu.list_folder(manual), reader)


if __name__ == "__main__":
  tfds.testing.test_main()
