"""Tests for the image_folder builder: dummy tree, real photos, layouts, staleness."""

import io
import os
import pathlib
import tempfile
import time
import unittest

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders.image_folder import folder_lib
from tfds_builders.image_folder import image_folder_dataset_builder as ifb

try:
  import skimage.data
except ImportError:  # scikit-image is a test-only dependency.
  skimage = None

Builder = ifb.Builder


def _prepare(builder, manual_dir=None):
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _examples(builder, split, raw=False):
  """{id: example} of a split; raw=True keeps the stored image bytes undecoded."""
  decoders = {"image": tfds.decode.SkipDecoding()} if raw else None
  ds = builder.as_dataset(split=split, decoders=decoders)
  return {ex["id"].decode(): ex for ex in tfds.as_numpy(ds)}


def _write(image: Image.Image, path: pathlib.Path, **kwargs) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path, **kwargs)
  return path


class ImageFolderDummyDataTest(tfds.testing.DatasetBuilderTestCase):
  """The standard TFDS checks on dummy_data/ (flat layout, every converted format)."""

  DATASET_CLASS = Builder
  # dummy_data: cat 9 image files (one truncated) + notes.txt, dog 6 image files.
  # stratified 80/20 keyed on paths (seed 0): test = cat/gray.jpg, cat/sixteen.png,
  # dog/cmyk.jpg; the truncated cat/truncated.jpg falls in train and is skipped.
  SPLITS = {"train": 10, "test": 3}

  def test_skipped_file_is_named_logged_and_counted(self):
    builder = Builder(data_dir=tempfile.mkdtemp(dir=self.tmp_dir))
    with self.assertLogs("cat/truncated.jpg", level="warning"):
      _prepare(builder, manual_dir=os.fspath(self.dummy_data))
    self.assertEqual(builder.info.metadata["num_skipped"], 1)
    skipped = builder.info.metadata["skipped_files"]
    self.assertEqual([s["file"] for s in skipped["train"]], ["cat/truncated.jpg"])
    self.assertEqual(skipped["test"], [])
    self.assertEqual(builder.info.metadata["num_ignored_files"], 1)  # notes.txt
    self.assertEqual(builder.info.features["label"].names, ["cat", "dog"])
    # The count survives a reload from the prepared files.
    reloaded = Builder(data_dir=builder.data_dir_root)
    self.assertEqual(reloaded.info.metadata["num_skipped"], 1)
    self.assertEqual(reloaded.info.features["label"].names, ["cat", "dog"])

  def test_images_are_rgb_and_converted_as_documented(self):
    builder = _prepare(Builder(data_dir=tempfile.mkdtemp(dir=self.tmp_dir)),
                       manual_dir=os.fspath(self.dummy_data))
    examples = {**_examples(builder, "train"), **_examples(builder, "test")}
    raw = {**_examples(builder, "train", raw=True), **_examples(builder, "test", raw=True)}
    root = pathlib.Path(self.dummy_data)
    for rel, ex in examples.items():
      self.assertEqual(ex["image"].ndim, 3, rel)
      self.assertEqual(ex["image"].shape[-1], 3, rel)
    # 8-bit RGB/gray JPEG and PNG are stored byte for byte.
    for rel in ("cat/rgb.jpg", "cat/gray.jpg", "dog/rgb.png", "cat/nested/deep.png"):
      self.assertEqual(raw[rel]["image"], (root / rel).read_bytes(), rel)
    # Lossless conversions: exact pixels.
    sixteen = np.asarray(Image.open(root / "cat/sixteen.png")).astype(np.float64)
    np.testing.assert_array_equal(examples["cat/sixteen.png"]["image"][..., 0],
                                  np.floor(sixteen / 257 + 0.5).astype(np.uint8))
    for rel in ("cat/palette.png", "dog/cmyk.jpg", "cat/photo.bmp", "dog/tiny.gif",
                "dog/scan.tif", "cat/rgba.png"):
      expected = np.asarray(Image.open(root / rel).convert("RGB"))
      if rel in ("cat/palette.png", "dog/tiny.gif"):
        expected = np.asarray(Image.open(root / rel).convert("RGBA").convert("RGB"))
      np.testing.assert_array_equal(examples[rel]["image"], expected, rel)
    la = np.asarray(Image.open(root / "dog/la.png"))[..., 0]
    np.testing.assert_array_equal(examples["dog/la.png"]["image"],
                                  np.repeat(la[..., None], 3, -1))
    # EXIF orientation 6: stored 14 wide x 6 high, shown (and stored) 6 wide x 14 high.
    self.assertEqual(examples["dog/rotated.jpg"]["image"].shape, (14, 6, 3))


