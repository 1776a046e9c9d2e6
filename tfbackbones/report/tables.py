"""The report's tables, computed from `Record`s: plain rows, no formatting.

Every table keeps `source` (runs, or an imported file such as `paper`) and
`selection_protocol` apart, so published best-of-3-on-test numbers are never averaged
with this project's runs, and every row selected on test says so.

Statistics:
  * a *cell* is (source, protocol, dataset, backbone, train_fraction): mean and sample
    std (ddof=1) of test top-1 over its finished seeds, best-of-n (the paper's
    statistic), n, and the failed / incomplete / missing runs next to them;
  * a *domain score* is the mean, over the domain's datasets, of a backbone's per-dataset
    mean; `overall` is the same over every dataset. Backbones are ranked (1 = best, ties
    share the smaller rank) only against backbones that cover all of the domain's
    datasets: a backbone that skipped or failed the hardest dataset must not look better.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence

from tfbackbones import imagesize
from tfbackbones.report import records as rec

OVERALL = "overall"
LABELS = {1: "Best", 2: "Better", 3: "Good"}  # the paper's Table 1
_TIE_DIGITS = 6  # means equal to 1e-6 percentage points tie (float noise is not a rank)


@dataclasses.dataclass
class Table:
  """A named table: ordered columns and rows (dicts of plain values)."""
  name: str
  title: str
  columns: list
  rows: list
  notes: list = dataclasses.field(default_factory=list)


def _series_key(r: rec.Record) -> tuple:
  return (r.source, r.selection_protocol)


def cells(records: Iterable[rec.Record]) -> dict:
  """{(source, protocol, dataset, backbone, fraction): [records]}."""
  out = defaultdict(list)
  for r in records:
    if r.dataset and (r.top1 is not None or r.status != rec.FINISHED):
      # (resource-only CSV rows carry no accuracy)
      out[(r.source, r.selection_protocol, r.dataset, r.backbone, r.train_fraction)].append(r)
  return out


# A datasets-table row's counts of runs that are not in its mean (never results).
NOT_IN_MEAN = ("failed", "incomplete", "missing", "not_result")


def _cell_row(key: tuple, group: Sequence[rec.Record]) -> dict:
  source, protocol, dataset, backbone, fraction = key
  done = [r for r in group if r.status == rec.FINISHED and r.top1 is not None]
  tops = [r.top1 for r in done]
  count = lambda s: sum(r.status == s for r in group)  # noqa: E731
  n = len(tops)
  if n:
    status = "ok" if n == len(group) else "partial"
  else:
    status = next(s for s in rec.NOT_RESULTS if count(s))
  return {
      "dataset": dataset, "domain": group[0].domain, "backbone": backbone,
      "train_fraction": fraction, "selection_protocol": protocol, "source": source,
      "n": n, "mean_top1": statistics.fmean(tops) if n else None,
      "std_top1": statistics.stdev(tops) if n >= 2 else None,
      "best_top1": max(tops) if n else None,
      "seeds": " ".join(str(r.seed) for r in sorted(done, key=lambda r: (r.seed is None,
                                                                          r.seed or 0))
                        if r.seed is not None),
      "failed": count(rec.FAILED), "incomplete": count(rec.INCOMPLETE),
      "missing": count(rec.MISSING),
      # Trained but not a result (diverged, degenerate) or a damaged result.json.
      "not_result": count(rec.DIVERGED) + count(rec.DEGENERATE) + count(rec.UNREADABLE),
      "repeated_seeds": _repeated_seeds(done),
      "status": status,
      "errors": " | ".join(sorted({r.error for r in group if r.error})),
  }


def _repeated_seeds(done: Sequence[rec.Record]) -> str:
  """Seeds with several finished runs in one cell ("0 2"), else "".

  Two runs of one seed are two experiments (other flags, e.g. --max_epochs, in sibling
  workdirs of one --workdir): their mean and std are not over seeds, and a std of 0
  would read as perfect reproducibility.
  """
  seeds = [r.seed for r in done if r.seed is not None]
  return " ".join(str(s) for s in sorted({s for s in seeds if seeds.count(s) > 1}))


def reference_index(reference: Iterable[rec.Record]) -> dict:
  """{(dataset, backbone, fraction): top1} of published numbers (best row per key)."""
  out = {}
  for r in reference:
    if r.top1 is not None and r.dataset:
      key = (r.dataset, r.backbone, r.train_fraction)
      out[key] = max(out.get(key, r.top1), r.top1)
  return out


def datasets_table(records: Sequence[rec.Record],
                   reference: dict | None = None) -> Table:
  """Per dataset x backbone (x fraction, protocol, source): mean ± std, best-of-n, n."""
  columns = ["dataset", "domain", "backbone", "train_fraction", "selection_protocol",
             "source", "n", "mean_top1", "std_top1", "best_top1", "seeds", "failed",
             "incomplete", "missing", "not_result", "repeated_seeds", "status"]
  if reference is not None:
    columns += ["ref_top1", "delta_best", "delta_mean"]
  rows = []
  for key, group in cells(records).items():
    row = _cell_row(key, group)
    if reference is not None:
      ref = reference.get((row["dataset"], row["backbone"], row["train_fraction"]))
      row["ref_top1"] = ref
      row["delta_best"] = (row["best_top1"] - ref if ref is not None
                           and row["best_top1"] is not None else None)
      row["delta_mean"] = (row["mean_top1"] - ref if ref is not None
                           and row["mean_top1"] is not None else None)
    rows.append(row)
  rows.sort(key=lambda r: (r["source"] != rec.RUNS, r["source"],
                           r["selection_protocol"] != rec.VAL_SPLIT, r["dataset"],
                           -r["train_fraction"],
                           -(r["mean_top1"] if r["mean_top1"] is not None else -1),
                           r["backbone"]))
  notes = ["mean ± std over seeds (sample std); best = best-of-n, the paper's statistic; "
           "failed / diverged / degenerate / unreadable / incomplete / missing runs are "
           "counted, never dropped."]
  repeated = [r for r in rows if r["repeated_seeds"]]
  if repeated:
    notes.append("seed repeated: " + "; ".join(
        f"{r['dataset']} / {r['backbone']}: seed {r['repeated_seeds']}" for r in repeated)
        + ". Several runs of one seed are different experiments (e.g. other flags in "
        "one --workdir): n counts runs, and the mean ± std is not over seeds.")
  if reference is not None:
    notes.append("delta_best = best_top1 - ref_top1 (like for like: the paper reports "
                 "best of 3); delta_mean = mean_top1 - ref_top1.")
  return Table("datasets", "Test top-1 (%) per dataset and backbone", columns, rows, notes)


def competition_ranks(scores: dict) -> dict:
  """{name: score} -> {name: rank}; higher is better; ties share the smaller rank."""
  rounded = {k: round(v, _TIE_DIGITS) for k, v in scores.items()}
  ordered = sorted(rounded.values(), reverse=True)
  return {k: ordered.index(v) + 1 for k, v in rounded.items()}


def domains_table(dataset_rows: Sequence[dict]) -> Table:
  """Per domain (and `overall`): each backbone's mean of per-dataset means, ranked."""
  columns = ["domain", "backbone", "mean_top1", "rank", "label", "n_datasets",
             "of_datasets", "runs_in_mean", "of_runs", "train_fraction",
             "selection_protocol", "source"]
  groups = defaultdict(list)
  for row in dataset_rows:
    groups[(row["source"], row["selection_protocol"], row["train_fraction"])].append(row)
  rows = []
  for (source, protocol, fraction), group in sorted(
      groups.items(), key=lambda kv: (kv[0][0] != rec.RUNS, kv[0][0],
                                      kv[0][1] != rec.VAL_SPLIT, -kv[0][2])):
    domains = defaultdict(list)
    for row in group:
      domains[row["domain"]].append(row)
      domains[OVERALL].append(row)
    for domain in sorted(domains, key=lambda d: (d == OVERALL, d)):
      members = domains[domain]
      # A dataset no backbone finished says nothing about the ranking.
      all_datasets = {r["dataset"] for r in members if r["mean_top1"] is not None}
      by_backbone, statuses = defaultdict(dict), defaultdict(set)
      runs = defaultdict(lambda: [0, 0])  # backbone -> [runs in its means, all its runs]
      for r in members:
        by_backbone[r["backbone"]][r["dataset"]] = r["mean_top1"]
        runs[r["backbone"]][0] += r["n"]
        runs[r["backbone"]][1] += r["n"] + sum(r.get(k) or 0 for k in NOT_IN_MEAN)
        if r["mean_top1"] is None:
          statuses[r["backbone"]].add(r["status"])
      scores, block = {}, []
      for backbone, means in by_backbone.items():
        covered = [m for d, m in means.items() if m is not None and d in all_datasets]
        mean = statistics.fmean(covered) if covered else None
        complete = bool(covered) and len(covered) == len(all_datasets)
        if complete:
          scores[backbone] = mean
        label = ("" if complete else
                 f"no finished run ({', '.join(sorted(statuses[backbone]))})" if not covered
                 else f"incomplete ({len(covered)} of {len(all_datasets)} datasets)")
        block.append({"domain": domain, "backbone": backbone, "mean_top1": mean,
                      "rank": None, "label": label, "n_datasets": len(covered),
                      "of_datasets": len(all_datasets), "runs_in_mean": runs[backbone][0],
                      "of_runs": runs[backbone][1], "train_fraction": fraction,
                      "selection_protocol": protocol, "source": source})
      ranks = competition_ranks(scores)
      for row in block:
        if row["backbone"] in ranks:
          row["rank"] = ranks[row["backbone"]]
          row["label"] = LABELS.get(row["rank"], "")
      block.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0,
                                -(r["mean_top1"] if r["mean_top1"] is not None else -1),
                                r["backbone"]))
      rows.extend(block)
  notes = ["mean_top1 = mean over the domain's datasets of the backbone's per-dataset mean "
           "over seeds; overall = the same over all datasets. Rank 1 = best; ties share "
           "the smaller rank; only backbones with every dataset of the domain are ranked.",
           "runs = the backbone's runs in its means / all its runs in the domain: a "
           "failed, diverged, degenerate, incomplete or missing run is never in a mean, so "
           "a backbone ranked on fewer runs than it was given is ranked on the ones that "
           "worked.",
           "Top three: Best / Better / Good, as in the paper's Table 1."]
  return Table("domains", "Domain ranking", columns, rows, notes)


