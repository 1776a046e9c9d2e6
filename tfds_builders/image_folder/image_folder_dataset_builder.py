"""image_folder: any class-per-subfolder image directory as a TFDS dataset.

This is the builder behind `--dataset=folder:/path` ("bring your own data"). The folder
is given at construction time: `make_builder(path, data_dir)` creates a `FolderConfig`
whose name is a short sanitized hash of the absolute path, so each folder is prepared
once into its own `<data_dir>/image_folder/<config>/<version>/` and reused after. The
layouts, the split rule and the image conversion rules are in `folder_lib` and
`image_codec`; README.md has the user-facing summary.

`FolderBasedBuilder` is the shared, unregistered base: `plantclef` is the same builder with
a fixed root under the manual dir and a 90/10 split.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import re

import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from tfds_builders.image_folder import folder_lib, image_codec

_CONFIG_STEM_CHARS = 32
_CONFIG_HASH_CHARS = 10


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
  """A BuilderConfig naming the image folder to read.

  Attributes:
    root: absolute path of the folder; "" means the TFDS manual_dir itself.
  """
  root: str = ""


class StaleFolderError(RuntimeError):
  """The folder changed after it was prepared: the prepared copy would be out of date."""


class FolderBasedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared base of the class-per-folder builders (not registered itself).

  Subclasses say where the folder is (`_root`) and may change the split of the flat
  layout (`TEST_FRACTION`, `SPLIT_SEED`). Class names are the sorted folder names; they
  are only known once the folder is read, so the ClassLabel is filled in at preparation
  time and restored from the prepared files afterwards.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: class-per-folder images, stratified seeded split keyed "
               "on relative paths, unreadable files skipped and counted.",
  }
  TEST_FRACTION = 0.2
  SPLIT_SEED = 0
  HOMEPAGE: str | None = None

  @abc.abstractmethod
  def _root(self, dl_manager: tfds.download.DownloadManager) -> epath.Path:
    """The folder to read (may not exist: the caller raises with instructions)."""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            # Mixed sizes; 1-channel files are expanded to 3 channels when decoded.
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(),  # names set in _split_generators
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage=self.HOMEPAGE,
        metadata=tfds.core.MetadataDict(),
    )

  def _missing_message(self, root: epath.Path) -> str:
    return (f"{self.name}: image folder {root} not found.\n"
            f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Scans the folder, fixes the class names and draws the splits."""
    root = self._root(dl_manager)
    if not root.is_dir():
      raise FileNotFoundError(self._missing_message(root))
    folder = folder_lib.scan(root)
    splits = folder_lib.assign_splits(folder, self.TEST_FRACTION, self.SPLIT_SEED)
    self.info.features["label"].names = folder.class_names
    self.info.metadata.update({
        "layout": folder.layout,
        "fingerprint": folder.fingerprint,
        "num_ignored_files": len(folder.ignored),
        "num_broken_links": len(folder.broken_links),
        "split_rule": (f"folders {folder.split_dirs}" if folder.layout == "split" else
                       f"stratified_split(relative paths, fraction={self.TEST_FRACTION}, "
                       f"seed={self.SPLIT_SEED}) -> test"),
    })
    if folder.broken_links:
      logging.warning("%s: skipped %d symbolic links whose target is gone, e.g. %s",
                      self.name, len(folder.broken_links),
                      ", ".join(folder.broken_links[:5]))
    if folder.ignored:
      logging.warning("%s: ignored %d files that are not images (by extension), e.g. %s",
                      self.name, len(folder.ignored), ", ".join(folder.ignored[:5]))
    logging.info("%s: %d classes, %d image files, %s layout: %s", self.name,
                 len(folder.class_names), folder.num_files, folder.layout,
                 {split: len(entries) for split, entries in splits.items()})
    return {split: self._generate_examples(root, split, entries)
            for split, entries in splits.items()}

  def _generate_examples(self, root: epath.Path, split: str, entries):
    """Yields (relative path, example); unreadable files are skipped and recorded."""

    def encode(entry):
      rel, label = entry
      try:
        return rel, label, image_codec.encode_for_tfds((root / rel).read_bytes(), rel)
      except (image_codec.UnreadableImageError, OSError) as e:
        return rel, label, e

    skipped = []
    for rel, label, result in image_codec.map_ordered(encode, entries):
      if isinstance(result, Exception):
        logging.warning("%s: skipping unreadable image %s: %s", self.name, rel, result)
        skipped.append((rel, str(result)))
        continue
      yield rel, {"image": result.data, "label": label, "id": rel}
    image_codec.record_skipped(self.info, split, skipped, len(entries))


