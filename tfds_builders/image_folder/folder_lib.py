"""Reading a class-per-subfolder image tree: classes, files, splits and a fingerprint.

Shared by the `image_folder` builder ("your own data") and `plantclef`. Two layouts:

    root/<class>/**/<image>                      "flat": the builder draws a stratified,
                                                 seeded test split keyed on file paths
    root/train/<class>/**/<image>                "split": the folders are the splits
    root/test/<class>/**/<image>
    root/val/<class>/**/<image>   (optional; also "valid" or "validation")

In the split layout a `val/` folder becomes the TFDS split "validation"; if there is no
`test/`, the held-out folder is the only one and becomes "test" (the paper's reference
code reads PlantCLEF as `train/` + `val/` and tests on `val/`).

File paths are relative to `root`, with "/" separators, and are the examples' ids: they
are stable across machines, unlike read order. Hidden files and folders (".", "__MACOSX")
are ignored; so are files whose extension is not an image's (they are counted), and
symbolic links whose target is gone (counted as broken links: one stale link must not
fail a whole dataset).
"""

from __future__ import annotations

import dataclasses
import hashlib

from etils import epath

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".tif", ".tiff",
    ".webp", ".ppm", ".pgm", ".pbm", ".pnm",
})
TRAIN_DIR = "train"
TEST_DIR = "test"
VALIDATION_DIRS = ("val", "valid", "validation")


@dataclasses.dataclass(frozen=True)
class FolderScan:
  """What a folder holds, before any image is read.

  Attributes:
    layout: "flat" or "split" (see the module docstring).
    class_names: sorted class folder names: the ClassLabel names, in this order.
    files: {folder split name or "all": [(relative path, class index)]}, sorted by path.
      The flat layout has the single key "all".
    split_dirs: {TFDS split name: folder name}, for the split layout; {} for flat.
    ignored: relative paths of files skipped for their extension.
    fingerprint: sha256 of every image file's relative path and size (see `fingerprint`).
    broken_links: relative paths of symbolic links whose target does not exist (skipped).
  """
  layout: str
  class_names: list[str]
  files: dict[str, list[tuple[str, int]]]
  split_dirs: dict[str, str]
  ignored: list[str]
  fingerprint: str
  broken_links: list[str] = dataclasses.field(default_factory=list)

  @property
  def num_files(self) -> int:
    return sum(len(v) for v in self.files.values())


def _hidden(name: str) -> bool:
  return name.startswith(".") or name == "__MACOSX"


def _subdirs(path: epath.Path) -> list[str]:
  return sorted(p.name for p in path.iterdir() if p.is_dir() and not _hidden(p.name))


def _walk_files(top: epath.Path, rel_top: str) -> list[tuple[str, epath.Path]]:
  """All non-hidden files under `top`, as (path relative to the root, path)."""
  found = []
  for dirpath, dirnames, filenames in top.walk():
    dirnames[:] = [d for d in dirnames if not _hidden(d)]  # prunes the walk
    rel_dir = epath.Path(dirpath).relative_to(top).as_posix()
    prefix = rel_top if rel_dir in ("", ".") else f"{rel_top}/{rel_dir}"
    for name in filenames:
      if not _hidden(name):
        found.append((f"{prefix}/{name}", epath.Path(dirpath) / name))
  return sorted(found)


def split_layout(root: epath.Path) -> dict[str, str]:
  """{TFDS split: folder} if `root` holds `train/` and a held-out folder, else {}.

  Raises:
    ValueError: `root` holds train/ and test/ (or val/) next to other folders, which
      would be ambiguous (are they classes?).
  """
  subdirs = _subdirs(root)
  held_out = [d for d in subdirs if d == TEST_DIR or d in VALIDATION_DIRS]
  if TRAIN_DIR not in subdirs or not held_out:
    return {}
  others = sorted(set(subdirs) - {TRAIN_DIR} - set(held_out))
  if others:
    raise ValueError(
        f"{root} has {TRAIN_DIR}/ and {'/, '.join(held_out)}/ but also {others}: either "
        "put only class folders in it, or only train/, test/ (and val/) folders")
  validation = [d for d in held_out if d in VALIDATION_DIRS]
  if len(validation) > 1:
    raise ValueError(f"{root} has several validation folders: {validation}")
  dirs = {"train": TRAIN_DIR}
  if TEST_DIR in held_out:
    dirs["test"] = TEST_DIR
    if validation:
      dirs["validation"] = validation[0]
  else:
    dirs["test"] = validation[0]  # The only held-out folder is the test set.
  return dirs