def fractions_table(dataset_rows: Sequence[dict]) -> Table:
  """Accuracy vs training fraction (Tables 7-8): datasets that have a fraction below 1."""
  columns = ["dataset", "backbone", "train_fraction", "mean_top1", "std_top1", "n",
             "relative_to_full", "selection_protocol", "source"]
  with_fractions = {(r["source"], r["selection_protocol"], r["dataset"])
                    for r in dataset_rows if r["train_fraction"] < 1.0}
  full = {(r["source"], r["selection_protocol"], r["dataset"], r["backbone"]): r["mean_top1"]
          for r in dataset_rows if r["train_fraction"] == 1.0}
  rows = []
  for r in dataset_rows:
    key = (r["source"], r["selection_protocol"], r["dataset"])
    if key not in with_fractions:
      continue
    base = full.get(key + (r["backbone"],))
    rows.append({
        "dataset": r["dataset"], "backbone": r["backbone"],
        "train_fraction": r["train_fraction"], "mean_top1": r["mean_top1"],
        "std_top1": r["std_top1"], "n": r["n"],
        "relative_to_full": (r["mean_top1"] / base if base and r["mean_top1"] is not None
                             else None),
        "selection_protocol": r["selection_protocol"], "source": r["source"]})
  rows.sort(key=lambda r: (r["source"] != rec.RUNS, r["source"],
                           r["selection_protocol"] != rec.VAL_SPLIT, r["dataset"],
                           r["backbone"], -r["train_fraction"]))
  notes = ["relative_to_full = mean at this fraction / mean at 100% of the training data."]
  return Table("fractions", "Accuracy vs training fraction", columns, rows, notes)


