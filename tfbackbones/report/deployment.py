"""The report's deployment view: every exported artifact of a study, and per dataset the
test top-1 against batch-1 latency with the Pareto front across backbones and formats.

Reads the `export.json` that `python -m tfbackbones.export` (or `experiments.run
--export=...`) leaves in each run's workdir; runs without one are simply absent. Latency
is the 1-thread median (the comparable number: all-cores latency depends on how loaded
the machine was), and the table says on how many cores the other column was measured.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import tensorflow as tf

from tfbackbones.deploy import stability
from tfbackbones.report import plots, records, render, tables

EXPORT_JSON = "export.json"
COLUMNS = ["dataset", "backbone", "train_fraction", "seed", "format", "runtime", "top1",
           "top1_drop_points", "agreement_with_keras", "float_stability", "verdict",
           "size_mb", "latency_1thread_ms", "latency_1thread_p90_ms", "latency_all_cores_ms",
           "cores"]

# The readable columns of the Markdown/HTML table (the CSV has every column).
render.DISPLAY["deployment"] = [
    ("dataset", lambda r: r["dataset"]),
    ("backbone", lambda r: r["backbone"]),
    ("data", lambda r: render.frac(r["train_fraction"])),
    ("seed", lambda r: str(r["seed"])),
    ("format", lambda r: r["format"]),
    ("test top-1", lambda r: f"{r['top1']:.2f}"),
    ("drop (pts)", lambda r: f"{r['top1_drop_points']:+.2f}"),
    ("agrees %", lambda r: f"{r['agreement_with_keras']:.1f}"),
    ("float stable %", lambda r: _fixed(r["float_stability"], 1)),
    ("below 98% because", lambda r: r["verdict"] or "–"),
    ("MB", lambda r: f"{r['size_mb']:.2f}"),
    ("ms, 1 thread", lambda r: _fixed(r["latency_1thread_ms"])),
    ("p90", lambda r: _fixed(r["latency_1thread_p90_ms"])),
    ("ms, all cores", lambda r: _fixed(r["latency_all_cores_ms"])),
]


def _fixed(v, digits: int = 2) -> str:
  """A number with `digits` decimals, or a dash where none was measured."""
  return f"{v:.{digits}f}" if tables.finite(v) else "–"


def _stability(export: dict) -> float | None:
  """The Keras model's mean agreement with itself under +-1 grey level of noise, in %
  (export.json's `float_stability`; None in exports made before it or with 0 draws)."""
  measured = export.get("float_stability")
  return 100.0 * measured["mean"] if measured else None


def load(workdir: str | None) -> list[dict]:
  """Every export.json under `workdir` (any depth), as parsed dicts."""
  if not workdir or not tf.io.gfile.isdir(workdir):
    return []
  found = []
  for root, _, files in tf.io.gfile.walk(workdir):
    if EXPORT_JSON in files:
      with tf.io.gfile.GFile(os.path.join(root, EXPORT_JSON)) as f:
        export = json.loads(f.read())
      if "weights" not in export:  # written before session 8: the run's config has them
        config = (records.read_json(os.path.join(root, "result.json")) or {}).get(
            "config", {})
        export["weights"] = config.get("weights")
        export["train_fraction"] = config.get("train_fraction")
      found.append(export)
  return found


def _verdict(export: dict, artifact: dict) -> str | None:
  """Why an artifact agrees with Keras on fewer than 98% of the test images, in a few
  words (stability.SHORT); None when it meets the target. An export.json from before
  session 7 has no verdict: it is judged here by the same rule (`stability.judge`) on what
  it recorded, which without a float stability is "not measured"."""
  judged = artifact.get("versus_float_stability") or stability.judge(
      artifact["agreement_with_keras"], export.get("float_stability"))
  if judged["verdict"] == stability.MEETS_TARGET:
    return None
  return stability.SHORT[judged["verdict"]]


def _latency(row: dict, key: str, stat: str = "median_ms") -> float | None:
  value = (row.get("latency_batch1") or {}).get(key) or {}
  return value.get(stat)


def table(exports: list[dict]) -> tables.Table:
  rows = []
  for e in exports:
    machine = e.get("machine", {})
    for a in e["artifacts"]:
      if "error" in a:  # a format that failed to export: no numbers to show
        continue
      rows.append({
          "dataset": e["dataset"], "seed": e["seed"],
          # "<backbone>-scratch" for random init, as in every other table of the report
          "backbone": records.with_init(e["backbone"], {"weights": e.get("weights")}),
          "train_fraction": e.get("train_fraction") or 1.0,
          "format": a["format"], "runtime": a["runtime"], "top1": 100.0 * a["top1"],
          "top1_drop_points": a["top1_drop_points"],
          "agreement_with_keras": 100.0 * a["agreement_with_keras"],
          "float_stability": _stability(e), "verdict": _verdict(e, a), "size_mb": a["size_mb"],
          "latency_1thread_ms": _latency(a, "threads_1"),
          "latency_1thread_p90_ms": _latency(a, "threads_1", "p90_ms"),
          "latency_all_cores_ms": _latency(a, "threads_all"),
          # usable_cores since session 8; older export.json files have only cpu_count
          "cores": machine.get("usable_cores", machine.get("cpu_count"))})
  rows.sort(key=lambda r: (r["dataset"], r["backbone"], r["train_fraction"], r["seed"],
                           r["format"]))
  notes = ["Each artifact run with its own runtime on the run's test split; drop and "
           "agreement are against the Keras float model of the same run. Latency: batch 1, "
           "median of timed calls after warm-up, in a fresh process. Float stable: the "
           "Keras model's agreement with itself under +-1 grey level of input noise (mean "
           "over draws); an export's agreement at or above the worst draw points to the "
           "model, not the export (export.json's versus_float_stability)."] if rows else []
  return tables.Table("deployment", "Deployment: accuracy, size and latency after export",
                      COLUMNS, rows, notes)


def pareto_plots(deployment: tables.Table) -> dict:
  """{"deployment_<dataset>": PNG} of top-1 vs 1-thread latency, one point a
  (backbone, format), mean over seeds, with the Pareto front."""
  cells = defaultdict(list)
  for r in deployment.rows:
    if tables.finite(r["latency_1thread_ms"]):
      data = "" if r["train_fraction"] == 1.0 else f" ({render.frac(r['train_fraction'])})"
      cells[(r["dataset"], f"{r['backbone']}/{r['format']}{data}")].append(
          (r["latency_1thread_ms"], r["top1"]))
  by_dataset = defaultdict(list)
  for (dataset, name), values in cells.items():
    by_dataset[dataset].append((name, sum(v[0] for v in values) / len(values),
                                sum(v[1] for v in values) / len(values)))
  out = {}
  for dataset, points in sorted(by_dataset.items()):
    out[f"deployment_{dataset}"] = plots.pareto_plot(
        points, "batch-1 latency, 1 thread (ms, log scale)",
        f"{dataset}: test top-1 (%) vs latency across backbones and formats",
        ylabel="test top-1 (%)", xscale="log")  # runtimes differ by 100x and more
  return out
