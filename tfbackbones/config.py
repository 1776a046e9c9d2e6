"""Typed run configuration.

Flags are read only by the entry points (`tfbackbones.train`, `experiments.*`); they build
a `TrainConfig`, and the library takes that object. `validate()` names each bad value and
how to fix it before anything heavy (TensorFlow, data, models) is touched, so a typo costs
a second, not a prepared dataset.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any

from tfbackbones import imagesize

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SELECT_ON = ("val", "test")
CACHE_MODES = ("auto", "memory", "none")
AUGMENT_AT = ("cached", "native")

# Fields that define what is trained. Resuming a workdir with any of them changed would
# silently mix two experiments, so `same_experiment` refuses it.
_EXPERIMENT_FIELDS = (
    "backbone", "dataset", "weights", "image_size", "batch_size", "seed", "split_seed",
    "train_fraction", "val_fraction", "select_on", "adamw_patience", "sgd_patience",
    "max_epochs", "adamw_lr", "adamw_weight_decay", "sgd_lr", "sgd_momentum", "dropout",
    "freeze_backbone", "augment", "augment_at", "bn_momentum", "label_smoothing",
    "min_steps_per_epoch", "min_images_per_class", "precise_bn",
)
# The largest input side accepted: one float32 input batch of 64 at 4096x4096 is already
# 12 GiB before any activation. Larger sizes fail in validate() with the estimate.
MAX_IMAGE_SIDE = 4096


class ConfigError(ValueError):
  """A configuration value is invalid; the message says which and how to fix it."""


@dataclasses.dataclass
class TrainConfig:
  """Everything that defines one fine-tuning run.

  Attributes mirror the `python -m tfbackbones.train` flags; see `tfbackbones/train.py`
  for their help texts. `image_size=0` means the dataset's protocol size; a square
  size is an int, a non-square one the string `WIDTHxHEIGHT` (`"672x448"`, see
  `tfbackbones/imagesize.py`). `validate()` brings it to that canonical form, so a config
  read back from config.json compares equal.
  """
  backbone: str = "efficientnetv2_b0"
  dataset: str = "sklearn_digits"
  workdir: str = "runs/default"
  data_dir: str | None = None
  manual_dir: str | None = None
  weights: str = "imagenet"
  image_size: int | str = 0
  batch_size: int = 64
  # Lower the batch so an epoch has at least this many steps (small data; 0 = keep
  # batch_size as given). protocols.resolve sets 0 when the user gives --batch_size.
  # See tfbackbones/training/batching.py.
  min_steps_per_epoch: int = 10
  # 0: a class without a train or validation image is an error. N: drop classes with
  # fewer than N images (tfbackbones/data/checks.py).
  min_images_per_class: int = 0
  seed: int = 0
  split_seed: int = 42
  train_fraction: float = 1.0
  val_fraction: float = 0.1
  select_on: str = "val"
  adamw_patience: int = 10
  sgd_patience: int = 10
  max_epochs: int = 300
  adamw_lr: float = 1e-3
  adamw_weight_decay: float = 0.01
  sgd_lr: float = 1e-3
  sgd_momentum: float = 0.9
  dropout: float = 0.0
  label_smoothing: float = 0.0
  freeze_backbone: bool = False
  augment: str = "auto"
  augment_at: str = "cached"
  bn_momentum: float | None = None
  # Re-estimate BatchNorm statistics on training images before every evaluation
  # (tfbackbones/training/precise_bn.py). None = auto: on when an epoch has fewer than
  # batching.FEW_STEPS steps (measured to lift such runs off chance, docs/results.md).
  precise_bn: bool | None = None
  strategy: str = "auto"
  tpu: str | None = None
  cpu_replicas: int = 1
  precision: str = "auto"
  steps_per_execution: int = 32
  fused_kernels: bool = True
  cache: str = "auto"
  download: bool = True
  keep_checkpoints: int = 2
  checkpoint_min_steps: int = 0

  def validate(self) -> TrainConfig:
    """Raises ConfigError naming the first bad value and the fix; returns self."""
    def bad(name: str, value: Any, fix: str):
      raise ConfigError(f"--{name}={value!r} is invalid: {fix}")

    if not 0.0 < self.train_fraction <= 1.0:
      bad("train_fraction", self.train_fraction, "it must be in (0, 1], e.g. 0.1 for 10%.")
    if self.select_on not in SELECT_ON:
      bad("select_on", self.select_on, f"choose one of {', '.join(SELECT_ON)}.")
    if self.select_on == "val" and not 0.0 < self.val_fraction < 1.0:
      bad("val_fraction", self.val_fraction,
          "it must be in (0, 1) when selecting on a validation split (default 0.1).")
    for name in ("adamw_patience", "sgd_patience"):
      if getattr(self, name) < 1:
        bad(name, getattr(self, name), "patience counts epochs without improvement; use >= 1.")
    for name in ("min_steps_per_epoch", "min_images_per_class"):
      if getattr(self, name) < 0:
        bad(name, getattr(self, name), "use 0 (off) or a positive number.")
    if self.max_epochs < 1:
      bad("max_epochs", self.max_epochs, "use >= 1.")
    if self.batch_size < 1:
      bad("batch_size", self.batch_size, "use >= 1 (it is the global batch over all replicas).")
    try:
      size = imagesize.parse(self.image_size)
    except imagesize.SizeError as e:
      bad("image_size", self.image_size, str(e))
    if size is not None and min(size) < 32:
      bad("image_size", self.image_size, "use 0 (the dataset's protocol size), a side "
          ">= 32 (`224`), or WIDTHxHEIGHT with both >= 32 (`672x448`).")
    if size is not None and max(size) > MAX_IMAGE_SIDE:
      batch_gib = self.batch_size * size[0] * size[1] * 3 * 4 / 2**30
      image_mib = size[0] * size[1] * 3 / 2**20
      bad("image_size", self.image_size,
          f"the largest side accepted is {MAX_IMAGE_SIDE}: at this size one float32 input "
          f"batch of {self.batch_size} takes {batch_gib:.1f} GiB before any activation, "
          f"and each cached image {image_mib:.0f} MiB. Use 0 (the dataset's protocol "
          "size) or e.g. 224.")
    self.image_size = imagesize.canonical(size)
    if self.strategy not in STRATEGIES:
      bad("strategy", self.strategy, f"choose one of {', '.join(STRATEGIES)}.")
    if self.strategy == "tpu" and not self.tpu:
      bad("tpu", self.tpu, "--strategy=tpu needs --tpu=NAME (or --tpu=local on a TPU VM).")
    if self.precision not in PRECISIONS:
      bad("precision", self.precision, f"choose one of {', '.join(PRECISIONS)}.")
    if self.cache not in CACHE_MODES:
      bad("cache", self.cache, f"choose one of {', '.join(CACHE_MODES)}.")
    if not 0.0 <= self.dropout < 1.0:
      bad("dropout", self.dropout, "it must be in [0, 1).")
    if not 0.0 <= self.label_smoothing < 1.0:
      bad("label_smoothing", self.label_smoothing, "it must be in [0, 1).")
    if self.bn_momentum is not None and not 0.0 < self.bn_momentum < 1.0:
      bad("bn_momentum", self.bn_momentum, "it must be in (0, 1), or unset to keep the model's.")
    if self.cpu_replicas < 1:
      bad("cpu_replicas", self.cpu_replicas, "use 1 (one device) or the number of cores.")
    if self.steps_per_execution < 1:
      bad("steps_per_execution", self.steps_per_execution, "use >= 1.")
    if self.augment not in ("auto", "none", "flip", "trivial"):
      bad("augment", self.augment, "choose one of auto, none, flip, trivial.")
    if self.augment_at not in AUGMENT_AT:
      bad("augment_at", self.augment_at, f"choose one of {', '.join(AUGMENT_AT)}.")
    for name in ("adamw_lr", "sgd_lr"):
      value = getattr(self, name)
      if not (math.isfinite(value) and value > 0):
        bad(name, value, "a learning rate must be a finite number > 0 (e.g. 1e-3).")
    if not self.workdir:
      bad("workdir", self.workdir, "give a directory for checkpoints, logs and result.json.")
    if self.checkpoint_min_steps < 0:
      bad("checkpoint_min_steps", self.checkpoint_min_steps, "give 0 (a checkpoint every "
          "epoch) or the training steps a checkpoint may be apart (e.g. 20).")
    if self.keep_checkpoints < 1:
      bad("keep_checkpoints", self.keep_checkpoints, "a run resumes from its newest "
          "checkpoint, so keep >= 1 (2 also survives a damaged newest one).")
    return self

  @property
  def selected_on_test(self) -> bool:
    return self.select_on == "test"

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ConfigError(f"unknown config keys {unknown}; valid keys: {sorted(known)}")
    return cls(**values)

  def replace(self, **changes) -> TrainConfig:
    return dataclasses.replace(self, **changes)

  def experiment_diff(self, other: TrainConfig) -> dict:
    """Returns {field: (self_value, other_value)} for fields that define the experiment."""
    return {f: (getattr(self, f), getattr(other, f)) for f in _EXPERIMENT_FIELDS
            if getattr(self, f) != getattr(other, f)}


# ------------------------------------------------------------------ one override language
def field_names() -> list[str]:
  return [f.name for f in dataclasses.fields(TrainConfig)]


def parse_assignment(text: str) -> tuple[str, Any]:
  """`KEY=VALUE` -> (key, value typed by TrainConfig's type hint for KEY).

  The one override language of every entry point (`train --set`, `experiments.run
  --set`): types come from the dataclass's hints, sizes from the project's size parser
  (`image_size=672x448`), `none` clears an Optional field.

  Raises:
    ConfigError: naming the key or value and what is accepted.
  """
  key, sep, raw = text.partition("=")
  key, raw = key.strip(), raw.strip()
  hints = typing.get_type_hints(TrainConfig)
  if not sep or key not in hints:
    close = [n for n in field_names() if key and (key in n or n in key)]
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(f"--set={text!r}: use KEY=VALUE with KEY a TrainConfig field{hint}: "
                      f"{', '.join(field_names())}")
  kind = hints[key]
  args = typing.get_args(kind)
  optional = type(None) in args
  if optional and raw.lower() in ("none", "null", ""):
    return key, None
  if key == "image_size":
    try:
      return key, imagesize.canonical(imagesize.parse(raw))
    except imagesize.SizeError as e:
      raise ConfigError(f"--set={text!r}: {e}") from None
  base = next((a for a in args if a is not type(None)), kind) if args else kind
  try:
    if base is bool:
      if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(raw)
      return key, raw.lower() in ("true", "1", "yes")
    if base is int:
      return key, int(raw)
    if base is float:
      return key, float(raw)
  except ValueError:
    raise ConfigError(f"--set={text!r}: {key} takes a {base.__name__} value") from None
  return key, raw


def parse_assignments(texts) -> dict:
  """Every `KEY=VALUE` of a repeated flag, typed; later ones win."""
  return dict(parse_assignment(t) for t in texts or ())