def _pixels(size) -> int:
  return imagesize.pixels(size) if size else 0


def _median(values):
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def resources_table(records: Sequence[rec.Record]) -> Table:
  """Per backbone and input size: medians of params, size, img/s, latency, peak memory."""
  columns = ["backbone", "image_size", "runs", "params_m", "model_size_mb",
             "train_images_per_sec", "inference_latency_ms", "peak_host_memory_mb",
             "selected_on_test_runs", "source"]
  groups = defaultdict(list)
  for r in records:
    if r.resources:
      groups[(r.backbone, r.image_size)].append(r)
  rows = []
  for (backbone, size), group in sorted(groups.items(),
                                        key=lambda kv: (kv[0][0], _pixels(kv[0][1]))):
    def get(k, group=group):
      return _median(r.resources.get(k) for r in group)
    params = get("params")
    rows.append({
        "backbone": backbone, "image_size": size, "runs": len(group),
        "params_m": params / 1e6 if params else None,
        "model_size_mb": get("model_size_mb"),
        "train_images_per_sec": get("train_images_per_sec"),
        "inference_latency_ms": get("inference_latency_ms"),
        "peak_host_memory_mb": get("peak_host_memory_mb"),
        "selected_on_test_runs": sum(r.selected_on_test for r in group),
        "source": " ".join(sorted({r.source for r in group}))})
  notes = ["Medians over finished runs. params and size include the new head, so they "
           "vary a little with the number of classes. train img/s depends on the machine, "
           "precision and batch. peak_host_memory_mb is the process's peak RSS "
           "(ru_maxrss): in a study that trains several runs in one process it is the "
           "largest run so far, not this run alone.",
           "runs: finished runs in the medians; on test ‡: how many of them were selected "
           "on the test set (--select_on=test, the paper's protocol); 0 = all on validation.",
           "latency (ms): batch-1 inference latency, where a run recorded one "
           "(result.json inference.latency_ms); – = not measured: training does not time "
           "inference."]
  return Table("resources", "Resources per backbone", columns, rows, notes)


def primary_series(dataset_rows: Sequence[dict]) -> tuple | None:
  """The (source, protocol) the plots show: this project's runs (val-split first)."""
  counts = defaultdict(int)
  for r in dataset_rows:
    counts[(r["source"], r["selection_protocol"])] += r["n"]
  if not counts:
    return None
  return max(counts, key=lambda k: (k[0] == rec.RUNS, k[1] == rec.VAL_SPLIT, counts[k]))


def finite(x) -> bool:
  return x is not None and not (isinstance(x, float) and math.isnan(x))
