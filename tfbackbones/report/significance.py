"""Which differences between backbones are real: paired tests over shared seeds.

Two backbones trained with the same seed on the same dataset saw the same validation
split, the same training subset and the same test set, so their per-seed accuracies are
paired. For each pair the table gives the mean difference, a paired t-test (scipy) and,
because seeds are few (the paper used 3), the exact Wilcoxon signed-rank and sign tests,
whose smallest attainable p-value (2/2^n) says how much evidence n seeds can carry at
all. Holm's correction is applied over the pairs of each dataset, since 11 backbones make
55 comparisons per dataset.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence

from tfbackbones.report import records as rec
from tfbackbones.report.tables import Table

ALPHA = 0.05


def holm(p_values: Sequence[float | None]) -> list[float | None]:
  """Holm-Bonferroni adjusted p-values (None stays None)."""
  present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
  m, out, running = len(present), [None] * len(p_values), 0.0
  for k, (p, i) in enumerate(present):
    running = max(running, min(1.0, (m - k) * p))
    out[i] = running
  return out


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
  """Paired comparison of two equally long, seed-aligned accuracy lists (a - b)."""
  from scipy import stats
  diffs = [x - y for x, y in zip(a, b)]
  n = len(diffs)
  out = {"n_pairs": n, "mean_diff": statistics.fmean(diffs), "t_stat": None,
         "p_value": None, "wilcoxon_p": None, "sign_test": "", "note": ""}
  notes = []
  if n < 2:
    notes.append("one shared seed: no test")
  elif statistics.stdev(diffs) == 0:
    notes.append("the difference is the same on every seed (zero variance): the t-test "
                 "is undefined")
  else:
    t = stats.ttest_rel(a, b)
    out["t_stat"], out["p_value"] = float(t.statistic), float(t.pvalue)
  nonzero = [d for d in diffs if d != 0]
  if nonzero:
    wins = sum(d > 0 for d in nonzero)
    sign_p = stats.binomtest(wins, len(nonzero), 0.5).pvalue
    out["sign_test"] = f"{wins}/{len(nonzero)} seeds favour a, p={sign_p:.3g}"
    try:
      out["wilcoxon_p"] = float(stats.wilcoxon(nonzero).pvalue)
    except ValueError:
      pass
  if 1 <= n < 6:
    notes.append(f"n={n}: Wilcoxon and sign tests cannot reach p<{ALPHA} "
                 f"(smallest p = 2/2^{n} = {2 / 2 ** n:.3g})")
  out["note"] = "; ".join(notes)
  return out


def significance_table(records: Sequence[rec.Record]) -> Table:
  """Per (source, protocol, dataset, fraction): every pair of backbones with shared seeds."""
  columns = ["dataset", "train_fraction", "selection_protocol", "source", "backbone_a",
             "backbone_b", "n_pairs", "seeds", "mean_a", "mean_b", "mean_diff", "t_stat",
             "p_value", "p_holm", "significant", "significant_holm", "wilcoxon_p",
             "sign_test", "note"]
  groups = defaultdict(lambda: defaultdict(dict))
  for r in records:
    if r.status == rec.FINISHED and r.top1 is not None and r.seed is not None:
      key = (r.source, r.selection_protocol, r.dataset, r.train_fraction)
      groups[key][r.backbone][r.seed] = r.top1
  rows = []
  for (source, protocol, dataset, fraction), by_backbone in sorted(
      groups.items(), key=lambda kv: (kv[0][0] != rec.RUNS, kv[0][0],
                                      kv[0][1] != rec.VAL_SPLIT, kv[0][2], -kv[0][3])):
    block = []
    for x, y in itertools.combinations(sorted(by_backbone), 2):
      seeds = sorted(set(by_backbone[x]) & set(by_backbone[y]))
      if not seeds:
        continue
      mx = statistics.fmean(by_backbone[x][s] for s in seeds)
      my = statistics.fmean(by_backbone[y][s] for s in seeds)
      a, b = (x, y) if mx >= my else (y, x)   # a is the better one: mean_diff >= 0
      result = paired([by_backbone[a][s] for s in seeds], [by_backbone[b][s] for s in seeds])
      block.append(dict(result, dataset=dataset, train_fraction=fraction,
                        selection_protocol=protocol, source=source, backbone_a=a,
                        backbone_b=b, seeds=" ".join(map(str, seeds)),
                        mean_a=max(mx, my), mean_b=min(mx, my)))
    for row, adjusted in zip(block, holm([r["p_value"] for r in block])):
      row["p_holm"] = adjusted
      row["significant"] = None if row["p_value"] is None else row["p_value"] < ALPHA
      row["significant_holm"] = None if adjusted is None else adjusted < ALPHA
    block.sort(key=lambda r: (r["p_value"] is None,
                              r["p_value"] if r["p_value"] is not None else math.inf,
                              -r["mean_diff"]))
    rows.extend(block)
  notes = [f"backbone_a is the better of the pair (mean_diff = mean_a - mean_b >= 0, in "
           f"percentage points, over shared seeds). significant: paired t-test p < {ALPHA}; "
           "significant_holm: after Holm's correction over the dataset's pairs."]
  return Table("significance", "Paired comparisons over seeds", columns, rows, notes)