class Builder(FolderBasedBuilder):
  """DatasetBuilder for image_folder; use `make_builder(path)` to read a given folder."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put your images in one folder per class, and pass that folder's path:
  `tfds_builders.image_folder.make_builder("/path/to/images", data_dir)` (what
  `--dataset=folder:/path/to/images` does). Accepted layouts:
    /path/to/images/<class>/**/<image>        (a stratified 80/20 train/test split is
                                               drawn, seeded, keyed on file paths)
    /path/to/images/train/<class>/**/<image>  (your own split; an optional val/ folder
    /path/to/images/test/<class>/**/<image>    becomes the "validation" split)
  Any format PIL reads works (JPEG, PNG incl. 16-bit and palette, BMP, TIFF, WebP, ...).
  Without make_builder, the default config reads the same layout from the TFDS manual
  dir (`DownloadConfig(manual_dir=...)`, default `<data_dir>/downloads/manual/`).
  """
  BUILDER_CONFIGS = [
      FolderConfig(name="manual_dir", root="",
                   description="The class-per-folder tree found in the TFDS manual_dir."),
  ]

  def _root(self, dl_manager: tfds.download.DownloadManager) -> epath.Path:
    if self.builder_config.root:
      return epath.Path(self.builder_config.root)
    return epath.Path(dl_manager.manual_dir)


def config_for_path(path: epath.PathLike) -> FolderConfig:
  """The FolderConfig of a folder: name = sanitized folder name + hash of its full path.

  The name is stable for a given absolute path (so a prepared folder is found again) and
  different for different folders, even with the same base name; the readable stem only
  helps people find it under data_dir.
  """
  root = epath.Path(path).expanduser().resolve()
  digest = hashlib.sha256(str(root).encode("utf-8")).hexdigest()[:_CONFIG_HASH_CHARS]
  stem = re.sub(r"[^a-z0-9]+", "_", root.name.lower()).strip("_")[:_CONFIG_STEM_CHARS]
  return FolderConfig(name=f"{stem or 'root'}_{digest}", root=str(root),
                      description=f"Class-per-folder images under {root}.")


def make_builder(path: str, data_dir: str | None = None) -> Builder:
  """Returns the image_folder builder of the folder `path` (prepared or not).

  Call `builder.download_and_prepare()` once (it reads no network), then
  `builder.as_dataset(split="train")` etc. A folder already prepared under `data_dir` is
  reused if its content (file names and sizes) has not changed since.

  Args:
    path: the class-per-folder image directory (see README.md for the layouts).
    data_dir: TFDS data_dir (default ~/tensorflow_datasets).

  Returns:
    A `Builder` with a config made for `path`.

  Raises:
    FileNotFoundError: `path` is not a folder and was not prepared before.
    ValueError: `path` cannot make a dataset (fewer than two class folders, a class
      folder without images, an ambiguous layout); the message says why.
    StaleFolderError: `path` was prepared, but images were added, removed, renamed or
      changed size since then.
  """
  config = config_for_path(path)
  builder = Builder(config=config, data_dir=data_dir)
  root = epath.Path(config.root)
  if builder.is_prepared():
    _check_fresh(builder, root)
  elif not root.is_dir():
    # One line: this is what `--dataset=folder:PATH` reports; the manual-dir paragraph of
    # _missing_message is about the builder's own config, not this path.
    raise FileNotFoundError(
        f"image folder {root} not found: give a folder with one sub-folder of images per "
        "class, or train/ and test/ folders of class folders (tfds_builders/image_folder/"
        "README.md)")
  else:
    # Checked before preparing, so a folder that cannot make a dataset (no or one
    # class, an empty class, an ambiguous layout) fails in a second, not after every
    # image was read.
    folder_lib.scan(root)
  return builder


def _check_fresh(builder: Builder, root: epath.Path) -> None:
  if not root.is_dir():
    logging.warning("%s: %s is gone; using the copy prepared in %s as it is",
                    builder.name, root, builder.data_dir)
    return
  stored = builder.info.metadata.get("fingerprint")
  if stored != folder_lib.fingerprint(root):
    raise StaleFolderError(
        f"{root} changed after it was prepared into {builder.data_dir} (images added, "
        "removed, renamed or resized). Delete that directory to prepare it again.")
