"""The typed run result: what `result.json` holds, its one definition.

Every writer (the trainer for finished and unhealthy runs, the trainer and the study
runner for failures) builds a `RunResult`; every reader (the report, the study runner,
the recommender) parses one with `RunResult.from_json`. A renamed or missing key is a
`ResultError` naming the file, never a silently dropped run.

Statuses (docs/results.md):
  finished    a real result: the test split evaluated once, on the best weights.
  diverged    a non-finite loss stopped training; never ranked.
  degenerate  the best validation top-1 was no better than always guessing the majority
              class, or the test top-1 is not significantly better than that (a one-sided
              exact binomial test, tfbackbones/significance.py); never ranked.
  failed      an error stopped the run (`error` says which).

Only `finished` runs are results: `ranked` is the one test of that rule, so the report
and the recommender cannot disagree on it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from tfbackbones import significance as significance_lib
from tfbackbones.config import TrainConfig
from tfbackbones.jsonable import jsonable

# 3: `significance` (the test top-1 against the majority-class rate). Older files are
# read as they are; `from_dict` runs the test on an old finished run when the file holds
# what it needs (`_judge_old`).
SCHEMA_VERSION = 3
FINISHED, DIVERGED, DEGENERATE, FAILED = "finished", "diverged", "degenerate", "failed"
STATUSES = (FINISHED, DIVERGED, DEGENERATE, FAILED)
VAL_SPLIT, ON_TEST = "val-split", "selected-on-test"
METRIC_KEYS = ("loss", "top1", "top5", "balanced_accuracy", "macro_f1", "count")


class ResultError(ValueError):
  """A result.json that cannot be read as a RunResult; the message names file and fix."""


def selection_protocol(config: TrainConfig) -> str:
  return ON_TEST if config.selected_on_test else VAL_SPLIT


@dataclasses.dataclass
class RunResult:
  """One run's outcome. Fields after `error` are set for runs that reached training.

  Attributes:
    status: one of STATUSES.
    backbone, dataset, seed, train_fraction: the run's cell (also in `config`).
    config: the resolved TrainConfig as a dict.
    selection_protocol: val-split | selected-on-test.
    error: why a failed run failed.
    reason: why a run is diverged or degenerate (a sentence).
    domain: the dataset's domain, when known.
    class_names: the head's classes, in output order.
    val, test: metrics of the best epoch on val, and of the one test evaluation
      (`METRIC_KEYS`; fractions, not percent).
    selection: select_on, selected_on_test, metric, best_epoch (0-based), best_value.
    significance: the test top-1 against the test split's majority-class rate: split, n,
      correct, top1, majority_rate, p_value, comparisons, alpha, best_p_value,
      significant, test (`significance.Significance.to_dict`); None before schema 3 or
      when no test split was evaluated.
    epochs: {"adamw", "sgd", "total"}.
    data: facts of the data the run saw (split counts, skipped files, ...).
    resources: params, trainable_params, model_size_mb, train_images_per_sec,
      peak_host_memory_mb, global_batch, replicas, strategy, precision.
    extra: keys written by a newer version, kept so that rewriting loses nothing.
  """
  status: str
  backbone: str
  dataset: str
  seed: int
  train_fraction: float
  config: dict
  selection_protocol: str = VAL_SPLIT
  error: str | None = None
  reason: str | None = None
  domain: str | None = None
  num_classes: int | None = None
  class_names: list | None = None
  image_size: Any = None
  split_seed: int | None = None
  split_counts: dict | None = None
  data: dict = dataclasses.field(default_factory=dict)
  augmentation: dict | None = None
  backbone_info: dict | None = None
  selection: dict | None = None
  significance: dict | None = None
  val: dict | None = None
  test: dict | None = None
  epochs: dict | None = None
  switch_epoch: int | None = None
  stop_reason: str | None = None
  wall_time_sec: float = 0.0
  params: int | None = None
  trainable_params: int | None = None
  model_size_mb: float | None = None
  train_images_per_sec: float | None = None
  peak_host_memory_mb: float | None = None
  strategy: str | None = None
  replicas: int | None = None
  precision: str | None = None
  global_batch: int | None = None
  versions: dict | None = None
  finished_at: str | None = None
  schema_version: int = SCHEMA_VERSION
  extra: dict = dataclasses.field(default_factory=dict)

  # ------------------------------------------------------------------ rules
  @property
  def ranked(self) -> bool:
    """True only for a real result: finished, with a finite test top-1."""
    return (self.status == FINISHED and self.test is not None
            and _finite(self.test.get("top1")))

  @property
  def selected_on_test(self) -> bool:
    return self.selection_protocol == ON_TEST

  @property
  def test_top1(self) -> float | None:
    return self.test.get("top1") if self.test else None

  # ------------------------------------------------------------------ building
  @classmethod
  def failure(cls, config: TrainConfig, error: BaseException | str, *, seconds: float,
              domain: str | None = None) -> RunResult:
    """The result of a run that an error stopped."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return cls.for_config(config, status=FAILED, error=message, wall_time_sec=seconds,
                          domain=domain)

  @classmethod
  def for_config(cls, config: TrainConfig, **fields) -> RunResult:
    """A result whose cell and protocol come from `config`; `fields` set the rest."""
    return cls(backbone=config.backbone, dataset=config.dataset, seed=config.seed,
               train_fraction=config.train_fraction, config=config.to_dict(),
               selection_protocol=selection_protocol(config), split_seed=config.split_seed,
               **fields)

  # ------------------------------------------------------------------ (de)serialising
  def to_dict(self) -> dict:
    values = dataclasses.asdict(self)
    extra = values.pop("extra")
    return {**extra, **values}

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=jsonable)

  @classmethod
  def from_dict(cls, values: Any, source: str = "result.json") -> RunResult:
    """Parses a result dict; raises ResultError naming `source` and what is wrong."""
    if not isinstance(values, dict):
      raise ResultError(f"{source}: expected a JSON object, found "
                        f"{type(values).__name__}; delete the file to rerun the run")
    fields = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: v for k, v in values.items() if k in fields}
    extra = {k: v for k, v in values.items() if k not in fields}
    config = known.get("config") if isinstance(known.get("config"), dict) else {}
    # Version 1 (before this schema) wrote the cell at the top level and in `config`.
    for key in ("backbone", "dataset", "seed", "train_fraction"):
      if known.get(key) is None and key in config:
        known[key] = config[key]
    known.setdefault("config", config)
    known.setdefault("schema_version", 1)
    if "selection_protocol" not in known:
      known["selection_protocol"] = ON_TEST if config.get("select_on") == "test" else VAL_SPLIT
    missing = [k for k in ("status", "backbone", "dataset") if known.get(k) is None]
    if missing:
      raise ResultError(f"{source}: no {', '.join(missing)}; the file is damaged or "
                        "not a tfbackbones result: delete it to rerun the run")
    if known["status"] not in STATUSES:
      raise ResultError(f"{source}: unknown status {known['status']!r} (expected one "
                        f"of {', '.join(STATUSES)})")
    if known["status"] == FINISHED:
      for split in ("val", "test"):
        metrics = known.get(split)
        if not isinstance(metrics, dict) or "top1" not in metrics:
          raise ResultError(f"{source}: a finished run without {split} metrics; the "
                            "file is damaged: delete it to evaluate the run again")
    if known["schema_version"] < 3 and known["status"] == FINISHED:
      _judge_old(known)
    known.setdefault("seed", 0)
    known.setdefault("train_fraction", 1.0)
    try:
      known["train_fraction"] = float(known["train_fraction"])
    except (TypeError, ValueError):
      raise ResultError(f"{source}: train_fraction {known['train_fraction']!r} is not a "
                        "number") from None
    return cls(**known, extra=extra)

  @classmethod
  def from_json(cls, text: str, source: str = "result.json") -> RunResult:
    try:
      values = json.loads(text)
    except json.JSONDecodeError as e:
      raise ResultError(f"{source}: not valid JSON ({e}); the file is damaged: delete "
                        "it to rerun the run") from None
    return cls.from_dict(values, source)


