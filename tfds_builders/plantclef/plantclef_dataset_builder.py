"""plantclef: a class-per-folder PlantCLEF subset (the paper used 20 species).

PlantCLEF itself has tens of thousands of species and millions of images; the paper this
project re-runs used an unpublished 20-class subset (10,455 train / 1,135 test images),
which its reference code reads as two class-per-folder trees, `train/` and `val/`. So
this builder is the generic `image_folder` builder with a fixed place in the manual dir
and the paper's 90/10 ratio for a tree that comes unsplit.
"""

from __future__ import annotations

import tensorflow_datasets as tfds
from etils import epath

from tfds_builders.image_folder import image_folder_dataset_builder

FOLDER_NAME = "plantclef"


class Builder(image_folder_dataset_builder.FolderBasedBuilder):
  """DatasetBuilder for plantclef: <manual_dir>/plantclef/ as a class-per-folder tree."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: train/ + test/ (or val/) folders as given, else a "
               "stratified 90/10 split keyed on relative paths (seed 0).",
  }
  # 1,135 / (10,455 + 1,135) = 9.8% in the paper.
  TEST_FRACTION = 0.1
  HOMEPAGE = "https://www.imageclef.org/LifeCLEF"
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  The paper's 20-species PlantCLEF subset is not published: get it from its authors
  (the reference code reads it as PlantCLEF_Subset/train/<class>/ and
  PlantCLEF_Subset/val/<class>/), or make your own from the PlantCLEF data of LifeCLEF
  (https://www.imageclef.org/LifeCLEF) by copying the images of the species you choose
  into one folder per species. Then put the tree in the manual dir as
    <manual_dir>/{FOLDER_NAME}/train/<class>/*.jpg and
    <manual_dir>/{FOLDER_NAME}/test/<class>/*.jpg   (val/ is accepted instead of test/)
  or, unsplit, as <manual_dir>/{FOLDER_NAME}/<class>/*.jpg (a stratified 90/10 split is
  drawn, seeded, keyed on file paths). The manual dir is DownloadConfig(manual_dir=...),
  by default <data_dir>/downloads/manual/.
  """

  def _root(self, dl_manager: tfds.download.DownloadManager) -> epath.Path:
    return epath.Path(dl_manager.manual_dir) / FOLDER_NAME
