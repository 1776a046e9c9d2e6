"""Writes `dummy_data/Galaxy10_DECals.h5`: a 28-galaxy file in the real format.

Why a script: the fixture must keep the real file's structure (`images` (N, 256, 256, 3)
uint8, `ans` (N,) uint8, plus the `ra`, `dec`, `redshift` and `pxscale` columns that the
builder ignores), and anyone changing it should be able to regenerate it. The images are
full size, as the builder requires, but mostly black sky around one smooth blob, stored
with gzip in one-image chunks, so the file stays small. The output is deterministic (no
HDF5 timestamps).

Class counts are chosen so that the 10% stratified test split is not empty: class 0 has
10 images, class 1 has 6, class 2 has 5, classes 3-9 one each (28 in all); the split takes
round(0.1 * n) per class, i.e. 1 + 1 + 1 = 3 test and 25 train images.

Run from the repository root: `python -m tfds_builders.galaxy10_decals.make_dummy_data`.
"""

import pathlib

import h5py
import numpy as np

COUNTS = {0: 10, 1: 6, 2: 5, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1}


def galaxy(rng: np.random.Generator) -> np.ndarray:
  """A 256x256x3 uint8 image: an elliptical blob of random size, tilt and colour."""
  y, x = np.mgrid[0:256, 0:256].astype(np.float64) - 127.5
  angle = rng.uniform(0, np.pi)
  u = x * np.cos(angle) + y * np.sin(angle)
  v = -x * np.sin(angle) + y * np.cos(angle)
  sigma_u, sigma_v = rng.uniform(6, 16), rng.uniform(3, 10)
  profile = np.exp(-0.5 * ((u / sigma_u) ** 2 + (v / sigma_v) ** 2))
  colour = rng.uniform(120, 255, size=3)
  # Coarse quantisation keeps the sky exactly 0 and the gzip stream short.
  image = np.floor(profile[..., None] * colour / 8) * 8
  return image.astype(np.uint8)


def main():
  rng = np.random.default_rng(10)
  labels = np.array([c for c, n in COUNTS.items() for _ in range(n)], dtype=np.uint8)
  labels = labels[rng.permutation(labels.size)]
  images = np.stack([galaxy(rng) for _ in labels])
  n = labels.size
  path = pathlib.Path(__file__).resolve().parent / "dummy_data" / "Galaxy10_DECals.h5"
  path.parent.mkdir(parents=True, exist_ok=True)
  options = {"compression": "gzip", "compression_opts": 9, "track_times": False}
  with h5py.File(path, "w", track_order=False) as h5:
    h5.create_dataset("images", data=images, chunks=(1, 256, 256, 3), **options)
    h5.create_dataset("ans", data=labels, track_times=False)
    h5.create_dataset("ra", data=rng.uniform(0, 360, n), track_times=False)
    h5.create_dataset("dec", data=rng.uniform(-20, 60, n), track_times=False)
    h5.create_dataset("redshift", data=rng.uniform(0.01, 0.2, n), track_times=False)
    h5.create_dataset("pxscale", data=np.full(n, 0.262), track_times=False)


if __name__ == "__main__":
  main()