class ImageFolderRealPhotosTest(tfds.testing.TestCase):
  """make_builder on real photos from scikit-image in every format, plus layouts."""

  def _tree(self) -> pathlib.Path:
    return pathlib.Path(tempfile.mkdtemp(dir=self.tmp_dir)) / "My Photos!"

  @unittest.skipIf(skimage is None, "needs scikit-image (test dependency)")
  def test_real_photos_in_mixed_formats(self):
    root = self._tree()
    astronaut, chelsea = skimage.data.astronaut(), skimage.data.chelsea()
    coffee, camera = skimage.data.coffee(), skimage.data.camera()
    expected = {}  # rel -> expected decoded RGB array (lossless cases only)

    def put(rel, array, **kwargs):
      path = _write(Image.fromarray(array), root / rel, **kwargs)
      return path

    put("astronaut/astronaut.jpg", astronaut, quality=92)
    path = _write(Image.fromarray(astronaut).resize((200, 150)), root / "astronaut/small.png")
    expected["astronaut/small.png"] = np.asarray(Image.open(path))
    gray16 = (camera.astype(np.uint16) * 257 + 128)[:300, :400]
    put("camera/camera16.png", gray16)
    expected["camera/camera16.png"] = np.repeat(
        np.floor(gray16 / 257 + 0.5).astype(np.uint8)[..., None], 3, -1)
    put("camera/camera.png", camera)
    expected["camera/camera.png"] = np.repeat(camera[..., None], 3, -1)
    put("camera/camera.jpg", camera, quality=90)
    path = _write(Image.fromarray(camera).convert("1"), root / "camera/bilevel.png")
    expected["camera/bilevel.png"] = np.repeat(
        np.asarray(Image.open(path).convert("L"))[..., None], 3, -1)
    put("cat/chelsea.jpg", chelsea, quality=95)
    put("cat/chelsea.bmp", chelsea)
    expected["cat/chelsea.bmp"] = chelsea
    path = _write(Image.fromarray(chelsea).quantize(colors=64), root / "cat/palette.png")
    expected["cat/palette.png"] = np.asarray(Image.open(path).convert("RGBA").convert("RGB"))
    rgba = np.concatenate([chelsea, np.full(chelsea.shape[:2] + (1,), 90, np.uint8)], -1)
    put("cat/rgba.png", rgba)
    expected["cat/rgba.png"] = chelsea
    path = _write(Image.fromarray(coffee).convert("CMYK"), root / "coffee/cmyk.jpg", quality=95)
    expected["coffee/cmyk.jpg"] = np.asarray(Image.open(path).convert("RGB"))
    put("coffee/coffee.webp", coffee, lossless=True)
    expected["coffee/coffee.webp"] = coffee
    put("coffee/coffee.tif", coffee)
    expected["coffee/coffee.tif"] = coffee
    put("coffee/coffee.jpg", coffee, quality=85)
    broken = io.BytesIO()
    Image.fromarray(chelsea).save(broken, format="PNG")
    (root / "cat/broken.png").write_bytes(broken.getvalue()[:5000])

    builder = ifb.make_builder(os.fspath(root), data_dir=os.path.join(self.tmp_dir, "tfds"))
    self.assertRegex(builder.builder_config.name, r"^my_photos_[0-9a-f]{10}$")
    with self.assertLogs("cat/broken.png", level="warning"):
      builder.download_and_prepare()
    self.assertEqual(builder.info.features["label"].names,
                     ["astronaut", "camera", "cat", "coffee"])
    self.assertEqual(builder.info.metadata["num_skipped"], 1)
    examples = {**_examples(builder, "train"), **_examples(builder, "test")}
    raw = {**_examples(builder, "train", raw=True), **_examples(builder, "test", raw=True)}
    self.assertLen(examples, 14)  # 15 files, one broken
    self.assertNotIn("cat/broken.png", examples)
    for rel, array in expected.items():
      np.testing.assert_array_equal(examples[rel]["image"], array, rel)
    for rel in ("astronaut/astronaut.jpg", "camera/camera.jpg", "cat/chelsea.jpg",
                "coffee/coffee.jpg"):
      self.assertEqual(raw[rel]["image"], (root / rel).read_bytes(), rel)  # as is
      reference = np.asarray(Image.open(root / rel).convert("RGB")).astype(np.int32)
      # TFDS decodes JPEG with TF's default (fast integer) IDCT: within a few levels of
      # PIL; with dct_method="INTEGER_ACCURATE" TF matches PIL exactly.
      decoded = examples[rel]["image"].astype(np.int32)
      self.assertEqual(decoded.shape, reference.shape)
      self.assertLess(np.abs(decoded - reference).mean(), 2.0, rel)
      accurate = tf.io.decode_jpeg(raw[rel]["image"], channels=3,
                                   dct_method="INTEGER_ACCURATE").numpy()
      np.testing.assert_array_equal(accurate, reference, rel)
    for ex in examples.values():
      self.assertEqual(ex["image"].shape[-1], 3)
      self.assertEqual(ex["image"].dtype, np.uint8)
    # Every class is in both splits (2 to 5 files per class; at least one test each).
    for split in ("train", "test"):
      labels = {int(ex["label"]) for ex in _examples(builder, split).values()}
      self.assertEqual(labels, {0, 1, 2, 3}, split)

  def test_split_layout_with_validation_folder(self):
    root = self._tree()
    image = Image.fromarray(np.full((4, 5, 3), 77, np.uint8))
    for rel in ("train/a/1.png", "train/a/2.png", "train/b/1.png", "test/a/3.png",
                "test/b/2.png", "val/b/3.png"):
      _write(image, root / rel)
    builder = _prepare(ifb.make_builder(os.fspath(root), os.path.join(self.tmp_dir, "d")))
    self.assertEqual(builder.info.metadata["layout"], "split")
    self.assertEqual({s: builder.info.splits[s].num_examples for s in builder.info.splits},
                     {"train": 3, "test": 2, "validation": 1})
    self.assertEqual(set(_examples(builder, "validation")), {"val/b/3.png"})
    self.assertEqual(set(_examples(builder, "test")), {"test/a/3.png", "test/b/2.png"})

  def test_train_and_val_only_means_val_is_the_test_set(self):
    # The paper's reference code reads PlantCLEF as train/ + val/ and tests on val/.
    root = self._tree()
    image = Image.fromarray(np.zeros((3, 3, 3), np.uint8))
    for rel in ("train/a/1.png", "train/b/1.png", "val/a/2.png"):
      _write(image, root / rel)
    self.assertEqual(folder_lib.split_layout(root), {"train": "train", "test": "val"})
    _write(image, root / "other/c/1.png")
    with self.assertRaisesRegex(ValueError, "other"):
      folder_lib.split_layout(root)

  def test_flat_split_is_stratified_deterministic_and_keyed_on_paths(self):
    root = self._tree()
    image = Image.fromarray(np.zeros((3, 3, 3), np.uint8))
    for i in range(10):
      _write(image, root / "a" / f"{i}.png")
    for i in range(5):
      _write(image, root / "b" / "sub" / f"{i}.png")
    folder = folder_lib.scan(root)
    first = folder_lib.assign_splits(folder, 0.2, seed=0)
    self.assertEqual(first, folder_lib.assign_splits(folder_lib.scan(root), 0.2, seed=0))
    self.assertEqual(sorted(label for _, label in first["test"]), [0, 0, 1])
    self.assertNotEqual(first, folder_lib.assign_splits(folder, 0.2, seed=1))
    self.assertTrue(all(rel.startswith("b/sub/") for rel, label in first["test"]
                        if label == 1))

  def test_empty_class_folder_is_an_error(self):
    root = self._tree()
    _write(Image.fromarray(np.zeros((3, 3, 3), np.uint8)), root / "a" / "1.png")
    (root / "empty").mkdir()
    with self.assertRaisesRegex(ValueError, "empty"):
      folder_lib.scan(root)

  def test_changed_folder_is_reported_stale(self):
    root = self._tree()
    image = Image.fromarray(np.zeros((3, 3, 3), np.uint8))
    for rel in ("a/1.png", "a/2.png", "b/1.png", "b/2.png"):
      _write(image, root / rel)
    data_dir = os.path.join(self.tmp_dir, "tfds")
    _prepare(ifb.make_builder(os.fspath(root), data_dir))
    again = ifb.make_builder(os.fspath(root), data_dir)  # unchanged: reused
    self.assertTrue(again.is_prepared())
    _write(image, root / "b" / "3.png")
    with self.assertRaisesRegex(ifb.StaleFolderError, "Delete that directory"):
      ifb.make_builder(os.fspath(root), data_dir)

  def test_config_name_is_stable_per_absolute_path(self):
    base = pathlib.Path(tempfile.mkdtemp(dir=self.tmp_dir))
    one, two = base / "x" / "Photos", base / "y" / "Photos"
    self.assertEqual(ifb.config_for_path(one).name, ifb.config_for_path(str(one)).name)
    self.assertNotEqual(ifb.config_for_path(one).name, ifb.config_for_path(two).name)
    self.assertTrue(ifb.config_for_path(one).name.startswith("photos_"))
    self.assertEqual(ifb.config_for_path(one).root, str(one.resolve()))

  def test_missing_folder_fails_fast_with_instructions(self):
    missing = os.path.join(self.tmp_dir, "does", "not", "exist")
    start = time.monotonic()
    with self.assertRaisesRegex(FileNotFoundError, "not found: give a folder with one sub-folder"):
      ifb.make_builder(missing, data_dir=os.path.join(self.tmp_dir, "tfds"))
    # The default config reads the manual dir: an empty one fails the same way.
    empty = tempfile.mkdtemp(dir=self.tmp_dir)
    with self.assertRaises((FileNotFoundError, AssertionError, ValueError)):
      _prepare(Builder(data_dir=os.path.join(self.tmp_dir, "tfds2")), manual_dir=empty)
    self.assertLess(time.monotonic() - start, 10.0)


if __name__ == "__main__":
  tfds.testing.test_main()
