"""Deterministic, stratified, seeded splits keyed on example ids.

Why ids and not read order: TFDS shard layout, file order and `tf.data` interleaving can
change between machines and TFDS versions, so "the first 10% of class k" is not a stable
definition. Ranking examples by a hash of `(seed, example_id)` is: the same ids give the
same split on any machine, for any backbone, forever. This is how the validation split,
the paper's one-split datasets and the training-fraction subsets are all drawn.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence


def _rank_key(seed: int, example_id: str) -> str:
  return hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()


def stratified_split(ids: Sequence[str], labels: Sequence[Hashable], fraction: float,
                     seed: int, min_per_class: int = 0) -> tuple[list[str], list[str]]:
  """Splits `ids` into (selected, rest), taking `fraction` of every class.

  Within each class the examples are ordered by sha256(seed:id) and the first
  `round(fraction * n_class)` are selected (at least `min_per_class`, and never the whole
  class when `fraction < 1` and the class has more than one example, so both sides keep
  every class that can be kept).

  Args:
    ids: unique example ids (strings; bytes are decoded as UTF-8).
    labels: the class of each id, same length.
    fraction: share of each class to select, in [0, 1].
    seed: the split seed; the same seed and ids always give the same split.
    min_per_class: lower bound on the selected count per class.

  Returns:
    (selected_ids, remaining_ids), each sorted by id for stable output.
  """
  if len(ids) != len(labels):
    raise ValueError(f"ids and labels differ in length: {len(ids)} vs {len(labels)}")
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"fraction must be in [0, 1], got {fraction}")
  by_class: dict[Hashable, list[str]] = defaultdict(list)
  seen = set()
  for example_id, label in zip(ids, labels):
    example_id = example_id.decode("utf-8") if isinstance(example_id, bytes) else str(example_id)
    if example_id in seen:
      raise ValueError(f"duplicate example id {example_id!r}: split keys must be unique")
    seen.add(example_id)
    by_class[label].append(example_id)
  selected: list[str] = []
  rest: list[str] = []
  for label in sorted(by_class, key=str):
    members = sorted(by_class[label], key=lambda i: _rank_key(seed, i))
    n = len(members)
    k = int(math.floor(fraction * n + 0.5))
    k = max(k, min(min_per_class, n))
    if fraction < 1.0 and n > 1:
      k = min(k, n - 1)
    selected.extend(members[:k])
    rest.extend(members[k:])
  return sorted(selected), sorted(rest)


def class_counts(labels: Iterable[Hashable]) -> dict:
  """Returns {label: count}, for split reports and tests."""
  counts: dict = defaultdict(int)
  for label in labels:
    counts[label] += 1
  return dict(counts)


def group_stratified_split(ids: Sequence[str], labels: Sequence[Hashable],
                           groups: Sequence[str], fraction: float,
                           seed: int) -> tuple[list[str], list[str]]:
  """Like `stratified_split`, but whole groups (patients, cases) go to one side.

  Groups are assigned to the label of their first example, ranked within each label by
  sha256(seed:group), and taken until they hold `fraction` of that label's examples
  (at least one group, never all groups of a label that has several). No group is ever
  on both sides, which is what keeps a patient's images out of the selection split.

  Returns:
    (selected_ids, remaining_ids), each sorted.
  """
  if not len(ids) == len(labels) == len(groups):
    raise ValueError("ids, labels and groups differ in length")
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"fraction must be in [0, 1], got {fraction}")
  members: dict[str, list[str]] = defaultdict(list)
  group_label: dict[str, Hashable] = {}
  for example_id, label, group in zip(ids, labels, groups):
    example_id = example_id.decode("utf-8") if isinstance(example_id, bytes) else str(example_id)
    members[group].append(example_id)
    group_label.setdefault(group, label)
  by_label: dict[Hashable, list[str]] = defaultdict(list)
  for group, label in group_label.items():
    by_label[label].append(group)
  selected: list[str] = []
  rest: list[str] = []
  for label in sorted(by_label, key=str):
    ranked = sorted(by_label[label], key=lambda g: _rank_key(seed, g))
    total = sum(len(members[g]) for g in ranked)
    target = fraction * total
    taken = 0
    for i, group in enumerate(ranked):
      keep_one_back = len(ranked) > 1 and i == len(ranked) - 1 and fraction < 1.0
      if (taken < target or i == 0) and fraction > 0 and not keep_one_back:
        selected.extend(members[group])
        taken += len(members[group])
      else:
        rest.extend(members[group])
  return sorted(selected), sorted(rest)
