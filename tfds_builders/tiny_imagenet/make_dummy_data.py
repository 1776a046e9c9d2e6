"""Writes `dummy_data/`: a miniature tiny-imagenet-200 archive tree, as extracted.

Why a script: the fixture must keep the exact layout of the real archive (wnids.txt,
words.txt, train/<wnid>/images + <wnid>_boxes.txt, val/images + val_annotations.txt, and an
unlabeled test/ folder that the builder must ignore), and anyone changing it should be
able to regenerate it. Three real classes, three training and two validation images each;
one training image is a grayscale JPEG, as some images of the real archive are.
The output is deterministic.

Run from the repository root: `python -m tfds_builders.tiny_imagenet.make_dummy_data`.
"""

import pathlib
import shutil

import numpy as np
from PIL import Image

WNIDS = {  # wnid: words.txt entry (real WordNet names).
    "n01443537": "goldfish, Carassius auratus",
    "n01629819": "European fire salamander, Salamandra salamandra",
    "n01641577": "bullfrog, Rana catesbeiana",
}
# words.txt covers all of WordNet's ImageNet nouns, not only the 200 classes.
OTHER_WORDS = {"n00001740": "entity", "n00001930": "physical entity"}
NUM_TRAIN_PER_CLASS = 3
NUM_VAL_PER_CLASS = 2
GRAYSCALE = "n01443537_2.JPEG"


def _image(seed: int, grayscale: bool = False) -> Image.Image:
  """A smooth 64x64 pattern (small as a JPEG), different for every seed."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:64, 0:64].astype(np.float64)
  channels = []
  for _ in range(3):
    fx, fy, phase = rng.uniform(0.02, 0.15, 2).tolist() + [rng.uniform(0, 6.28)]
    channels.append(127.5 + 127.5 * np.sin(fx * x + fy * y + phase))
  array = np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)
  image = Image.fromarray(array, "RGB")
  return image.convert("L") if grayscale else image


def main():
  out = pathlib.Path(__file__).resolve().parent / "dummy_data"
  shutil.rmtree(out, ignore_errors=True)
  root = out / "tiny-imagenet-200"
  root.mkdir(parents=True)
  (root / "wnids.txt").write_text("".join(f"{w}\n" for w in WNIDS))
  words = {**OTHER_WORDS, **WNIDS}
  (root / "words.txt").write_text("".join(f"{w}\t{words[w]}\n" for w in sorted(words)))

  seed = 0
  for wnid in WNIDS:
    images = root / "train" / wnid / "images"
    images.mkdir(parents=True)
    boxes = []
    for n in range(NUM_TRAIN_PER_CLASS):
      name = f"{wnid}_{n}.JPEG"
      _image(seed, grayscale=name == GRAYSCALE).save(images / name, quality=75)
      boxes.append(f"{name}\t{n}\t{2 * n}\t{60 - n}\t{63 - n}\n")
      seed += 1
    (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))

  (root / "val" / "images").mkdir(parents=True)
  annotations = []
  index = 0
  for _ in range(NUM_VAL_PER_CLASS):
    for wnid in WNIDS:
      name = f"val_{index}.JPEG"
      _image(seed).save(root / "val" / "images" / name, quality=75)
      annotations.append(f"{name}\t{wnid}\t{index}\t{index}\t{50 + index}\t{52 + index}\n")
      index += 1
      seed += 1
  (root / "val" / "val_annotations.txt").write_text("".join(annotations))

  (root / "test" / "images").mkdir(parents=True)
  _image(seed).save(root / "test" / "images" / "test_0.JPEG", quality=75)


if __name__ == "__main__":
  main()
