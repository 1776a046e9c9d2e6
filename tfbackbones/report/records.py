"""What the report reads: run workdirs, study manifests and CSV files, as `Record`s.

One `Record` per run (or per imported CSV row), whatever its state: finished runs carry
their test top-1, failed runs their error, runs that have a workdir but no result are
`incomplete`, and runs a study manifest expects but that never started are `missing`.
The tables show all four; nothing is dropped silently.

Accuracies are in percent everywhere in the report (result.json stores fractions; the
paper and the CSV format use percent).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
from collections.abc import Iterable

import tensorflow as tf

from tfbackbones import imagesize, results
from tfbackbones.results import RunResult

FINISHED, FAILED, INCOMPLETE, MISSING = "finished", "failed", "incomplete", "missing"
# Runs that trained but are not results (results.DIVERGED, results.DEGENERATE), and run
# directories whose result.json is damaged.
DIVERGED, DEGENERATE, UNREADABLE = "diverged", "degenerate", "unreadable"
NOT_RESULTS = (FAILED, DIVERGED, DEGENERATE, UNREADABLE, INCOMPLETE, MISSING)
VAL_SPLIT, ON_TEST = "val-split", "selected-on-test"
RUNS = "runs"  # the `source` of records read from workdirs
PAPER = "paper"  # --reference=paper / --import_csv=paper: the bundled published numbers
PAPER_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paper_results.csv")

CSV_REQUIRED = ("backbone", "dataset", "top1")
CSV_OPTIONAL = ("domain", "train_fraction", "seed", "selection_protocol", "source",
                "image_size", "params", "model_size_mb", "train_images_per_sec",
                "inference_latency_ms", "peak_host_memory_mb")
RESOURCE_KEYS = ("params", "model_size_mb", "train_images_per_sec", "inference_latency_ms",
                 "peak_host_memory_mb")
# Directories that never hold a run's result.json: not walked (saves listing on gs://).
_SKIP_DIRS = {"checkpoints", "best", "tensorflow_datasets", "studies", "plugins"}


@dataclasses.dataclass
class Record:
  """One run or one imported row.

  Attributes:
    backbone, dataset, domain: names (domain from the run, the CSV or the catalog).
    train_fraction: share of the training split used.
    seed: training seed, or None (e.g. published best-of-3 numbers).
    status: finished | failed | diverged | degenerate | unreadable | incomplete | missing.
    top1: test top-1 in percent (finished only).
    selection_protocol: val-split | selected-on-test | unknown.
    source: "runs" for workdirs, else the CSV's `source` column or file name.
    image_size: input resolution, if known.
    error: why a failed run failed.
    path: the run's workdir or the CSV file.
    resources: params, model_size_mb, train_images_per_sec, inference_latency_ms,
      peak_host_memory_mb, where known.
  """
  backbone: str
  dataset: str
  domain: str = "unknown"
  train_fraction: float = 1.0
  seed: int | None = None
  status: str = FINISHED
  top1: float | None = None
  selection_protocol: str = "unknown"
  source: str = RUNS
  image_size: int | str | None = None  # 448, or "672x448" (W x H)
  error: str | None = None
  path: str = ""
  resources: dict = dataclasses.field(default_factory=dict)

  @property
  def selected_on_test(self) -> bool:
    return self.selection_protocol == ON_TEST


def catalog_domain(dataset: str) -> str:
  """The catalog's domain of a dataset, or "unknown" for names the catalog lacks."""
  from tfbackbones.data import catalog
  try:
    return catalog.get(dataset).domain
  except catalog.UnknownDatasetError:
    return "unknown"


def read_json(path: str) -> dict | None:
  try:
    with tf.io.gfile.GFile(path, "r") as f:
      return json.loads(f.read())
  except (tf.errors.NotFoundError, json.JSONDecodeError, UnicodeDecodeError) as e:
    logging.warning("skipping unreadable %s: %s", path, e)
    return None


def with_init(backbone: str, config: dict) -> str:
  """Marks random-init runs (`<backbone>-scratch`) so they never pool with pretrained ones."""
  return f"{backbone}-scratch" if str(config.get("weights", "")).lower() == "none" else backbone


