"""tiny_imagenet: Stanford CS231n's Tiny ImageNet (200 classes, 64x64) as a TFDS dataset.

Parses the official archive `tiny-imagenet-200.zip` as distributed (no re-packaging), so
the TFDS build is the archive and nothing else. The unlabeled `test/` images of the
archive are ignored: the paper's test set is the labelled `val/` split (exposed here as
`validation`). Heavy imports (PIL) stay inside the generation code, so importing this
module costs no more than importing `tensorflow_datasets`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence

import tensorflow_datasets as tfds
from absl import logging
from etils import epath

_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
_HOMEPAGE = "https://cs231n.stanford.edu/"
# Known facts of the official archive, for the README and for a manual check (the TFDS
# checksum file needs a sha256, which is not published; see README.md).
ARCHIVE_SIZE = 248_100_043
ARCHIVE_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"

ROOT_DIR = "tiny-imagenet-200"  # The single top-level folder of the archive.
IMAGE_SIZE = 64
NUM_TRAIN = 100_000
NUM_VALIDATION = 10_000

# The 200 WordNet ids of Tiny ImageNet, sorted, which fixes the label index (the same
# order as torchvision's ImageFolder on `train/`). They are listed here, not read from
# the archive, because TFDS needs the label names in `_info()` before any download;
# `_split_generators` checks the archive's `wnids.txt` against this list.
WNIDS = (
    "n01443537", "n01629819", "n01641577", "n01644900", "n01698640", "n01742172", "n01768244",
    "n01770393", "n01774384", "n01774750", "n01784675", "n01855672", "n01882714", "n01910747",
    "n01917289", "n01944390", "n01945685", "n01950731", "n01983481", "n01984695", "n02002724",
    "n02056570", "n02058221", "n02074367", "n02085620", "n02094433", "n02099601", "n02099712",
    "n02106662", "n02113799", "n02123045", "n02123394", "n02124075", "n02125311", "n02129165",
    "n02132136", "n02165456", "n02190166", "n02206856", "n02226429", "n02231487", "n02233338",
    "n02236044", "n02268443", "n02279972", "n02281406", "n02321529", "n02364673", "n02395406",
    "n02403003", "n02410509", "n02415577", "n02423022", "n02437312", "n02480495", "n02481823",
    "n02486410", "n02504458", "n02509815", "n02666196", "n02669723", "n02699494", "n02730930",
    "n02769748", "n02788148", "n02791270", "n02793495", "n02795169", "n02802426", "n02808440",
    "n02814533", "n02814860", "n02815834", "n02823428", "n02837789", "n02841315", "n02843684",
    "n02883205", "n02892201", "n02906734", "n02909870", "n02917067", "n02927161", "n02948072",
    "n02950826", "n02963159", "n02977058", "n02988304", "n02999410", "n03014705", "n03026506",
    "n03042490", "n03085013", "n03089624", "n03100240", "n03126707", "n03160309", "n03179701",
    "n03201208", "n03250847", "n03255030", "n03355925", "n03388043", "n03393912", "n03400231",
    "n03404251", "n03424325", "n03444034", "n03447447", "n03544143", "n03584254", "n03599486",
    "n03617480", "n03637318", "n03649909", "n03662601", "n03670208", "n03706229", "n03733131",
    "n03763968", "n03770439", "n03796401", "n03804744", "n03814639", "n03837869", "n03838899",
    "n03854065", "n03891332", "n03902125", "n03930313", "n03937543", "n03970156", "n03976657",
    "n03977966", "n03980874", "n03983396", "n03992509", "n04008634", "n04023962", "n04067472",
    "n04070727", "n04074963", "n04099969", "n04118538", "n04133789", "n04146614", "n04149813",
    "n04179913", "n04251144", "n04254777", "n04259630", "n04265275", "n04275548", "n04285008",
    "n04311004", "n04328186", "n04356056", "n04366367", "n04371430", "n04376876", "n04398044",
    "n04399382", "n04417672", "n04456115", "n04465501", "n04486054", "n04487081", "n04501370",
    "n04507155", "n04532106", "n04532670", "n04540053", "n04560804", "n04562935", "n04596742",
    "n04597913", "n06596364", "n07579787", "n07583066", "n07614500", "n07615774", "n07695742",
    "n07711569", "n07715103", "n07720875", "n07734744", "n07747607", "n07749582", "n07753592",
    "n07768694", "n07871810", "n07873807", "n07875152", "n07920052", "n09193705", "n09246464",
    "n09256479", "n09332890", "n09428293", "n12267677",
)


def _read_text(path: epath.Path) -> str:
  """Reads a text file of the archive as UTF-8 (Latin-1 if it is not valid UTF-8)."""
  data = path.read_bytes()
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError:
    return data.decode("latin-1")


def first_name(names: str) -> str:
  """The first, most common name of a `words.txt` entry ("goldfish, Carassius auratus")."""
  return names.split(",")[0].strip()


def read_wnids(path: epath.Path) -> list[str]:
  """Reads `wnids.txt` (one WordNet id per line) and checks every id is a known class."""
  wnids = [line.strip() for line in _read_text(path).splitlines() if line.strip()]
  unknown = sorted(set(wnids) - set(WNIDS))
  if unknown:
    raise ValueError(f"{path} lists WordNet ids that are not Tiny ImageNet classes: "
                     f"{unknown[:5]} (is this the tiny-imagenet-200 archive?)")
  if len(set(wnids)) != len(wnids):
    raise ValueError(f"{path} lists a WordNet id twice")
  if len(wnids) != len(WNIDS):
    # Only the test fixtures are partial; the official archive lists all 200.
    logging.warning("%s lists %d classes, not %d", path, len(wnids), len(WNIDS))
  return wnids


def read_words(path: epath.Path, wnids: Sequence[str]) -> dict[str, str]:
  """Maps each of `wnids` to its first name in `words.txt` (wnid TAB comma-separated names).

  `words.txt` covers all 82,115 WordNet nouns of ImageNet, not only the 200 classes.
  """
  wanted = set(wnids)
  names = {}
  for line in _read_text(path).splitlines():
    wnid, sep, words = line.partition("\t")
    if sep and wnid in wanted:
      names[wnid] = first_name(words)
  missing = sorted(wanted - set(names))
  if missing:
    raise ValueError(f"{path} has no name for {missing[:5]}")
  return names


def read_val_annotations(path: epath.Path) -> dict[str, str]:
  """Maps validation file names to WordNet ids, from `val_annotations.txt`.

  Each line is `file TAB wnid TAB x0 TAB y0 TAB x1 TAB y1` (the bounding box is unused).
  """
  labels = {}
  for line_no, line in enumerate(_read_text(path).splitlines(), start=1):
    if not line.strip():
      continue
    fields = line.split("\t")
    if len(fields) < 2:
      raise ValueError(f"{path}:{line_no}: expected 'file<TAB>wnid<TAB>bbox', got {line!r}")
    file_name, wnid = fields[0].strip(), fields[1].strip()
    if file_name in labels:
      raise ValueError(f"{path}:{line_no}: {file_name} is annotated twice")
    labels[file_name] = wnid
  return labels


def _check_jpeg(data: bytes, name: str) -> bytes:
  """Returns JPEG bytes of a 64x64 RGB or grayscale image, re-encoding only if needed.

  The archive's JPEGs are kept byte for byte (no second lossy encoding): RGB and
  grayscale ("L") files both decode to 3 channels with TFDS's `channels=3` decoder. Any
  other mode (none is known in the archive) is converted to RGB and re-encoded, with a
  warning, so that every stored image really decodes to (64, 64, 3).
  """
  from PIL import Image

  with Image.open(io.BytesIO(data)) as image:
    if image.format != "JPEG":
      raise ValueError(f"{name}: expected a JPEG file, found {image.format}")
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
      raise ValueError(f"{name}: expected {IMAGE_SIZE}x{IMAGE_SIZE} pixels, "
                       f"found {image.size[0]}x{image.size[1]}")
    if image.mode in ("RGB", "L"):
      return data
    logging.warning("%s: JPEG mode %s re-encoded as RGB", name, image.mode)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for tiny_imagenet (named after this module by TFDS)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: official train (100,000) and labelled val (10,000, "
               "the paper's test set) splits; JPEGs stored as distributed.",
  }

  def _info(self) -> tfds.core.DatasetInfo:
    # Description and citation come from README.md and CITATIONS.bib next to this file.
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(
                shape=(IMAGE_SIZE, IMAGE_SIZE, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=WNIDS),
            "label_name": tfds.features.Text(),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage=_HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Downloads and extracts the archive; returns the train and validation generators."""
    root = epath.Path(dl_manager.download_and_extract(_URL)) / ROOT_DIR
    if not (root / "wnids.txt").exists():
      raise FileNotFoundError(
          f"{root / 'wnids.txt'} not found: the extracted {_URL} should contain a single "
          f"'{ROOT_DIR}/' folder with wnids.txt, words.txt, train/ and val/.")
    wnids = read_wnids(root / "wnids.txt")
    names = read_words(root / "words.txt", wnids)
    return {
        "train": self._generate_examples(self._train_files(root, wnids), names),
        "validation": self._generate_examples(self._val_files(root, wnids), names),
    }

  def _train_files(self, root: epath.Path, wnids: Sequence[str]) -> list[tuple[epath.Path, str]]:
    """Lists (path, wnid) of `train/<wnid>/images/*.JPEG`, checking folders against wnids."""
    train_dir = root / "train"
    folders = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if folders != sorted(wnids):
      raise ValueError(f"{train_dir} has {len(folders)} class folders that do not match "
                       f"the {len(wnids)} classes of wnids.txt, e.g. "
                       f"{sorted(set(folders) ^ set(wnids))[:5]}")
    files = []
    for wnid in folders:
      images = sorted(p for p in (train_dir / wnid / "images").iterdir()
                      if p.name.upper().endswith(".JPEG"))
      if not images:
        raise ValueError(f"{train_dir / wnid / 'images'} holds no JPEG file")
      files.extend((path, wnid) for path in images)
    return files

  def _val_files(self, root: epath.Path, wnids: Sequence[str]) -> list[tuple[epath.Path, str]]:
    """Lists (path, wnid) of `val/images/*.JPEG`, labelled by `val/val_annotations.txt`."""
    val_dir = root / "val"
    labels = read_val_annotations(val_dir / "val_annotations.txt")
    images = sorted(p.name for p in (val_dir / "images").iterdir()
                    if p.name.upper().endswith(".JPEG"))
    unlabeled = sorted(set(images) - set(labels))
    missing = sorted(set(labels) - set(images))
    if unlabeled or missing:
      raise ValueError(f"{val_dir}: images and val_annotations.txt disagree; unannotated "
                       f"images {unlabeled[:5]}, annotated but absent {missing[:5]}")
    unknown = sorted({w for w in labels.values()} - set(wnids))
    if unknown:
      raise ValueError(f"{val_dir / 'val_annotations.txt'} uses classes not in wnids.txt: "
                       f"{unknown[:5]}")
    return [(val_dir / "images" / name, labels[name]) for name in images]

  def _generate_examples(self, files: Sequence[tuple[epath.Path, str]],
                         names: Mapping[str, str]) -> Iterator[tuple[str, dict]]:
    """Yields (file name, example); file names are unique within each split."""
    for path, wnid in files:
      yield path.name, {
          "image": _check_jpeg(path.read_bytes(), path.name),
          "label": wnid,
          "label_name": names[wnid],
          "id": path.name,
      }
