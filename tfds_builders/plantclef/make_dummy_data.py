"""Writes dummy_data/plantclef/: train/ and test/ class folders of tiny plant-ish JPEGs.

Run from the repository root: `python -m tfds_builders.plantclef.make_dummy_data`.
Three classes named by PlantCLEF species ids; 4 train and 2 test images each, of mixed
sizes; one test image is truncated.
"""

import io
import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).parent / "dummy_data" / "plantclef"
CLASSES = ("105951", "130657", "29990")
TRUNCATED = "test/130657/84210.jpg"


def leaf(seed: int) -> bytes:
  """A tiny green-ish JPEG of a seed-dependent size."""
  rng = np.random.default_rng(seed)
  height, width = 6 + seed % 5, 8 + seed % 3
  pixels = np.array([60, 140, 50]) + rng.integers(-30, 31, (height, width, 3))
  buffer = io.BytesIO()
  Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
      buffer, format="JPEG", quality=90)
  return buffer.getvalue()


def main() -> None:
  seed = 0
  for split, count in (("train", 4), ("test", 2)):
    for name in CLASSES:
      folder = ROOT / split / name
      folder.mkdir(parents=True, exist_ok=True)
      for _ in range(count):
        seed += 1
        (folder / f"{80000 + seed * 101}.jpg").write_bytes(leaf(seed))
  truncated = ROOT / TRUNCATED
  truncated.write_bytes(leaf(1000)[:200])


if __name__ == "__main__":
  main()