def from_result(result: RunResult, path: str) -> Record:
  """A Record from a RunResult: ranked (finished) or not (failed, diverged, degenerate)."""
  resources = {}
  if result.ranked:
    resources = {k: getattr(result, k) for k in RESOURCE_KEYS if k != "inference_latency_ms"
                 and getattr(result, k, None) is not None}
    # No latency in result.json today; accept it from a later engine or benchmark.
    latency = (result.extra.get("inference") or {}).get("latency_ms")
    if latency is not None:
      resources.setdefault("inference_latency_ms", latency)
  return Record(
      backbone=with_init(result.backbone, result.config), dataset=result.dataset,
      domain=result.domain or catalog_domain(result.dataset),
      train_fraction=float(result.train_fraction), seed=result.seed,
      status=FINISHED if result.ranked else (
          FAILED if result.status == FINISHED else result.status),
      top1=100.0 * result.test_top1 if result.ranked else None,
      selection_protocol=result.selection_protocol, source=RUNS,
      image_size=_size(result.image_size or result.config.get("image_size")),
      error=None if result.ranked else (result.error or result.reason or "unknown error"),
      path=path, resources=resources)


def _unreadable(error: str, path: str, files: Iterable[str] = ()) -> Record:
  """A run directory whose result.json cannot be read: counted, never dropped.

  Its config.json (or state.json's copy), written when the run started, says which cell
  it belongs to; only without one is the cell guessed from the path, which for a study
  is the slug of the dataset (`folder_tmp_photos`), a cell of its own.
  """
  config = _run_config(path, files)
  if isinstance(config, dict):
    return dataclasses.replace(_incomplete(config, path, UNREADABLE), error=error)
  parts = _relative_parts(path)
  return Record(backbone=parts[1] if len(parts) > 1 else "unknown",
                dataset=parts[0] if parts else "unknown", status=UNREADABLE,
                error=error, path=path, source=RUNS)


def _relative_parts(path: str) -> list[str]:
  """`.../<dataset>/<backbone>/frac<f>/seed<s>` -> [dataset, backbone] (best effort)."""
  parts = path.rstrip("/").split("/")
  if len(parts) >= 4 and parts[-2].startswith("frac") and parts[-1].startswith("seed"):
    return parts[-4:-2]
  return []


def _incomplete(config: dict, path: str, status: str = INCOMPLETE) -> Record:
  dataset = config.get("dataset", "unknown")
  return Record(
      backbone=with_init(config.get("backbone", "unknown"), config), dataset=dataset,
      domain=catalog_domain(dataset),
      train_fraction=float(config.get("train_fraction", 1.0)), seed=config.get("seed"),
      status=status,
      selection_protocol=ON_TEST if config.get("select_on") == "test" else VAL_SPLIT,
      source=RUNS, path=path)


def read_workdir(workdir: str) -> list[Record]:
  """Every run under `workdir` (local or gs://), found with tf.io.gfile.walk.

  A directory with result.json is a run (finished or failed); one with config.json but no
  result.json is an incomplete run (interrupted, or still training). Runs listed in a
  study manifest (`<workdir>/studies/*.json`, written by experiments.run) whose directory
  holds neither are missing. A `workdir` that does not exist is a ValueError: a typo
  would otherwise give a report of no runs that looks like a real one.
  """
  if not tf.io.gfile.isdir(workdir):
    raise ValueError(f"--workdir={workdir}: no such directory; give the study's workdir "
                     "(the --workdir of experiments.run or train)")
  records, seen = [], set()
  for dirname, subdirs, files in tf.io.gfile.walk(workdir):
    if "result.json" in files or "config.json" in files or "state.json" in files:
      subdirs[:] = []  # runs do not nest; skip checkpoints and best weights
      if "result.json" in files:
        try:
          records.append(from_result(results.read(os.path.join(dirname, "result.json")),
                                     dirname))
        except results.ResultError as e:
          logging.warning("%s", e)
          records.append(_unreadable(str(e), dirname, files))
      else:
        config = _run_config(dirname, files)
        if isinstance(config, dict):
          records.append(_incomplete(config, dirname))
        else:
          records.append(_unreadable(f"{dirname}/config.json: damaged (no result.json "
                                     "either); delete the directory to rerun the run",
                                     dirname))
      seen.add(_relative(workdir, dirname))
      continue
    subdirs[:] = [d for d in subdirs if d.rstrip("/") not in _SKIP_DIRS
                  and not d.startswith("tmp_worker")]
  for manifest in tf.io.gfile.glob(os.path.join(workdir, "studies", "*.json")):
    for run in (read_json(manifest) or {}).get("runs", []):
      if run["id"] not in seen:
        seen.add(run["id"])
        records.append(_incomplete(run, os.path.join(workdir, run["id"]), MISSING))
  return records


