"""Writes dummy_data/BreaKHis_v1/: the real BreaKHis folder layout with tiny PNGs.

Run from the repository root: `python -m tfds_builders.breakhis.make_dummy_data`.
Ten patient folders (real ids, two of them sections of one case, and patient 14-13412
filed under two tumour types, as in the real data), 2 images per magnification each, a
few images of another size (as a few real ones are), and one truncated PNG at 40X.
"""

import io
import pathlib

import numpy as np
from PIL import Image

ROOT = (pathlib.Path(__file__).parent / "dummy_data" / "BreaKHis_v1" / "histology_slides"
        / "breast")
# (label, tumour type folder, file prefix, patient folder suffix)
PATIENTS = [
    ("benign", "adenosis", "SOB_B_A", "14-22549AB"),
    ("benign", "adenosis", "SOB_B_A", "14-22549CD"),
    ("benign", "fibroadenoma", "SOB_B_F", "14-9133"),
    ("benign", "phyllodes_tumor", "SOB_B_PT", "14-21998AB"),
    ("benign", "tubular_adenoma", "SOB_B_TA", "14-3411F"),
    ("malignant", "ductal_carcinoma", "SOB_M_DC", "14-2523"),
    ("malignant", "ductal_carcinoma", "SOB_M_DC", "14-13412"),
    ("malignant", "lobular_carcinoma", "SOB_M_LC", "14-13412"),
    ("malignant", "mucinous_carcinoma", "SOB_M_MC", "14-10147"),
    ("malignant", "papillary_carcinoma", "SOB_M_PC", "14-9146"),
]
MAGNIFICATIONS = ("40", "100", "200", "400")
IMAGES_PER_MAGNIFICATION = 2
TRUNCATED = "SOB_M_MC-14-10147-40-003.png"


def tile(seed: int, height: int = 5, width: int = 7) -> bytes:
  """A tiny H&E-coloured RGB PNG (pink/purple noise)."""
  rng = np.random.default_rng(seed)
  base = np.array([200, 120, 190], np.int32)
  pixels = np.clip(base + rng.integers(-40, 41, (height, width, 3)), 0, 255)
  buffer = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8), "RGB").save(buffer, format="PNG")
  return buffer.getvalue()


def main() -> None:
  seed = 0
  for label, tumor_type, prefix, patient in PATIENTS:
    folder = ROOT / label / "SOB" / tumor_type / f"{prefix}_{patient}"
    for mag in MAGNIFICATIONS:
      mag_dir = folder / f"{mag}X"
      mag_dir.mkdir(parents=True, exist_ok=True)
      for seq in range(1, IMAGES_PER_MAGNIFICATION + 1):
        seed += 1
        odd_size = seed % 17 == 0  # a few images are not 700x460 in the real data
        data = tile(seed, *((6, 7) if odd_size else (5, 7)))
        (mag_dir / f"{prefix}-{patient}-{mag}-{seq:03d}.png").write_bytes(data)
  mucinous_40 = ROOT / "malignant/SOB/mucinous_carcinoma/SOB_M_MC_14-10147/40X"
  (mucinous_40 / TRUNCATED).write_bytes(tile(999)[:60])


if __name__ == "__main__":
  main()
