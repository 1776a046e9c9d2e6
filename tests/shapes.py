"""Small image folders with a real, learnable signal: one shape per class.

Random pixels cannot tell a working run from a broken one (every run is at chance), so
the small-data and health tests use pictures whose class is visible: a filled circle,
square or triangle (more shapes for more classes) of random colour, size and position on
a noisy background of another colour. A small CNN from scratch learns them in a few
hundred steps; a run that stays at chance has a real defect.
"""

from __future__ import annotations

import os

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar")


def draw(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
  """One (size, size, 3) uint8 image of `shape`."""
  from PIL import Image, ImageDraw
  background = rng.integers(0, 256, 3)
  noise = rng.normal(0, 20, (size, size, 3))
  image = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
  pen = ImageDraw.Draw(image)
  colour = tuple(int(c) for c in (background + 128 + rng.integers(-40, 40, 3)) % 256)
  r = rng.uniform(0.2, 0.35) * size
  cx, cy = rng.uniform(r, size - r, 2)
  box = (cx - r, cy - r, cx + r, cy + r)
  if shape == "circle":
    pen.ellipse(box, fill=colour)
  elif shape == "square":
    pen.rectangle(box, fill=colour)
  elif shape == "triangle":
    pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
  elif shape == "cross":
    w = r / 3
    pen.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    pen.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
  elif shape == "ring":
    pen.ellipse(box, outline=colour, width=max(2, int(r / 3)))
  else:
    pen.rectangle((cx - r, cy - r / 4, cx + r, cy + r / 4), fill=colour)
  return np.asarray(image)


def write_folder(root, counts: dict, size: int = 48, seed: int = 0, fmt: str = "png"):
  """Writes `root/<split>/<class>/<i>.png` (or `root/<class>/...` for split "").

  Args:
    root: the folder to create.
    counts: {split folder ("" for the flat layout): {class name: images}}; class names
      that are in SHAPES draw that shape, others draw SHAPES[index of the class].
    size: image side in pixels.
    seed: the generator's seed (the same seed writes the same files).
    fmt: file extension.
  """
  from PIL import Image
  rng = np.random.default_rng(seed)
  for split, classes in counts.items():
    for index, (name, n) in enumerate(sorted(classes.items())):
      shape = name if name in SHAPES else SHAPES[index % len(SHAPES)]
      folder = os.path.join(str(root), split, name) if split else os.path.join(str(root), name)
      os.makedirs(folder, exist_ok=True)
      for i in range(n):
        Image.fromarray(draw(shape, size, rng)).save(os.path.join(folder, f"{i:03d}.{fmt}"))
  return str(root)