def read(path: str) -> RunResult | None:
  """The RunResult at `path` (local or gs://), None if there is none; ResultError if bad."""
  import tensorflow as tf
  if not tf.io.gfile.exists(path):
    return None
  try:
    with tf.io.gfile.GFile(path, "r") as f:
      text = f.read()
  except (tf.errors.OpError, UnicodeDecodeError) as e:
    raise ResultError(f"{path}: unreadable ({type(e).__name__}); delete it to rerun "
                      "the run") from None
  return RunResult.from_json(text, path)


def write(path: str, result: RunResult) -> None:
  """Writes atomically (temporary file, then rename)."""
  from tfbackbones.training import workdir as wd
  wd.write_text(path, result.to_json())


def _judge_old(known: dict) -> None:
  """Runs the significance test on a finished run written before schema 3, in place.

  Such a file can be a lucky small-split run that was called finished. When it holds
  the test top-1, the test count and the test images per class (`data.images_per_class`,
  written for folders), it gets the test a new run gets, and a run that fails it is read
  as degenerate, its reason saying so. Without those numbers it stays as written.
  """
  per_class = ((known.get("data") or {}).get("images_per_class") or {}).get("test")
  if not isinstance(per_class, dict):
    return
  on_test = known.get("selection_protocol") == ON_TEST
  try:
    verdict = significance_lib.of_test(
        known.get("test"), list(per_class.values()), selected_on_test=on_test,
        epochs_evaluated=int((known.get("epochs") or {}).get("total") or 1) if on_test else 1)
  except (TypeError, ValueError):
    return
  if verdict is None:
    return
  known["significance"] = verdict.to_dict()
  if not verdict.significant:
    known["status"] = DEGENERATE
    known["reason"] = (f"{verdict.reason()} (judged when read: this result.json, schema "
                       f"{known['schema_version']}, predates the significance test)")


def _finite(value) -> bool:
  try:
    return value is not None and math.isfinite(float(value))
  except (TypeError, ValueError):
    return False

