"""neu_surface_defects: NEU-CLS hot-rolled steel surface defects (6 classes) as TFDS.

NEU-CLS is 1,800 grayscale 200x200 BMP images, 300 for each of six defect classes, named
`<Cr|In|Pa|PS|RS|Sc>_<n>.bmp`. There is no stable download URL (the authors' page is often
down; mirrors need an account), so this is a manual-download builder: the user places the
folder or a zip of it in the manual directory. Mirrors re-arrange the files (flat, class
folders, their own train/valid/test folders, extra annotation files), so the builder takes
every correctly named BMP at any depth and ignores the rest, and draws the paper's 80/20
split itself: stratified, seeded and keyed on the file names, so the same images land in
the same split whatever the mirror's layout.

PIL and the split helper are imported inside the generation code, so importing this
module costs no more than importing `tensorflow_datasets`.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

_HOMEPAGE = "http://faculty.neu.edu.cn/yunhyan/NEU_surface_defect_database.html"
_AUTHOR_PAGE = "http://faculty.neu.edu.cn/songkechen/en/zdylm/263265/list/index.htm"
_KAGGLE_MIRROR = "https://www.kaggle.com/datasets/fantacher/neu-metal-surface-defects-data"

FOLDER_NAME = "NEU-CLS"
ARCHIVE_NAME = "NEU-CLS.zip"
IMAGE_SIZE = 200
NUM_EXAMPLES = 1_800

# File-name prefix -> class name; the label index is this order (alphabetical names).
PREFIXES = {"Cr": "crazing", "In": "inclusion", "Pa": "patches", "PS": "pitted_surface",
            "RS": "rolled-in_scale", "Sc": "scratches"}
CLASS_NAMES = tuple(PREFIXES.values())
_CANONICAL_PREFIX = {prefix.lower(): prefix for prefix in PREFIXES}
_NAME_RE = re.compile(r"^(cr|in|pa|ps|rs|sc)_0*(\d+)\.bmp$", re.IGNORECASE)

# The deterministic split: `tfbackbones.data.splits.stratified_split` keyed on the ids.
TEST_FRACTION = 0.2
SPLIT_SEED = 0

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download NEU-CLS, the classification set of the NEU surface defect database (Song & Yan,
2013): 1,800 grayscale 200x200 BMP images, 300 per class, named Cr_<n>.bmp, In_<n>.bmp,
Pa_<n>.bmp, PS_<n>.bmp, RS_<n>.bmp and Sc_<n>.bmp (n = 1..300). Sources:
  * the authors' pages (often unreachable):
      {_HOMEPAGE}
      {_AUTHOR_PAGE}
  * the Kaggle mirror (free account; the same 1,800 BMPs in its own train/valid/test
    class folders, which the builder ignores):
      {_KAGGLE_MIRROR}
Then put ONE of these in the manual directory (default <data_dir>/downloads/manual/,
i.e. ~/tensorflow_datasets/downloads/manual/; or set DownloadConfig(manual_dir=...) or
`tfds build --manual_dir=...`):
  * the extracted folder, renamed to NEU-CLS: <manual_dir>/{FOLDER_NAME}/
    (the BMPs may sit at any depth below it);
  * the zip archive, renamed to {ARCHIVE_NAME}: <manual_dir>/{ARCHIVE_NAME}
A .rar archive must first be extracted into <manual_dir>/{FOLDER_NAME}/. Files not named
<Cr|In|Pa|PS|RS|Sc>_<n>.bmp (annotations, thumbnails, NEU-DET JPEGs) are ignored.
"""


def parse_name(file_name: str) -> tuple[str, str] | None:
  """Returns (id, class name) for a NEU-CLS file name, or None if it is not one.

  The id is the canonical file name, `<Prefix>_<n>.bmp` with the prefix spelled as in the
  original release and no leading zeros, so that the split does not depend on how a mirror
  spells the names ("cr_001.BMP" and "Cr_1.bmp" are the same image).
  """
  match = _NAME_RE.match(file_name)
  if not match:
    return None
  prefix = _CANONICAL_PREFIX[match.group(1).lower()]
  return f"{prefix}_{int(match.group(2))}.bmp", PREFIXES[prefix]


