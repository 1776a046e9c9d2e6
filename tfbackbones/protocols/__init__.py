r"""Protocols as code: the one place that turns a run's cell into a full `TrainConfig`.

A protocol is a registered function `(dataset, backbone, seed, train_fraction) ->
TrainConfig` that owns every rule of a way of training: optimiser settings, patience,
epochs, and each per-dataset departure (resolution, augmentation, patience). Both entry
points use it — `python -m tfbackbones.train --protocol=NAME` for one run and every study
in `experiments/studies.py` for grids — so a single run and the same cell of a study are
the same experiment by construction (tests/test_protocols.py checks all 660 paper cells).
Flagfiles in `flags/` select a protocol and set deployment flags; they restate no numbers.

This follows big_vision's `configs/transfer.py` (one function holds every per-dataset
rule) and Model Garden's `exp_factory` (registered, typed experiment factories). The
rules and where the project departs from the paper are written up in docs/protocol.md.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

from tfbackbones.config import ConfigError, TrainConfig, parse_assignments

ProtocolFn = Callable[..., TrainConfig]
_PROTOCOLS: dict[str, ProtocolFn] = {}


class UnknownProtocolError(ConfigError):
  """A protocol name that is not registered; the message lists the valid ones."""


def register(name: str):
  """Registers `fn(dataset, backbone, seed, train_fraction) -> TrainConfig` as `name`."""
  def add(fn: ProtocolFn) -> ProtocolFn:
    if name in _PROTOCOLS:
      raise ValueError(f"protocol {name!r} is registered twice")
    _PROTOCOLS[name] = fn
    return fn
  return add


def names() -> list[str]:
  return sorted(_PROTOCOLS)


def describe(name: str) -> str:
  return (inspect.getdoc(get(name)) or "").splitlines()[0]


def get(name: str) -> ProtocolFn:
  if name in _PROTOCOLS:
    return _PROTOCOLS[name]
  close = difflib.get_close_matches(name or "", names(), n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  raise UnknownProtocolError(
      f"unknown protocol {name!r}.{hint} Protocols: " +
      "; ".join(f"{n} ({describe(n)})" for n in names()))


def build(name: str, *, dataset: str, backbone: str, seed: int = 0,
          train_fraction: float = 1.0) -> TrainConfig:
  """The protocol's full config for one cell (not yet validated; no workdir set)."""
  return get(name)(dataset=dataset, backbone=backbone, seed=seed,
                   train_fraction=float(train_fraction))


# The flags that choose a protocol's cell; any other given value overrides the protocol.
CELL = ("dataset", "backbone", "seed", "train_fraction")


def resolve(name: str, given: dict, assignments=()) -> TrainConfig:
  """A single run's config: the protocol's for the cell, then `given`, then assignments.

  Args:
    name: a registered protocol.
    given: {TrainConfig field: value} the user gave (flags); the cell's fields choose the
      protocol's config, the others override it. Missing cell fields take TrainConfig's
      defaults.
    assignments: `KEY=VALUE` strings (`--set`), applied last.
  """
  defaults = TrainConfig()
  cell = {k: given.get(k, getattr(defaults, k)) for k in CELL}
  rest = {k: v for k, v in given.items() if k not in CELL}
  overrides = {**rest, **parse_assignments(assignments)}
  if "batch_size" in overrides and "min_steps_per_epoch" not in overrides:
    # A batch the user chose is kept as it is; only the protocol's default batch is
    # lowered for small data (tfbackbones/training/batching.py).
    overrides["min_steps_per_epoch"] = 0
  return build(name, **cell).replace(**overrides)


# Registration: importing the modules registers their protocols.
from tfbackbones.protocols import paper, quickstart  # noqa: E402,F401
