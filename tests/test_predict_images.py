"""predict's image reading (tfbackbones/deploy/images.py) gives the picture training saw.

Training reads a folder through its prepared copy, which turns EXIF-rotated photos
upright and scales 16-bit images by 255/65535 (`image_codec.prepared_pixels`). predict
must hand a model the same picture, and must do it without importing TensorFlow.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _files(tmp_path):
  from PIL import Image
  rng = np.random.default_rng(0)
  photo = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
  exif = photo.getexif()
  exif[0x0112] = 6  # a phone held upright: stored sideways, shown turned
  photo.save(tmp_path / "rotated.jpg", exif=exif)
  deep = rng.uniform(0, 65535, (20, 24)).astype(np.uint16)
  Image.fromarray(deep).save(tmp_path / "deep.png")
  Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).convert("CMYK").save(
      tmp_path / "cmyk.jpg")
  return ["rotated.jpg", "deep.png", "cmyk.jpg"]


def test_files_read_as_a_prepared_copy_holds_them(tmp_path):
  from tfbackbones.deploy import images
  from tfds_builders.image_folder import image_codec
  for name in _files(tmp_path):
    path = str(tmp_path / name)
    with open(path, "rb") as f:
      theirs = np.asarray(image_codec.prepared_pixels(f.read(), path).convert("RGB"))
    ours = images.read_rgb(path)
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs), name


def test_reading_imports_no_tensorflow(tmp_path):
  names = _files(tmp_path)
  code = ("import sys; from tfbackbones.deploy import images; "
          f"[images.read_rgb(p) for p in {[str(tmp_path / n) for n in names]!r}]; "
          "print(sorted(m for m in ('tensorflow', 'tensorflow_datasets') "
          "if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, cwd=ROOT)
  assert out.stdout.strip() == "[]"


def test_unreadable_files_are_image_errors(tmp_path):
  from tfbackbones.deploy import images
  (tmp_path / "notes.jpg").write_text("not an image")
  (tmp_path / "zero.png").write_bytes(b"")
  for name in ("notes.jpg", "zero.png"):
    with pytest.raises(images.ImageError, match="not a readable image"):
      images.read_rgb(str(tmp_path / name))


def test_images_are_resized_as_they_are_decoded(tmp_path, monkeypatch):
  """predict used to decode every file at full size before resizing any: a folder of
  100 phone photos (12 MP, 36 MB each decoded) took ~3.6 GB (8 of them: 477 MB peak
  RSS). Each image is now resized as soon as it is decoded: one full-size image alive at
  a time. (Tested on `images.load_found`, predict's only reader, rather than through
  predict.main: importing that entry point defines absl flags that other entry points
  define too, which fails under xdist.)"""
  from tfbackbones.deploy import images
  names = _files(tmp_path)
  alive, peak = [0], [0]
  real_read = images.read_rgb

  class Tracked(np.ndarray):
    def __del__(self):
      alive[0] -= 1

  def read(path):
    alive[0] += 1
    peak[0] = max(peak[0], alive[0])
    return real_read(path).view(Tracked)

  monkeypatch.setattr(images, "read_rgb", read)
  batch, kept, skipped = images.load_found(images.find_images([str(tmp_path)]), 16, 16)
  assert batch.shape == (3, 16, 16, 3) and skipped == []
  assert sorted(os.path.basename(p) for p in kept) == sorted(names)
  assert peak[0] == 1


def test_unreadable_files_in_a_folder_are_skipped_named_ones_are_errors(tmp_path):
  """One stray non-image in a folder must not cost the folder's predictions (preparation
  and the recommender skip such files too); a file the user names is still an error."""
  from tfbackbones.deploy import images
  _files(tmp_path)
  (tmp_path / "notes.jpg").write_text("not an image")
  found = images.find_images([str(tmp_path)])
  batch, kept, skipped = images.load_found(found, 8, 8)
  assert len(batch) == len(kept) == 3
  assert [os.path.basename(p) for p, _ in skipped] == ["notes.jpg"]
  assert "not a readable image" in skipped[0][1]
  with pytest.raises(images.ImageError, match="notes.jpg: not a readable image"):
    images.load_found(images.find_images([str(tmp_path / "notes.jpg")]), 8, 8)
  only_bad = tmp_path / "bad"
  only_bad.mkdir()
  (only_bad / "a.png").write_text("x")
  with pytest.raises(images.ImageError, match="none of the 1 images could be read"):
    images.load_found(images.find_images([str(only_bad)]), 8, 8)
