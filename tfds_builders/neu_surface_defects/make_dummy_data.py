"""Writes `dummy_data/NEU-CLS.zip`: 30 NEU-CLS-format BMPs in a zip, as a user would put it.

Why a zip: a NEU-CLS BMP is stored uncompressed (200x200 8-bit palette, 41,078 bytes), so
30 of them as loose files would be 1.2 MB; deflated in the archive form that the builder
accepts (`<manual_dir>/NEU-CLS.zip`) they take a few kB each. The folder form is tested by
extracting this archive at test time.

Contents: `NEU-CLS/<Prefix>_<n>.bmp`, five images (n = 1..5) for each of the six classes,
real format (8-bit grayscale-palette BMP, 200x200), plus a `Thumbs.db` that the builder must
ignore. The images are smooth stripes with a class-dependent direction, quantised to 16
grey levels so that they deflate well. Each class has 5 images, so the 20% stratified split
takes round(0.2 * 5) = 1 per class: 24 train, 6 test. The output is deterministic (fixed
zip timestamps).

Run from the repository root: `python -m tfds_builders.neu_surface_defects.make_dummy_data`.
"""

import io
import pathlib
import zipfile

import numpy as np
from PIL import Image

PREFIXES = ("Cr", "In", "Pa", "PS", "RS", "Sc")
PER_CLASS = 5
_DATE = (1980, 1, 1, 0, 0, 0)


def bmp_bytes(class_index: int, n: int) -> bytes:
  """A 200x200 grayscale BMP (8-bit palette, uncompressed, as in NEU-CLS)."""
  y, x = np.mgrid[0:200, 0:200].astype(np.float64)
  angle = np.pi * class_index / len(PREFIXES)
  period = 12 + 3 * n
  wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
  levels = np.floor((wave + 1) * 7.99).astype(np.uint8) * 16 + 40
  buffer = io.BytesIO()
  Image.fromarray(levels, "L").save(buffer, format="BMP")
  return buffer.getvalue()


def write_zip(path: pathlib.Path, members: dict) -> None:
  """Writes `members` {name: bytes} deflated, with fixed timestamps."""
  with zipfile.ZipFile(path, "w") as zf:
    for name, data in members.items():
      info = zipfile.ZipInfo(name, date_time=_DATE)
      info.compress_type = zipfile.ZIP_DEFLATED
      info.external_attr = 0o644 << 16
      zf.writestr(info, data, compresslevel=9)


def dummy_members() -> dict:
  members = {}
  for class_index, prefix in enumerate(PREFIXES):
    for n in range(1, PER_CLASS + 1):
      members[f"NEU-CLS/{prefix}_{n}.bmp"] = bmp_bytes(class_index, n)
  members["NEU-CLS/Thumbs.db"] = b"\xd0\xcf\x11\xe0 not an image"
  return members


def main():
  out = pathlib.Path(__file__).resolve().parent / "dummy_data"
  out.mkdir(exist_ok=True)
  write_zip(out / "NEU-CLS.zip", dummy_members())


if __name__ == "__main__":
  main()
