"""Writes dummy_data/: a tiny class-per-folder tree in every format the builder converts.

Run from the repository root: `python -m tfds_builders.image_folder.make_dummy_data`.
The images are small synthetic gradients (a few hundred bytes each), so that the
committed test data stays tiny; the builder test on real photos (scikit-image) writes
its files to a temporary folder instead.
"""

import io
import pathlib

import numpy as np
from PIL import Image

DUMMY_DIR = pathlib.Path(__file__).parent / "dummy_data"


def gradient(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
  """A smooth uint8 test pattern with some noise (so formats really compress it)."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width]
  planes = [(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
            ((x + y) * 127 // max(height + width - 2, 1))][:channels]
  noise = rng.integers(-8, 9, (height, width, channels))
  image = np.stack(planes, axis=-1).astype(np.int32) + noise
  return np.clip(image, 0, 255).astype(np.uint8)


def save(image: Image.Image, path: pathlib.Path, **kwargs) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  image.save(path, **kwargs)


def truncated_jpeg(path: pathlib.Path) -> None:
  buffer = io.BytesIO()
  Image.fromarray(gradient(16, 16, seed=99)).save(buffer, format="JPEG", quality=90)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def main() -> None:
  cat, dog = DUMMY_DIR / "cat", DUMMY_DIR / "dog"
  save(Image.fromarray(gradient(9, 12, seed=1)), cat / "rgb.jpg", quality=90)
  save(Image.fromarray(gradient(10, 8, 1, seed=2)[..., 0], "L"), cat / "gray.jpg", quality=90)
  rgba = np.concatenate([gradient(7, 11, seed=3), np.full((7, 11, 1), 128, np.uint8)], -1)
  save(Image.fromarray(rgba, "RGBA"), cat / "rgba.png")
  save(Image.fromarray(gradient(8, 8, seed=4)).quantize(colors=16), cat / "palette.png")
  save(Image.fromarray(gradient(6, 10, seed=5)), cat / "photo.bmp")
  save(Image.fromarray(gradient(12, 5, seed=6)), cat / "nested" / "deep.png")
  sixteen = (gradient(9, 9, 1, seed=7)[..., 0].astype(np.uint16) * 257)
  save(Image.fromarray(sixteen), cat / "sixteen.png")
  truncated_jpeg(cat / "truncated.jpg")
  (cat / "notes.txt").write_text("not an image: ignored by the builder\n")

  save(Image.fromarray(gradient(10, 10, seed=8)).convert("CMYK"), dog / "cmyk.jpg", quality=90)
  la = np.stack([gradient(8, 6, 1, seed=9)[..., 0], np.full((8, 6), 200, np.uint8)], -1)
  save(Image.fromarray(la, "LA"), dog / "la.png")
  save(Image.fromarray(gradient(11, 7, seed=10)), dog / "rgb.png")
  rotated = Image.fromarray(gradient(6, 14, seed=11))
  exif = rotated.getexif()
  exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
  save(rotated, dog / "rotated.jpg", quality=90, exif=exif.tobytes())
  save(Image.fromarray(gradient(9, 9, seed=12)).quantize(colors=8), dog / "tiny.gif")
  save(Image.fromarray(gradient(5, 13, seed=13)), dog / "scan.tif")


if __name__ == "__main__":
  main()
