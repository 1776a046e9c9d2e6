r"""A real-photo class folder that needs no download: crops of scikit-image's texture photos.

  python -m experiments.texture_crops --out=/tmp/textures --per_class=120
  python -m tfbackbones.recommend --dataset=folder:/tmp/textures --image_size=224 \
      --backbones=efficientnet_lite0,efficientnet_lite0@none,efficientnet_lite1,\
efficientnet_lite1@none,efficientnet_lite2,efficientnet_lite2@none

scikit-image ships three grayscale 512x512 photographs of real surfaces: `brick.png`,
`grass.png` and `gravel.png` (`skimage.data.brick()`, `.grass()`, `.gravel()`). Each becomes
a class; its images are random square crops (side 64 to 256 px, so scale varies 4x), randomly
flipped and turned by multiples of 90 degrees, resized to 160 px and saved as JPEG
(quality 90). Grayscale, so colour cannot tell the classes apart; crops of one photo
overlap, so this is a small texture task, not a benchmark. It answers one question
honestly: do ImageNet features beat the same architecture from random init on real
photographs that no test of the project uses?
"""

from __future__ import annotations

import os

from absl import app, flags

from tfbackbones import cli

CLASSES = ("brick", "grass", "gravel")

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Folder to write (one subfolder per class).")
flags.DEFINE_integer("per_class", 120, "Crops per class.")
flags.DEFINE_integer("seed", 0, "Crop positions and sizes.")


def write(out: str, per_class: int, seed: int = 0, size: int = 160) -> str:
  """Writes the crops; returns `out`."""
  import numpy as np
  from PIL import Image
  from skimage import data
  rng = np.random.default_rng(seed)
  for name in CLASSES:
    photo = getattr(data, name)()
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    height, width = photo.shape[:2]
    for i in range(per_class):
      side = int(rng.integers(64, 257))
      top = int(rng.integers(0, height - side + 1))
      left = int(rng.integers(0, width - side + 1))
      crop = np.rot90(photo[top:top + side, left:left + side], int(rng.integers(0, 4)))
      if rng.random() < 0.5:
        crop = crop[:, ::-1]
      image = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size),
                                                                  Image.BICUBIC)
      image.save(os.path.join(folder, f"{name}_{i:04d}.jpg"), quality=90)
  return out


def main(argv):
  del argv
  if not FLAGS.out:
    raise app.UsageError("--out is required")
  write(FLAGS.out, FLAGS.per_class, FLAGS.seed)
  print(f"wrote {len(CLASSES)} x {FLAGS.per_class} crops to {FLAGS.out}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
