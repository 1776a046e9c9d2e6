"""Stanford Cars (cars196) prepared from files the user downloaded by hand.

TFDS's `cars196` builder downloads from ai.stanford.edu, which no longer serves the files,
so it cannot be prepared anywhere. This builder is TFDS's own (same features, labels, ids,
splits and example generation — it subclasses it) with one change: the four files are
read from the manual dir instead of being downloaded. Archives may be left packed or
already extracted.
"""

from __future__ import annotations

import posixpath
import urllib.parse

from etils import epath
from tensorflow_datasets.image_classification import cars196 as tfds_cars196

# What the TFDS builder downloads, by its key: (file name, folder inside the archive).
FILES = {
    "train": ("cars_train.tgz", "cars_train"),
    "test": ("cars_test.tgz", "cars_test"),
    "extra": ("car_devkit.tgz", "devkit"),
    "test_annos": ("cars_test_annos_withlabels.mat", None),
}


class _ManualFiles:
  """Stands in for the download manager: URLs -> files under manual_dir."""

  def __init__(self, dl_manager, instructions: str):
    self._dl = dl_manager
    self._instructions = instructions

  def download_and_extract(self, urls: dict) -> dict:
    manual = epath.Path(self._dl.manual_dir)
    out, missing = {}, []
    for key, url in urls.items():
      name, folder = FILES[key]
      if posixpath.basename(urllib.parse.urlparse(url).path) != name:
        raise ValueError(f"unexpected cars196 file {url!r} for {key!r}")
      path = manual / name
      if folder and (manual / folder).is_dir():
        out[key] = str(manual)            # already extracted in place
      elif path.is_file():
        out[key] = str(self._dl.extract(path)) if folder else str(path)
      else:
        missing.append(name if not folder else f"{name} (or its folder {folder}/)")
    if missing:
      raise FileNotFoundError(
          f"cars196: missing in the manual dir {manual}: {', '.join(missing)}.\n"
          f"{self._instructions}")
    return out

  def __getattr__(self, name):
    return getattr(self._dl, name)


class Builder(tfds_cars196.Cars196):
  """TFDS's cars196 with the files from the manual dir."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  The Stanford Cars files are no longer served by ai.stanford.edu. Get the four original
  files from a mirror (e.g. the Kaggle dataset "jessicali9530/stanford-cars-dataset" plus
  "cars_test_annos_withlabels.mat", or an academic torrent of the original release):
    cars_train.tgz, cars_test.tgz, car_devkit.tgz, cars_test_annos_withlabels.mat
  and put them in the manual dir (--manual_dir, default <data_dir>/downloads/manual/).
  The archives may be extracted there instead (cars_train/, cars_test/, devkit/).
  """

  def _split_generators(self, dl_manager):
    return super()._split_generators(
        _ManualFiles(dl_manager, self.MANUAL_DOWNLOAD_INSTRUCTIONS))
