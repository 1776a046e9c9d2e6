"""breakhis: BreaKHis v1 breast-tumour histology (benign / malignant), one config per
magnification, with a patient-level train/test split.

Why a patient-level split: each patient contributes dozens of images of the same tissue,
so an image-level split (what most BreaKHis papers, and the paper this project re-runs,
report) puts near-duplicates of test images in training and measures memory more than
diagnosis. Here whole patients go to train or test.

The data is read from the manual dir, either from the original `BreaKHis_v1.tar.gz`
(streamed: nothing is extracted to disk) or from its extracted `BreaKHis_v1/` tree.
Images are PNGs and are stored as they are (see `image_folder.image_codec`).
"""

from __future__ import annotations

import collections
import dataclasses
import re
import tarfile
from collections.abc import Iterator, Sequence

import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from tfds_builders.image_folder import image_codec

_HOMEPAGE = ("https://web.inf.ufpr.br/vri/databases/"
             "breast-cancer-histopathological-database-breakhis/")
ARCHIVE_NAME = "BreaKHis_v1.tar.gz"
FOLDER_NAME = "BreaKHis_v1"

LABELS = ("benign", "malignant")
BENIGN_TYPES = ("adenosis", "fibroadenoma", "phyllodes_tumor", "tubular_adenoma")
MALIGNANT_TYPES = ("ductal_carcinoma", "lobular_carcinoma", "mucinous_carcinoma",
                   "papillary_carcinoma")
TUMOR_TYPES = BENIGN_TYPES + MALIGNANT_TYPES
MAGNIFICATIONS = ("40", "100", "200", "400")

# The split: whole cases (see `ImageRecord.case_id`), stratified by label, seeded.
TEST_FRACTION = 0.3
SPLIT_SEED = 0

# SOB_B_A-14-22549AB-40-001.png: procedure SOB (surgical open biopsy), class B|M, tumour
# type A|F|PT|TA|DC|LC|MC|PC, year-slide (slide = number + section letters),
# magnification, sequence number.
_FILE_RE = re.compile(
    r"^SOB_(?P<cls>[BM])_(?P<type>[A-Z]+)-(?P<slide>(?P<case>\d+-\d+)[A-Z]*)"
    r"-(?P<mag>\d+)-(?P<seq>\d+)\.png$", re.IGNORECASE)
# The patient folder: SOB_B_A_14-22549AB (underscore before the year in the real data).
_FOLDER_RE = re.compile(
    r"^SOB_[BM]_[A-Z]+[_-](?P<slide>(?P<case>\d+-\d+)[A-Z]*)$", re.IGNORECASE)
