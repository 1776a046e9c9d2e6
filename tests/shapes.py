"""Small image folders with a real, learnable signal: one shape per class.

Random pixels cannot tell a working run from a broken one (every run is at chance), so
the small-data and health tests use pictures whose class is visible: circles, squares or
triangles (more shapes for more classes) of one random colour on a noisy background of
another colour, one shape in each 16-pixel cell of the image (a 64-pixel image holds a
4x4 grid of them, a 24-pixel one a single shape). Colour and position say nothing about
the class, so a linear model on pixels stays at chance; the local shape does.

Why a grid and not one big shape (issue 19, measured in docs/results.md): the class is
then a texture, like the photos of a real small folder, which a backbone ending in
global average pooling learns from a few hundred images. One large shape per image is a
different task: on 180 such 64-pixel images a plain Keras EfficientNetV2-B0 from
scratch (`model.fit`, batch 16, 20 epochs) reached 0.97 train but 0.38 test top-1, and a
small CNN learned it only with global *max* pooling. The grid folder reaches 0.68 test
top-1 with the trainer's default flags, and still shows the issue's symptom at 2 steps an
epoch: validation at or below 1/3 in 17 of 20 epochs (7/18 in the others) while the train
loss falls from 1.36 to 0.51.
"""

from __future__ import annotations

import os

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar")


CELL = 16  # pixels per shape


def _shape(pen, shape: str, cx: float, cy: float, r: float, colour: tuple) -> None:
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


def draw(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
  """One (size, size, 3) uint8 image: `shape` once in each CELL-pixel cell."""
  from PIL import Image, ImageDraw
  background = rng.integers(0, 256, 3)
  noise = rng.normal(0, 20, (size, size, 3))
  image = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
  pen = ImageDraw.Draw(image)
  colour = tuple(int(c) for c in (background + 128 + rng.integers(-40, 40, 3)) % 256)
  cells = max(1, size // CELL)
  cell = size / cells
  for row in range(cells):
    for col in range(cells):
      r = rng.uniform(0.25, 0.4) * cell
      cx, cy = ((np.array([col, row]) + 0.5) * cell
                + rng.uniform(-1, 1, 2) * (cell / 2 - r))
      _shape(pen, shape, cx, cy, r, colour)
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