@dataclasses.dataclass(frozen=True)
class SourceImage:
  """One NEU-CLS image: its id, class and where its bytes are (a file or a zip member)."""
  id: str
  label: str
  path: epath.Path
  member: str | None = None  # Name inside the zip at `path`; None for a plain file.

  @property
  def where(self) -> str:
    return f"{self.path}:{self.member}" if self.member else str(self.path)


def find_source(manual_dir: epath.Path) -> epath.Path:
  """Returns `<manual_dir>/NEU-CLS/` or `<manual_dir>/NEU-CLS.zip`, or raises with help."""
  folder, archive = manual_dir / FOLDER_NAME, manual_dir / ARCHIVE_NAME
  if folder.is_dir():
    if archive.exists():
      logging.info("Both %s and %s exist; reading the folder.", folder, archive)
    return folder
  if archive.exists():
    return archive
  raise FileNotFoundError(
      f"NEU-CLS not found: neither {folder}/ nor {archive} exists.\n\n"
      + MANUAL_DOWNLOAD_INSTRUCTIONS)


def _walk(folder: epath.Path) -> Iterator[epath.Path]:
  """Yields every file below `folder`, in sorted order (any filesystem epath supports)."""
  for child in sorted(folder.iterdir(), key=lambda p: p.name):
    if child.is_dir():
      yield from _walk(child)
    else:
      yield child


def list_folder(folder: epath.Path) -> list[SourceImage]:
  """Lists the correctly named BMPs at any depth below `folder`."""
  images = []
  for path in _walk(folder):
    parsed = parse_name(path.name)
    if parsed:
      images.append(SourceImage(parsed[0], parsed[1], path))
  return images


def list_zip(archive: epath.Path) -> list[SourceImage]:
  """Lists the correctly named BMPs in a zip archive (any folder inside it)."""
  import zipfile

  with archive.open("rb") as f, zipfile.ZipFile(f) as zf:
    members = sorted(info.filename for info in zf.infolist() if not info.is_dir())
  images = []
  for member in members:
    parsed = parse_name(re.split(r"[/\\]", member)[-1])  # Some Windows zips use "\".
    if parsed and not member.startswith("__MACOSX/"):
      images.append(SourceImage(parsed[0], parsed[1], archive, member))
  return images


class _Reader:
  """Reads image bytes from plain files or from one open zip archive."""

  def __init__(self):
    self._zips = {}

  def read(self, image: SourceImage) -> bytes:
    if image.member is None:
      return image.path.read_bytes()
    import zipfile
    if image.path not in self._zips:
      f = image.path.open("rb")
      self._zips[image.path] = (f, zipfile.ZipFile(f))
    return self._zips[image.path][1].read(image.member)

  def close(self):
    for f, zf in self._zips.values():
      zf.close()
      f.close()  # ZipFile does not close a file object it was given.
    self._zips = {}


def deduplicate(images: Sequence[SourceImage], reader: _Reader) -> list[SourceImage]:
  """Keeps one copy of each id; raises if two files share a name but not their bytes.

  Some mirrors ship an image twice (e.g. in a flat folder and in class folders). Equal
  copies are the same example; different images under one name would make the id-keyed
  split ambiguous, so they are an error.
  """
  kept: dict[str, SourceImage] = {}
  for image in images:
    first = kept.get(image.id)
    if first is None:
      kept[image.id] = image
    elif reader.read(first) == reader.read(image):
      logging.info("%s duplicates %s; using the first.", image.where, first.where)
    else:
      raise ValueError(f"Two different images are both named {image.id}: {first.where} and "
                       f"{image.where}. Keep one NEU-CLS copy in the manual directory.")
  return sorted(kept.values(), key=lambda image: image.id)


