"""Candidates: which (backbone, weights) pairs to rank, from `--backbones` and `--weights`.

A candidate is a registered (or dynamic) backbone name plus the weights to build it with.
`name@none` / `name@imagenet` / `name@/path/file.weights.h5` overrides the default weights
for one candidate, so a pretrained backbone and the same architecture from random init
can be ranked side by side (`--backbones=resnet50,resnet50@none`).
"""

from __future__ import annotations

import dataclasses
import re

from tfbackbones import backbones
from tfbackbones.backbones import weights as weights_lib


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One thing to rank.

  Attributes:
    name: the backbone's registry name (or dynamic name), as `backbones.get` resolved it.
    weights: "imagenet", "none" or an absolute weights file path.
  """
  name: str
  weights: str

  @property
  def label(self) -> str:
    """How tables and files name it: always `backbone@weights` (`resnet50@imagenet`,
    `resnet50@none`, `resnet50@/path/w.weights.h5`), so a pretrained candidate and the
    same architecture from random init can never be confused; `parse` reads it back."""
    return f"{self.name}@{self.weights}"

  @property
  def slug(self) -> str:
    """A file-name-safe version of `label`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label).strip("_")[:80]


def _split(text: str, default_weights: str) -> tuple[str, str]:
  """`name@weights` -> (name, weights); a bare name gets the default weights."""
  head, sep, tail = text.rpartition("@")
  if sep and head and (tail.lower() in ("imagenet", "none")
                       or tail.endswith(weights_lib.WEIGHTS_SUFFIXES)):
    return head, tail
  return text, default_weights


def parse(names, default_weights: str) -> list[Candidate]:
  """Resolves `--backbones` into candidates, in the order given, without duplicates.

  Args:
    names: backbone names (`all` = every registered backbone), each optionally with
      `@weights`.
    default_weights: weights of names without `@`.

  Returns:
    The candidates.

  Raises:
    UnknownBackboneError: for a name the registry does not know (lists valid names).
  """
  out = []
  for text in names:
    if text.strip().lower() == "all":
      expanded = [(n, default_weights) for n in backbones.names()]
    else:
      expanded = [_split(text.strip(), default_weights)]
    for name, weights in expanded:
      spec = backbones.get(name)
      candidate = Candidate(spec.name, weights_lib.parse_weights_arg(weights))
      if candidate not in out:
        out.append(candidate)
  return out
