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


def test_predict_keeps_one_full_size_image_in_memory_at_a_time(tmp_path, monkeypatch,
                                                                capsys):
  """predict used to decode every file at full size before resizing any: a folder of
  100 phone photos (12 MP, 36 MB each decoded) took ~3.6 GB (8 of them: 477 MB peak
  RSS). Each image is now resized as soon as it is decoded."""
  from absl import flags

  from tfbackbones import predict
  from tfbackbones.deploy import images, runtimes
  _files(tmp_path)
  model = tmp_path / "m.tflite"
  model.write_bytes(b"")
  alive, peak = [0], [0]
  real_read = images.read_rgb

  class Tracked(np.ndarray):
    def __del__(self):
      alive[0] -= 1

  def read(path):
    alive[0] += 1
    peak[0] = max(peak[0], alive[0])
    return real_read(path).view(Tracked)

  class Model:
    height, width, class_names = 16, 16, ["a", "b"]

    def predict(self, batch):
      assert batch.shape == (3, 16, 16, 3)
      return np.tile([0.25, 0.75], (len(batch), 1))

  monkeypatch.setattr(images, "read_rgb", read)
  monkeypatch.setattr(runtimes, "open_model", lambda path, threads=None: Model())
  flags.FLAGS(["predict", f"--model={model}", "--top_k=1"])
  try:
    predict.main(["predict", str(tmp_path)])
  finally:
    flags.FLAGS.unparse_flags()
  assert capsys.readouterr().out.count("b 0.7500") == 3 and peak[0] == 1