def scan(root: epath.PathLike) -> FolderScan:
  """Lists the classes and image files under `root` (no image is opened).

  Args:
    root: the folder (local or any path `etils.epath` reads, e.g. gs://).

  Returns:
    A `FolderScan`.

  Raises:
    FileNotFoundError: `root` does not exist or is not a folder.
    ValueError: no class folder, a class folder without images (flat layout), or an
      ambiguous split layout.
  """
  root = epath.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"image folder not found: {root}")
  split_dirs = split_layout(root)
  tops = ({folder: root / folder for folder in split_dirs.values()}
          if split_dirs else {"": root})
  per_top_classes = {key: _subdirs(top) for key, top in tops.items()}
  class_names = sorted(set().union(*per_top_classes.values()))
  if not class_names:
    raise ValueError(f"{root} has no class folders: expected {root}/<class>/<image>")
  if len(class_names) < 2:
    raise ValueError(f"{root} has one class folder ({class_names[0]!r}): a classifier needs "
                     f"at least two; put each class's images in its own folder, "
                     f"{root}/<class>/<image>")
  class_index = {name: i for i, name in enumerate(class_names)}

  files: dict[str, list[tuple[str, int]]] = {}
  ignored: list[str] = []
  broken: list[str] = []
  digest = hashlib.sha256()
  for key, top in tops.items():
    entries = []
    for name in per_top_classes[key]:
      rel_top = f"{key}/{name}" if key else name
      for rel, path in _walk_files(top / name, rel_top):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
          ignored.append(rel)
          continue
        if not path.exists():  # a symbolic link whose target is gone
          broken.append(rel)
          continue
        entries.append((rel, class_index[name]))
        digest.update(f"{rel}\t{path.stat().length}\n".encode())
    files[key or "all"] = sorted(entries)
  # Files placed directly in root (or in train/, test/) belong to no class.
  for top in [root] + [t for t in tops.values() if t != root]:
    ignored.extend(
        p.relative_to(root).as_posix() for p in top.iterdir()
        if not p.is_dir() and not _hidden(p.name))

  if not split_dirs:
    counts = {i: 0 for i in range(len(class_names))}
    for _, label in files["all"]:
      counts[label] += 1
    empty = [class_names[i] for i, n in counts.items() if n == 0]
    if empty:
      raise ValueError(f"{root}: class folders without any image file: {empty}")
  return FolderScan(
      layout="split" if split_dirs else "flat", class_names=class_names, files=files,
      split_dirs=split_dirs, ignored=sorted(ignored), fingerprint=digest.hexdigest(),
      broken_links=sorted(broken))


def fingerprint(root: epath.PathLike) -> str:
  """The content fingerprint of `root`: changes when an image is added, removed,
  renamed or changes size. Costs one directory walk and one stat per file."""
  return scan(root).fingerprint


def assign_splits(folder: FolderScan, test_fraction: float,
                  seed: int) -> dict[str, list[tuple[str, int]]]:
  """{TFDS split: [(relative path, class index)]}, each sorted by path.

  The split layout keeps its folders (an empty one is dropped: TFDS cannot write an
  empty split). The flat layout is split with `tfbackbones.data.splits.stratified_split`
  keyed on the relative paths: per class, the files are ranked by sha256(seed:path) and
  the first round(test_fraction * n) -- at least one, never all -- are test, so the
  split depends only on the file names, never on read order or machine, and every class
  with two or more images is tested.
  """
  if folder.layout == "split":
    return {split: folder.files[directory]
            for split, directory in folder.split_dirs.items() if folder.files[directory]}
  from tfbackbones.data.splits import stratified_split
  entries = folder.files["all"]
  label_of = dict(entries)
  test, train = stratified_split(
      [rel for rel, _ in entries], [label for _, label in entries],
      fraction=test_fraction, seed=seed, min_per_class=1)
  return {"train": [(rel, label_of[rel]) for rel in train],
          "test": [(rel, label_of[rel]) for rel in test]}