def _run_config(dirname: str, files: Iterable[str]):
  """The run's config as written when it started: config.json, or, when that is gone,
  the copy state.json keeps (tfbackbones.training.resume); None without either. Not
  necessarily a dict: a damaged file may hold any JSON."""
  if "config.json" in files:
    return read_json(os.path.join(dirname, "config.json"))
  if "state.json" in files:
    state = read_json(os.path.join(dirname, "state.json"))
    return state.get("config") if isinstance(state, dict) else None
  return None


def _relative(root: str, path: str) -> str:
  return path[len(root):].strip("/") if path.startswith(root) else path


def _size(value):
  """448, or "672x448" for a non-square input (tfbackbones/imagesize.py); None if unknown."""
  if isinstance(value, str):
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
      value = int(float(value))
  size = imagesize.canonical(value) if value not in (None, "") else 0
  return size or None


def _number(value: str, kind=float):
  value = (value or "").strip()
  if not value:
    return None
  number = kind(float(value)) if kind is int else kind(value)
  if kind is float and math.isnan(number):
    return None
  return number


def read_csv(path: str) -> list[Record]:
  """Rows `backbone,dataset,top1[,domain,train_fraction,seed,...]` (top1 in percent).

  Lines starting with `#` are comments. Optional columns: `CSV_OPTIONAL`. A row with an
  empty top1 and resource columns (params, latency, ...) adds resources only. `source`
  defaults to the file name without extension (`paper` for the bundled paper file).

  Raises:
    ValueError: naming the file and line of a malformed row.
  """
  if path == PAPER:
    path = PAPER_CSV
  with tf.io.gfile.GFile(path, "r") as f:
    text = f.read()
  lines = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
  reader = csv.DictReader(io.StringIO("\n".join(lines)))
  columns = [c.strip() for c in reader.fieldnames or []]
  missing = [c for c in CSV_REQUIRED if c not in columns]
  if missing:
    raise ValueError(f"{path}: the header needs columns {', '.join(CSV_REQUIRED)} "
                     f"(missing {', '.join(missing)}); optional: {', '.join(CSV_OPTIONAL)}")
  default_source = os.path.splitext(os.path.basename(path))[0]
  if path == PAPER_CSV:
    default_source = PAPER
  records = []
  for n, row in enumerate(reader, 2):
    row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
    try:
      top1 = _number(row["top1"])
      resources = {k: _number(row.get(k, "")) for k in RESOURCE_KEYS}
      resources = {k: v for k, v in resources.items() if v is not None}
      if top1 is None and not resources:
        raise ValueError("empty top1 and no resource columns")
      dataset = row["dataset"]
      records.append(Record(
          backbone=row["backbone"], dataset=dataset,
          domain=row.get("domain") or catalog_domain(dataset),
          train_fraction=_number(row.get("train_fraction", "")) or 1.0,
          seed=_number(row.get("seed", ""), int),
          status=FINISHED, top1=top1,
          selection_protocol=row.get("selection_protocol") or "unknown",
          source=row.get("source") or default_source,
          image_size=_size(row.get("image_size", "")), path=path,
          resources=resources))
    except (KeyError, ValueError) as e:
      raise ValueError(f"{path}:{n}: bad row {row}: {e}") from None
  tops = [r.top1 for r in records if r.top1 is not None]
  if tops and max(tops) <= 1.0:
    logging.warning("%s: every top1 is <= 1; top1 is read as percent (write 95.1, not "
                    "0.951)", path)
  return records


def load(workdir: str | None, csv_files: Iterable[str] = ()) -> list[Record]:
  """Records of every run under `workdir` (if given) and every CSV file."""
  records = read_workdir(workdir) if workdir else []
  for path in csv_files:
    records.extend(read_csv(path))
  return records