_MAG_DIR_RE = re.compile(r"^(?P<mag>\d+)X$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class ImageRecord:
  """One BreaKHis image, as its path describes it.

  Attributes:
    path: "/"-separated path inside the archive or below the manual dir.
    id: the file name, e.g. "SOB_B_A-14-22549AB-40-001.png" (unique in the dataset).
    label: "benign" or "malignant" (from the folder).
    tumor_type: one of TUMOR_TYPES (from the folder).
    patient_id: the dataset's patient/slide id, e.g. "14-22549AB".
    case_id: the id without its section letters, e.g. "14-22549": the unit of the split.
      BreaKHis names a slide "<number><section letters>", and several "patients" share a
      number (14-22549AB/CD/G; 14-21998AB/CD/EF; 14-13412 is filed both as ductal and
      as lobular carcinoma): sections of one specimen come from one patient, so they are
      kept together on the same side of the split.
    magnification: "40", "100", "200" or "400" (from the folder).
  """
  path: str
  id: str
  label: str
  tumor_type: str
  patient_id: str
  case_id: str
  magnification: str


def parse_path(path: str) -> ImageRecord | None:
  """Returns the record of a BreaKHis image path, or None if it is not one.

  Accepts any prefix before `histology_slides/breast/` (some mirrors nest the tree in an
  extra `BreaKHis_v1/`). The label, tumour type and magnification come from the folders;
  the patient from the file name, else from the patient folder.

  Raises:
    ValueError: a PNG inside the breast tree whose folders or name do not follow the
      BreaKHis layout (the builder skips it with a warning).
  """
  parts = path.replace("\\", "/").strip("/").split("/")
  if not parts[-1].lower().endswith(".png"):
    return None
  start = len(parts) - 7  # .../breast/<label>/SOB/<type>/<patient>/<mag>X/<file>
  if start < 0 or parts[start].lower() != "breast":
    return None
  label, procedure, tumor_type, patient_dir, mag_dir, name = parts[start + 1:]
  mag = _MAG_DIR_RE.match(mag_dir)
  if (label not in LABELS or procedure.upper() != "SOB" or mag is None
      or tumor_type not in (BENIGN_TYPES if label == "benign" else MALIGNANT_TYPES)):
    raise ValueError(f"{path}: not <benign|malignant>/SOB/<tumor type>/<patient>/<mag>X/")
  match = _FILE_RE.match(name) or _FOLDER_RE.match(patient_dir)
  if match is None:
    raise ValueError(f"{path}: no patient id in the file or folder name")
  file_match = _FILE_RE.match(name)
  if file_match and (file_match["cls"].upper() != label[0].upper()
                     or file_match["mag"] != mag["mag"]):
    logging.warning("breakhis: %s: file name disagrees with its folders; using the "
                    "folders (%s, %sX)", path, label, mag["mag"])
  return ImageRecord(path="/".join(parts), id=name, label=label, tumor_type=tumor_type,
                     patient_id=match["slide"].upper(), case_id=match["case"],
                     magnification=mag["mag"])


def group_stratified_split(ids: Sequence[str], labels: Sequence[str],
                           groups: Sequence[str], fraction: float,
                           seed: int) -> tuple[list[str], list[str]]:
  """The group-level analogue of `tfbackbones.data.splits.stratified_split`.

  Whole groups are selected: each group gets the most common label of its members (ties
  -> the first label in sorted order), then `stratified_split` draws `fraction` of the
  groups of every label, ranked by sha256(seed:group). No group is on both sides.

  Args:
    ids: unique example ids.
    labels: label of each id (stratification key).
    groups: group of each id (e.g. patient).
    fraction: share of each label's groups to select.
    seed: the split seed.

  Returns:
    (selected_ids, remaining_ids), each sorted.
  """
  from tfbackbones.data.splits import stratified_split
  votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for label, group in zip(labels, groups):
    votes[group][label] += 1
  group_label = {}
  for group, counter in votes.items():
    best = max(counter.values())
    group_label[group] = min(label for label, n in counter.items() if n == best)
    if len(counter) > 1:
      logging.warning("group %s has mixed labels %s; stratified as %s", group,
                      dict(counter), group_label[group])
  names = sorted(group_label)
  selected_groups, _ = stratified_split(
      names, [group_label[g] for g in names], fraction=fraction, seed=seed)
  selected_groups = set(selected_groups)
  selected = sorted(i for i, g in zip(ids, groups) if g in selected_groups)
  rest = sorted(i for i, g in zip(ids, groups) if g not in selected_groups)
  return selected, rest


def _config(magnification: str) -> tfds.core.BuilderConfig:
  return tfds.core.BuilderConfig(
      name=f"{magnification}x",
      description=f"The {magnification}X images (one of four optical magnifications).")


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for breakhis (configs 40x, 100x, 200x, 400x)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: one config per magnification; train/test split by "
               "case (patient), 70/30, stratified by label, seed 0.",
  }
  BUILDER_CONFIGS = [_config(m) for m in MAGNIFICATIONS]
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Download BreaKHis_v1.tar.gz (about 4 GB) from the BreaKHis page of the VRI lab, UFPR:
  {_HOMEPAGE}
  and put it in the manual dir as <manual_dir>/{ARCHIVE_NAME} (it is read as a stream;
  nothing is extracted). Or extract it there, so that
  <manual_dir>/{FOLDER_NAME}/histology_slides/breast/<benign|malignant>/SOB/<tumor_type>/
  <patient>/<40X|100X|200X|400X>/*.png exists (faster to read; 4 GB more disk).
  The manual dir is DownloadConfig(manual_dir=...), by default
  <data_dir>/downloads/manual/.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            # 700x460 RGB PNGs; a few real images differ, so the shape is not fixed.
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(names=list(LABELS)),
            "tumor_type": tfds.features.ClassLabel(names=list(TUMOR_TYPES)),
            "patient_id": tfds.features.Text(),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage=_HOMEPAGE,
        metadata=tfds.core.MetadataDict(),
    )

  def _source(self, manual_dir: epath.Path) -> epath.Path:
    """The extracted tree if present (faster), else the archive."""
    folder, archive = manual_dir / FOLDER_NAME, manual_dir / ARCHIVE_NAME
    if folder.is_dir():
      return folder
    if archive.exists():
      return archive
    raise FileNotFoundError(
        f"breakhis: neither {archive} nor {folder}/ exists.\n"
        f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Lists every image of every magnification, then splits by case."""
    manual_dir = epath.Path(dl_manager.manual_dir)
    source = self._source(manual_dir)
    records, unparsed = [], []
    for path in _list_paths(source, manual_dir):
      try:
        record = parse_path(path)
      except ValueError as e:
        logging.warning("breakhis: skipping %s", e)
        unparsed.append((path, str(e)))
        continue
      if record is not None:
        records.append(record)
    records, duplicates = _dedupe(records)
    if not records:
      raise FileNotFoundError(
          f"breakhis: no BreaKHis images found in {source}.\n"
          f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    # One split for all magnifications: a case is test at 40x iff it is test at 400x.
    test_ids, _ = group_stratified_split(
        [r.id for r in records], [r.label for r in records],
        [r.case_id for r in records], fraction=TEST_FRACTION, seed=SPLIT_SEED)
    test_ids = set(test_ids)
    mag = self.builder_config.name[:-1]
    mine = [r for r in records if r.magnification == mag]
    splits = {"train": [r for r in mine if r.id not in test_ids],
              "test": [r for r in mine if r.id in test_ids]}
    self.info.metadata.update({
        "source": source.name,
        "split_rule": (f"group_stratified_split(ids, labels, case ids, fraction="
                       f"{TEST_FRACTION}, seed={SPLIT_SEED}) over all magnifications"),
        "test_cases": sorted({r.case_id for r in records if r.id in test_ids}),
        "train_cases": sorted({r.case_id for r in records if r.id not in test_ids}),
        "unparsed_files": [p for p, _ in unparsed] + [p for p, _ in duplicates],
    })
    for split, chosen in splits.items():
      logging.info("breakhis/%s %s: %d images of %d patients (%d cases): %s",
                   self.builder_config.name, split, len(chosen),
                   len({r.patient_id for r in chosen}), len({r.case_id for r in chosen}),
                   dict(collections.Counter(r.label for r in chosen)))
    return {split: self._generate_examples(source, split, chosen)
            for split, chosen in splits.items()}

  def _generate_examples(self, source: epath.Path, split: str,
                         records: list[ImageRecord]):
    """Yields (file name, example); unreadable images are skipped and recorded."""
    by_path = {r.path: r for r in records}

    def encode(item):
      record, data = item
      try:
        return record, image_codec.encode_for_tfds(data, record.path)
      except image_codec.UnreadableImageError as e:
        return record, e

    skipped = []
    for record, result in image_codec.map_ordered(encode, _read(source, by_path)):
      if isinstance(result, Exception):
        logging.warning("breakhis: skipping unreadable image %s: %s", record.path, result)
        skipped.append((record.id, str(result)))
        continue
      yield record.id, {
          "image": result.data,
          "label": record.label,
          "tumor_type": record.tumor_type,
          "patient_id": record.patient_id,
          "id": record.id,
      }
    image_codec.record_skipped(self.info, split, skipped, len(records))


def _is_archive(source: epath.Path) -> bool:
  return source.name.endswith((".tar.gz", ".tgz", ".tar"))


def _list_paths(source: epath.Path, manual_dir: epath.Path) -> Iterator[str]:
  """Every file path in the source ("/"-separated; relative to manual_dir for a tree)."""
  if _is_archive(source):
    with source.open("rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
      for member in tar:  # Streaming: reads through the archive once, no extraction.
        if member.isfile():
          yield member.name
    return
  for dirpath, _, filenames in source.walk():
    rel_dir = epath.Path(dirpath).relative_to(manual_dir).as_posix()
    for name in filenames:
      yield f"{rel_dir}/{name}"


def _read(source: epath.Path, by_path: dict) -> Iterator[tuple[ImageRecord, bytes]]:
  """Yields (record, file bytes) for the wanted paths, in source order."""
  if _is_archive(source):
    with source.open("rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
      for member in tar:
        path = "/".join(member.name.replace("\\", "/").strip("/").split("/"))
        if member.isfile() and path in by_path:
          yield by_path[path], tar.extractfile(member).read()
    return
  manual_dir = source.parent
  for path in sorted(by_path):
    yield by_path[path], (manual_dir / path).read_bytes()


def _dedupe(records: list[ImageRecord]):
  """Keeps the first record (by path) of each file name: ids must be unique."""
  kept, duplicates, seen = [], [], {}
  for record in sorted(records, key=lambda r: r.path):
    if record.id in seen:
      logging.warning("breakhis: %s has the same file name as %s; keeping the latter",
                      record.path, seen[record.id])
      duplicates.append((record.path, "duplicate file name"))
      continue
    seen[record.id] = record.path
    kept.append(record)
  return kept, duplicates
