"""The report's figures as PNG bytes (matplotlib, Agg backend: no display needed).

Each function takes table rows and returns PNG bytes, or None when there is nothing to
draw (the page then says so instead of showing an empty axis).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import ticker

from tfbackbones.report import records as rec
from tfbackbones.report import tables

DPI = 90


def _png(fig) -> bytes:
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
  plt.close(fig)
  return buf.getvalue()


def _series_label(series: tuple) -> str:
  source, protocol = series
  marker = " [SELECTED ON TEST]" if protocol == rec.ON_TEST else ""
  return f"{source}{marker}"


def _colors(names: Sequence[str]) -> dict:
  cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
  return {n: cmap(i % cmap.N) for i, n in enumerate(sorted(names))}


def fractions_plot(fraction_rows: Sequence[dict], primary: tuple,
                   max_datasets: int = 12) -> bytes | None:
  """Accuracy vs training fraction, one panel per dataset, one line per backbone.

  The primary series (this project's runs) is solid; other sources (e.g. the paper's
  published numbers) are dashed in the same colour.
  """
  rows = [r for r in fraction_rows if r["mean_top1"] is not None]
  datasets = sorted({r["dataset"] for r in rows})[:max_datasets]
  if not datasets:
    return None
  colors = _colors({r["backbone"] for r in rows})
  cols = min(3, len(datasets))
  nrows = math.ceil(len(datasets) / cols)
  fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.8 * nrows), squeeze=False)
  for ax, dataset in zip(axes.flat, datasets):
    lines = defaultdict(list)
    for r in rows:
      if r["dataset"] == dataset:
        lines[(r["backbone"], r["source"], r["selection_protocol"])].append(
            (r["train_fraction"], r["mean_top1"]))
    for (backbone, source, protocol), points in sorted(lines.items()):
      points.sort()
      is_primary = (source, protocol) == primary
      ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
              linestyle="-" if is_primary else "--", color=colors[backbone],
              alpha=1.0 if is_primary else 0.6,
              label=backbone if is_primary else
              f"{backbone} ({_series_label((source, protocol))})")
    ax.set_xscale("log")
    ticks = sorted({r["train_fraction"] for r in rows if r["dataset"] == dataset})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:.0%}" if t >= 0.01 else f"{t:.1%}" for t in ticks])
    ax.minorticks_off()
    ax.set_title(dataset)
    ax.set_xlabel("training fraction")
    ax.set_ylabel("test top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(datasets):]:
    ax.axis("off")
  fig.suptitle(f"Accuracy vs training data — {_series_label(primary)}")
  return _png(fig)


def pareto_front(points: Sequence[tuple]) -> list[tuple]:
  """Points (name, cost, accuracy) not beaten by a cheaper-or-equal, better point."""
  front, best = [], -math.inf
  for p in sorted(points, key=lambda p: (p[1], -p[2])):
    if p[2] > best:
      front.append(p)
      best = p[2]
  return front


def pareto_plot(points: Sequence[tuple], xlabel: str, title: str,
                incomplete: Sequence[str] = (),
                ylabel: str = "mean test top-1 over datasets (%)",
                xscale: str = "linear") -> bytes | None:
  """Accuracy against a cost (params, latency) with the Pareto front drawn.

  Args:
    points: (backbone, cost, accuracy) triples.
    incomplete: backbones whose accuracy covers only part of the datasets (hollow).
  """
  points = [p for p in points if tables.finite(p[1]) and tables.finite(p[2])]
  if not points:
    return None
  front = pareto_front(points)
  fig, ax = plt.subplots(figsize=(7.5, 5))
  for name, x, y in points:
    hollow = name in incomplete
    ax.scatter([x], [y], s=55, facecolors="none" if hollow else "tab:blue",
               edgecolors="tab:blue", zorder=3)
    ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
  ax.step([p[1] for p in front], [p[2] for p in front], where="post", color="tab:red",
          label="Pareto front", zorder=2)
  ax.scatter([p[1] for p in front], [p[2] for p in front], s=110, facecolors="none",
             edgecolors="tab:red", zorder=4)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_xscale(xscale)
  if xscale == "log":  # plain numbers ("2", "0.9") instead of matplotlib's "2x10^0"
    plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  return _png(fig)


def domain_bars(domain_rows: Sequence[dict], title: str) -> bytes | None:
  """Grouped bars: each domain (and overall), one bar per backbone."""
  rows = [r for r in domain_rows if r["mean_top1"] is not None]
  if not rows:
    return None
  domains = sorted({r["domain"] for r in rows}, key=lambda d: (d == tables.OVERALL, d))
  backbones = sorted({r["backbone"] for r in rows})
  colors = _colors(backbones)
  value = {(r["domain"], r["backbone"]): r for r in rows}
  width = 0.8 / len(backbones)
  fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(domains) * max(1, len(backbones) / 4)),
                                  4.8))
  for j, backbone in enumerate(backbones):
    xs, ys, hatches = [], [], []
    for i, domain in enumerate(domains):
      row = value.get((domain, backbone))
      if row is not None:
        xs.append(i - 0.4 + width * (j + 0.5))
        ys.append(row["mean_top1"])
        hatches.append("//" if row["rank"] is None else "")
    bars = ax.bar(xs, ys, width=width, color=colors[backbone], label=backbone)
    for bar, hatch in zip(bars, hatches):
      bar.set_hatch(hatch)
  ax.set_xticks(range(len(domains)))
  ax.set_xticklabels(domains, rotation=20)
  low = min(r["mean_top1"] for r in rows)
  ax.set_ylim(max(0.0, low - 5), min(100.0, max(r["mean_top1"] for r in rows) + 2))
  ax.set_ylabel("mean test top-1 (%)")
  ax.set_title(title + "  (hatched: not ranked, incomplete)")
  ax.grid(axis="y", alpha=0.3)
  ax.legend(fontsize=7, ncol=1 if len(backbones) <= 12 else 2, loc="upper left",
            bbox_to_anchor=(1.01, 1.0))
  return _png(fig)


def heatmap(dataset_rows: Sequence[dict], title: str) -> bytes | None:
  """Backbone x dataset mean top-1; failed and missing cells are labelled, not blank."""
  if not dataset_rows:
    return None
  import numpy as np
  datasets = sorted({r["dataset"] for r in dataset_rows})
  backbones = sorted({r["backbone"] for r in dataset_rows})
  grid = np.full((len(backbones), len(datasets)), np.nan)
  text = {}
  for r in dataset_rows:
    i, j = backbones.index(r["backbone"]), datasets.index(r["dataset"])
    if r["mean_top1"] is not None:
      grid[i, j] = r["mean_top1"]
      text[i, j] = f"{r['mean_top1']:.1f}"
    else:
      text[i, j] = r["status"]
  fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(datasets) + 3),
                                  max(3.0, 0.45 * len(backbones) + 1.5)))
  cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
  image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
  fig.colorbar(image, ax=ax, label="test top-1 (%)")
  ax.set_xticks(range(len(datasets)))
  ax.set_xticklabels(datasets, rotation=45, ha="right")
  ax.set_yticks(range(len(backbones)))
  ax.set_yticklabels(backbones)
  if len(datasets) <= 25:
    finite = grid[~np.isnan(grid)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(backbones)):
      for j in range(len(datasets)):
        label = text.get((i, j), "–")
        dark = not np.isnan(grid[i, j]) and grid[i, j] < middle
        ax.text(j, i, label, ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
  ax.set_title(title)
  return _png(fig)
