"""Reads a study's runs, computes the tables, draws the plots, writes every output file."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable

import tensorflow as tf

from tfbackbones.report import (
  deployment,
  page,
  plots,
  recommend_section,
  render,
  significance,
  tables,
)
from tfbackbones.report import records as rec

TABLE_FILES = ("datasets", "domains", "fractions", "resources", "significance", "deployment")


def _write(path: str, text: str) -> None:
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(text)


def _plot_fraction(rows, primary) -> float | None:
  """The training fraction the single-fraction plots show: 100% if present, else the most."""
  fractions = {r["train_fraction"] for r in rows
               if (r["source"], r["selection_protocol"]) == primary}
  return max(fractions) if fractions else None


def _per_backbone(resource_rows, key) -> dict:
  values = {}
  for r in resource_rows:
    if tables.finite(r.get(key)):
      values.setdefault(r["backbone"], []).append(r[key])
  return {b: statistics.median(v) for b, v in values.items()}


def _picker(tabs: dict, primary: tuple | None) -> tuple:
  """(fraction, pick): pick(rows) keeps the rows of the primary series at that fraction."""
  fraction = _plot_fraction(tabs["datasets"].rows, primary) if primary else None
  def pick(rows):
    return [r for r in rows if (r["source"], r["selection_protocol"]) == primary
            and r["train_fraction"] == fraction]
  return fraction, pick


def draw(tabs: dict, primary: tuple | None) -> dict:
  """All plots as {name: PNG bytes or None}."""
  if primary is None:
    return {}
  fraction, pick = _picker(tabs, primary)
  label = plots._series_label(primary)
  data = f"{fraction:.0%} of the training data" if fraction is not None else ""
  overall = [r for r in pick(tabs["domains"].rows) if r["domain"] == tables.OVERALL]
  accuracy = {r["backbone"]: r["mean_top1"] for r in overall}
  incomplete = [r["backbone"] for r in overall if r["rank"] is None]
  resources = tabs["resources"].rows
  params = _per_backbone(resources, "params_m")
  latency = _per_backbone(resources, "inference_latency_ms")
  cost_label = "inference latency (ms)"
  if not latency:  # no latency measured: training time per image, and the axis says so
    speed = _per_backbone(resources, "train_images_per_sec")
    latency = {b: 1000.0 / v for b, v in speed.items() if v}
    cost_label = "training time per image (ms) — no inference latency recorded"
  return {
      "domains": plots.domain_bars(pick(tabs["domains"].rows), f"Domains — {label}, {data}"),
      "heatmap": plots.heatmap(pick(tabs["datasets"].rows), f"Test top-1 (%) — {label}, {data}"),
      "fractions": plots.fractions_plot(tabs["fractions"].rows, primary),
      "params": plots.pareto_plot(
          [(b, params.get(b), a) for b, a in accuracy.items()], "parameters (M)",
          f"Accuracy vs parameters — {label}", incomplete),
      "latency": plots.pareto_plot(
          [(b, latency.get(b), a) for b, a in accuracy.items()], cost_label,
          f"Accuracy vs cost — {label}", incomplete),
  }


def write_tensorboard(out: str, tabs: dict) -> None:
  """The tables as TensorBoard text summaries in `out` (replacing an earlier report's)."""
  for old in tf.io.gfile.glob(f"{out.rstrip('/')}/events.out.tfevents.*"):
    tf.io.gfile.remove(old)
  writer = tf.summary.create_file_writer(out)
  with writer.as_default(step=0):
    for name, table in tabs.items():
      # TensorBoard renders Markdown; very long tables stay readable in the CSV.
      tf.summary.text(f"report/{name}", render.to_markdown(table, max_rows=500))
  writer.close()


def build(workdir: str | None, out: str, *, import_csv: Iterable[str] = (),
          reference: str | None = None, log: Callable[[str], None] = print) -> dict:
  """Writes every report file into `out`; returns {file name: path}.

  Args:
    workdir: a study directory (local or gs://), or None for CSV files only.
    out: the report's own directory (files in it are replaced).
    import_csv: CSV files of results to show next to the runs (`paper` = published).
    reference: a CSV of published numbers for the delta columns (`paper` = bundled).
  """
  records = rec.load(workdir, import_csv)
  ref = tables.reference_index(rec.read_csv(reference)) if reference else None
  datasets = tables.datasets_table(records, ref)
  tabs = {
      "datasets": datasets,
      "domains": tables.domains_table(datasets.rows),
      "fractions": tables.fractions_table(datasets.rows),
      "resources": tables.resources_table(records),
      "significance": significance.significance_table(records),
      "deployment": deployment.table(deployment.load(workdir)),  # export.json files
  }
  tf.io.gfile.makedirs(out)
  paths = {}
  for name in TABLE_FILES:
    for ext, text in (("csv", render.to_csv(tabs[name])), ("md", render.to_markdown(tabs[name]))):
      paths[f"{name}.{ext}"] = f"{out.rstrip('/')}/{name}.{ext}"
      _write(paths[f"{name}.{ext}"], text)
  primary = tables.primary_series(datasets.rows)
  figures = {**draw(tabs, primary), **deployment.pareto_plots(tabs["deployment"])}
  html = page.build_page(tables=tabs, plots=figures, records=records,
                         workdir=workdir, reference=reference, primary=primary,
                         ranking=_picker(tabs, primary)[1](tabs["domains"].rows),
                         extra_html=recommend_section.section_html(workdir) if workdir else "")
  paths["report.html"] = f"{out.rstrip('/')}/report.html"
  _write(paths["report.html"], html)
  write_tensorboard(out, tabs)
  runs = [r for r in records if r.source == rec.RUNS]
  log(f"report: {len(runs)} runs ({sum(r.status == rec.FINISHED for r in runs)} finished, "
      f"{sum(r.status == rec.FAILED for r in runs)} failed, "
      f"{sum(r.status in (rec.DIVERGED, rec.DEGENERATE) for r in runs)} not results "
      f"(diverged/degenerate), {sum(r.status == rec.UNREADABLE for r in runs)} unreadable, "
      f"{sum(r.status in (rec.INCOMPLETE, rec.MISSING) for r in runs)} incomplete or "
      f"missing), {len(records) - len(runs)} imported rows -> {out}")
  return paths