def decode_bmp(data: bytes, name: str) -> np.ndarray | None:
  """Decodes a NEU-CLS BMP to a (200, 200, 1) uint8 array, or None if it is corrupt.

  A corrupt or truncated file is skipped with a warning naming it (one bad file in a
  mirror should not stop a build, and the split of every other image does not depend on
  it). A readable image of the wrong size is an error: it means a different dataset
  (e.g. NEU-CLS-64 crops), not a damaged file.
  """
  from PIL import Image

  if len(data) < 26 or data[:2] != b"BM":
    logging.warning("Skipping %s: not a BMP file (%d bytes).", name, len(data))
    return None
  declared_size = int.from_bytes(data[2:6], "little")
  if declared_size and len(data) < declared_size:
    # Checked here too because PIL pads truncated files when another library has set
    # ImageFile.LOAD_TRUNCATED_IMAGES.
    logging.warning("Skipping %s: truncated BMP (%d of %d bytes).", name, len(data),
                    declared_size)
    return None
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      size, mode = image.size, image.mode
      gray = np.asarray(image.convert("L"), dtype=np.uint8)
  except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for damaged files.
    logging.warning("Skipping %s: unreadable BMP (%s).", name, e)
    return None
  if size != (IMAGE_SIZE, IMAGE_SIZE):
    raise ValueError(f"{name} is {size[0]}x{size[1]}, but NEU-CLS images are "
                     f"{IMAGE_SIZE}x{IMAGE_SIZE}: is this the NEU-CLS release?")
  if mode not in ("L", "P", "1"):
    logging.log_first_n(logging.INFO, "%s is a %s BMP; stored as grayscale.", 1, name, mode)
  return gray[..., np.newaxis]


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for neu_surface_defects (named after this module by TFDS)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: NEU-CLS BMPs (folder or zip, any layout), id-keyed "
               "stratified 80/20 train/test split (seed 0).",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    # Description and citation come from README.md and CITATIONS.bib next to this file.
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
            "label": tfds.features.ClassLabel(names=CLASS_NAMES),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage=_HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Finds the manual files and returns the train/test generators."""
    from tfbackbones.data.splits import stratified_split

    source = find_source(epath.Path(dl_manager.manual_dir))
    images = list_folder(source) if source.is_dir() else list_zip(source)
    if not images:
      raise FileNotFoundError(
          f"{source} holds no file named <Cr|In|Pa|PS|RS|Sc>_<n>.bmp.\n\n"
          + MANUAL_DOWNLOAD_INSTRUCTIONS)
    reader = _Reader()
    try:
      images = deduplicate(images, reader)
    finally:
      reader.close()
    if len(images) != NUM_EXAMPLES:
      logging.warning("%s holds %d NEU-CLS images, not %d.", source, len(images), NUM_EXAMPLES)
    # The split is drawn over every correctly named file, readable or not, so a corrupt
    # file in one copy does not move any other image to the other split.
    test_ids, train_ids = stratified_split(
        [image.id for image in images], [image.label for image in images],
        fraction=TEST_FRACTION, seed=SPLIT_SEED)
    by_id = {image.id: image for image in images}
    return {
        "train": self._generate_examples([by_id[i] for i in train_ids]),
        "test": self._generate_examples([by_id[i] for i in test_ids]),
    }

  def _generate_examples(self, images: Sequence[SourceImage]) -> Iterator[tuple[str, dict]]:
    """Yields (id, example), skipping (with a warning) files that cannot be decoded."""
    reader = _Reader()
    try:
      for image in images:
        pixels = decode_bmp(reader.read(image), image.where)
        if pixels is None:
          continue
        yield image.id, {"image": pixels, "label": image.label, "id": image.id}
    finally:
      reader.close()
