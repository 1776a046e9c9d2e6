"""Checks of a dataset's classes before anything trains (docs/results.md, "data checks").

A class with no training image keeps its head unit but can never be predicted for a
reason; a class with no validation image cannot take part in selection. Both make every
number of the run quietly wrong, and on small folders both happen easily: a 1-image
class goes to test only, a 2-image class to val and test, a class whose files are all
corrupt keeps nothing, and in a train/test layout a class only in test/ is scored but
never trained. So every class needs at least one train and one validation image after
unreadable files were skipped; otherwise the run stops with one error that lists the
classes and their counts, or, with `--min_images_per_class=N`, those classes (and any
with fewer than N images in the training pool) are dropped with a warning and the head
gets one unit per remaining class.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence


class DataError(ValueError):
  """The data cannot train a classifier as it is; the message names the data and the fix."""


@dataclasses.dataclass
class ClassPlan:
  """Which classes a run keeps.

  Attributes:
    keep: old label -> new label for kept classes, in the original order.
    dropped: {class name: {"train": n, "val": n, "test": n}} of the dropped classes.
  """
  keep: dict
  dropped: dict

  @property
  def changed(self) -> bool:
    return bool(self.dropped)


def _count(counts: Sequence[int] | None, i: int) -> int | None:
  return None if counts is None else int(counts[i])


def starved_classes(train: Sequence[int], val: Sequence[int] | None, *,
                    needs_val: bool = True) -> list[int]:
  """Indices of the classes fine-tuning cannot use: no training image, or no validation
  image when selection needs one. The one rule `plan_classes` and the recommender apply."""
  return [i for i in range(len(train))
          if train[i] == 0 or (needs_val and val is not None and val[i] == 0)]


def plan_classes(name: str, class_names: Sequence[str], counts: dict, *, needs_val: bool,
                 min_images_per_class: int = 0) -> ClassPlan:
  """Decides which classes to keep, or raises DataError.

  Args:
    name: the dataset's name, for messages.
    class_names: the head's classes, in label order.
    counts: {"train": [n per class], "val": [...] or None, "test": [...] or None}.
    needs_val: whether selection runs on a validation split drawn from train.
    min_images_per_class: 0: starved classes are an error. N > 0: drop every class with
      fewer than N images in the training pool (train + val) or without a train or
      val image, with a warning.

  Raises:
    DataError: starved classes without `min_images_per_class`, fewer than two classes,
      or fewer than two left after dropping.
  """
  train, val, test = counts["train"], counts.get("val"), counts.get("test")
  if len(class_names) < 2:
    raise DataError(f"{name} has {len(class_names)} class(es) ({', '.join(class_names)}): "
                    "a classifier needs at least two. Add a folder per class.")

  def pool(i):
    return train[i] + ((_count(val, i) or 0) if needs_val else 0)

  table = {c: {"train": train[i], "val": _count(val, i), "test": _count(test, i)}
           for i, c in enumerate(class_names)}
  bad = starved_classes(train, val, needs_val=needs_val)
  if min_images_per_class <= 0:
    if bad:
      listed = "; ".join(f"{class_names[i]!r}: {train[i]} train, {_count(val, i)} val, "
                         f"{_count(test, i)} test" for i in bad)
      raise DataError(
          f"{name}: {len(bad)} class(es) have no training or no validation image (after "
          f"unreadable files were skipped): {listed}. Every class needs at least one "
          "train and one validation image: add images (a flat folder needs about 4 per "
          "class: 20% go to test, 10% of the rest to validation), remove the class "
          "folder, or pass --min_images_per_class=N to drop classes with fewer than N "
          "images.")
    return ClassPlan(keep={i: i for i in range(len(class_names))}, dropped={})
  drop = sorted(set(bad) | {i for i in range(len(class_names))
                            if pool(i) < min_images_per_class})
  kept = [i for i in range(len(class_names)) if i not in drop]
  if len(kept) < 2:
    raise DataError(f"{name}: --min_images_per_class={min_images_per_class} leaves "
                    f"{len(kept)} class(es) of {len(class_names)}; a classifier needs two. "
                    "Lower it or add images.")
  dropped = {class_names[i]: table[class_names[i]] for i in drop}
  if dropped:
    logging.warning("%s: dropping %d class(es) with fewer than %d images or without a "
                    "train/val image (--min_images_per_class): %s", name, len(dropped),
                    min_images_per_class, dropped)
  return ClassPlan(keep={old: new for new, old in enumerate(kept)}, dropped=dropped)
