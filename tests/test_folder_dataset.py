"""`--dataset=folder:/path`: the user's own photos, mixed sizes and formats, end to end."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tfbackbones import results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
skimage_data = pytest.importorskip("skimage.data")


def _write_photo_folder(root):
  """Two classes of real photos (scikit-image) as JPEG, PNG (8/16-bit, palette), BMP,
  grayscale and CMYK JPEG, in mixed sizes: what a user's folder looks like."""
  from PIL import Image
  sources = {"animal": [skimage_data.chelsea(), skimage_data.cat()],
             "scene": [skimage_data.astronaut(), skimage_data.coffee()]}
  rng = np.random.default_rng(0)
  for label, photos in sources.items():
    os.makedirs(os.path.join(root, label))
    for i in range(12):
      photo = photos[i % len(photos)]
      h, w = photo.shape[:2]
      ch, cw = int(rng.integers(h // 3, h)), int(rng.integers(w // 3, w))
      y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
      image = Image.fromarray(photo[y:y + ch, x:x + cw])
      path = os.path.join(root, label, f"{label}_{i:02d}")
      kind = i % 6
      if kind == 0:
        image.save(path + ".jpg", quality=90)
      elif kind == 1:
        image.save(path + ".png")
      elif kind == 2:
        image.convert("P", palette=Image.ADAPTIVE).save(path + ".png")
      elif kind == 3:
        image.save(path + ".bmp")
      elif kind == 4:
        gray16 = (np.asarray(image.convert("L"), np.uint16) * 257)
        Image.fromarray(gray16).save(path + ".png")
      else:
        image.convert("CMYK").save(path + ".jpg", quality=90)


def test_folder_of_real_mixed_photos_trains_end_to_end(tmp_path):
  folder = tmp_path / "photos"
  _write_photo_folder(str(folder))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
      [sys.executable, "-m", "tfbackbones.train", f"--dataset=folder:{folder}",
       "--backbone=mobilenet_v3_small", "--weights=none", "--image_size=32",
       "--batch_size=4", "--max_epochs=2", "--val_fraction=0.2",
       f"--data_dir={tmp_path}/tfds", f"--workdir={tmp_path}/run"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
  result = results.read(str(tmp_path / "run" / "result.json"))
  assert result is not None, proc.stderr[-3000:]
  # Two epochs from random init may not beat the majority class: then the run is
  # (rightly) degenerate and the CLI exits 1. Either way it trained end to end.
  assert result.status in ("finished", "degenerate"), proc.stderr[-3000:]
  assert proc.returncode == (0 if result.status == "finished" else 1), proc.stderr[-3000:]
  assert result.num_classes == 2 and result.data["skipped_files"] == 0
  counts = result.split_counts
  assert counts["train"] + counts["val"] + counts["test"] == 24
  assert result.test["count"] == counts["test"] > 0


def test_missing_folder_is_a_clear_error(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
      [sys.executable, "-m", "tfbackbones.train", f"--dataset=folder:{tmp_path}/nothing",
       "--backbone=mobilenet_v3_small", "--weights=none", "--image_size=32",
       f"--data_dir={tmp_path}/tfds", f"--workdir={tmp_path}/run"],
      cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "nothing" in proc.stderr and "Traceback" not in proc.stderr
