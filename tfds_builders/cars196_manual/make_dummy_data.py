"""Writes dummy_data/: the four cars196 files in their real formats, tiny."""

import io
import os
import tarfile

import numpy as np
from PIL import Image
from scipy import io as scipy_io

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dummy_data")


def _annotations(rows):
  dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"),
           ("class", "O"), ("fname", "O")]
  records = np.zeros((1, len(rows)), dtype=dtype)
  for i, (x1, y1, x2, y2, label, fname) in enumerate(rows):
    records[0, i] = tuple(np.array([[v]]) for v in (x1, y1, x2, y2, label)) + (
        np.array([fname]),)
  return {"annotations": records}


def _tgz(path, folder, files):
  with tarfile.open(path, "w:gz") as tar:
    for name, data in files.items():
      info = tarfile.TarInfo(f"{folder}/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def _jpeg(seed, size):
  rng = np.random.default_rng(seed)
  buf = io.BytesIO()
  Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(buf, "JPEG")
  return buf.getvalue()


def main():
  os.makedirs(HERE, exist_ok=True)
  train = {f"{i:05d}.jpg": _jpeg(i, (24, 32)) for i in (1, 2, 3)}
  test = {f"{i:05d}.jpg": _jpeg(10 + i, (20, 30)) for i in (1, 2)}
  _tgz(os.path.join(HERE, "cars_train.tgz"), "cars_train", train)
  _tgz(os.path.join(HERE, "cars_test.tgz"), "cars_test", test)
  buf = io.BytesIO()
  scipy_io.savemat(buf, _annotations([(1, 2, 20, 15, 1, "00001.jpg"),
                                      (0, 0, 31, 23, 14, "00002.jpg"),
                                      (3, 3, 9, 9, 196, "00003.jpg")]))
  _tgz(os.path.join(HERE, "car_devkit.tgz"), "devkit",
       {"cars_train_annos.mat": buf.getvalue()})
  scipy_io.savemat(os.path.join(HERE, "cars_test_annos_withlabels.mat"),
                   _annotations([(1, 1, 10, 10, 5, "00001.jpg"),
                                 (2, 2, 29, 19, 196, "00002.jpg")]))


if __name__ == "__main__":
  main()
