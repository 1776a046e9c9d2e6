"""How often is the recommender right? Its ranking against fine-tuned ground truth.

Ground truth is a finished study: result.json per (backbone, weights, dataset, seed) run,
read with `tfbackbones.report.records`. For each dataset the recommender ranks the same
candidates on the same train/val split, and each score's ranking is compared with the
candidates' mean test top-1 over seeds:

* Kendall tau and weighted tau (hyperbolic weights: the top of the ranking matters
  most, as in the LogME paper);
* top-1 regret: test top-1 points lost by fine-tuning the recommended candidate instead
  of the truly best one;
* hit@3: is the truly best candidate in the recommender's top 3?

Seeds make the ground truth itself uncertain, so every metric gets a bootstrap interval:
the seed-runs of each candidate are resampled with replacement, the means recomputed and
the metrics re-evaluated against the (fixed) recommendation.
"""

from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np

from tfbackbones.backbones import weights as weights_lib
from tfbackbones.recommend import rank as rank_lib

SCORE_KEYS = ("combined", "logme", "knn", "probe")
METRICS = ("tau", "weighted_tau", "regret", "hit3")


def metrics(truth: dict, predicted: dict) -> dict:
  """Compares one ranking with ground truth.

  Args:
    truth: candidate -> true accuracy (percent).
    predicted: candidate -> predicted score (higher = better), same keys.

  Returns:
    tau, weighted_tau, regret (points; 0 = the pick is the best), hit3 (1.0 or 0.0),
    pick (the recommended candidate) and best (the truly best one).
  """
  names = sorted(truth)
  t = np.array([truth[n] for n in names], np.float64)
  p = np.array([predicted[n] for n in names], np.float64)
  order = np.argsort(-p, kind="stable")
  pick = names[order[0]]
  best_value = t.max()
  best = [n for n, v in zip(names, t, strict=True) if v == best_value]
  top3 = {names[i] for i in order[:3]}
  return {"tau": rank_lib.kendall_tau(t, p), "weighted_tau": rank_lib.weighted_tau(t, p),
          "regret": float(best_value - truth[pick]),
          "hit3": float(any(b in top3 for b in best)), "pick": pick, "best": best[0]}


def bootstrap(runs: dict, predicted: dict, samples: int = 1000, seed: int = 0) -> dict:
  """Percentile intervals (2.5%, 97.5%) of each metric over seed resamples.

  Args:
    runs: candidate -> list of test top-1 (one per seed).
    predicted: candidate -> predicted score.
    samples: bootstrap resamples.
    seed: of the resampling.

  Returns:
    metric -> (low, high); nan bounds where a metric is undefined.
  """
  rng = np.random.default_rng(seed)
  values = collections.defaultdict(list)
  for _ in range(samples):
    truth = {c: float(np.mean(rng.choice(v, size=len(v), replace=True)))
             for c, v in runs.items()}
    m = metrics(truth, predicted)
    for key in METRICS:
      values[key].append(m[key])
  out = {}
  for key in METRICS:
    xs = np.array(values[key], np.float64)
    xs = xs[~np.isnan(xs)]
    out[key] = ((float(np.percentile(xs, 2.5)), float(np.percentile(xs, 97.5)))
                if len(xs) else (float("nan"), float("nan")))
  return out


@dataclasses.dataclass
class GroundTruth:
  """The finished runs of one dataset (at one training fraction) in a study."""
  dataset: str
  domain: str
  runs: dict            # candidate label -> [top1 percent per seed]
  candidates: list      # Candidate objects, in label order
  config: dict          # a run's config (data_dir, image_size, split) to rank the same data
  train_fraction: float = 1.0

  @property
  def name(self) -> str:
    """The dataset, with its training fraction when it is not the whole split."""
    if self.train_fraction >= 1.0:
      return self.dataset
    return f"{self.dataset} ({self.train_fraction:g} of train)"


def ground_truth(study_workdir: str) -> list:
  """Groups a study's ranked runs by dataset and training fraction.

  Only real results count (`RunResult.ranked`, as in the report: finished with a finite
  test top-1; diverged, degenerate and failed runs are not ground truth).

  Candidates are (backbone, weights) as each run's config says, so a pretrained backbone
  and the same architecture from random init are two candidates. Each training fraction
  is its own question (which backbone with this much data?): the recommender is then
  given the same fraction, so it samples only the images those runs trained on.
  """
  from tfbackbones import results
  from tfbackbones.recommend.candidates import Candidate
  from tfbackbones.report import records
  by_dataset = collections.OrderedDict()
  for record in records.read_workdir(study_workdir):
    if record.status != records.FINISHED:
      continue
    config = results.read(os.path.join(record.path, "result.json")).config or {}
    weights = weights_lib.parse_weights_arg(config.get("weights", "imagenet"))
    cand = Candidate(config.get("backbone", record.backbone), weights)
    fraction = float(record.train_fraction)
    group = by_dataset.setdefault((record.dataset, fraction), GroundTruth(
        record.dataset, record.domain, {}, [], config, fraction))
    if cand.label not in group.runs:
      group.runs[cand.label] = []
      group.candidates.append(cand)
    group.runs[cand.label].append(float(record.top1))
  return list(by_dataset.values())


def predictions(rec) -> dict:
  """score key -> {candidate label: predicted score} from a Recommendation."""
  # The final rank (mean rank, ties broken by the probe, then LogME), not the raw mean.
  out = {"combined": {r["candidate"]: -float(r["rank"]) for r in rec.rows}}
  for key in ("logme", "knn", "probe"):
    out[key] = {r["candidate"]: r[key] for r in rec.rows}
  return out


def summarise(per_dataset: list) -> dict:
  """Means of each score's metrics over datasets, overall and per domain."""
  groups = collections.defaultdict(list)
  for row in per_dataset:
    groups["all"].append(row)
    groups[row["domain"]].append(row)
  out = {}
  for group, rows in groups.items():
    out[group] = {}
    for key in SCORE_KEYS:
      ms = [r["scores"][key] for r in rows if key in r["scores"]]
      out[group][key] = {m: float(np.nanmean([x[m] for x in ms])) if ms and not all(
          np.isnan(x[m]) for x in ms) else float("nan") for m in METRICS}
      out[group][key]["within_2_points"] = sum(x["regret"] <= 2.0 for x in ms)
      out[group][key]["datasets"] = len(ms)
  return out


@dataclasses.dataclass
class ValidateConfig:
  """One validation of the recommender against a finished study.

  Attributes:
    study_workdir: the study's workdir (result.json per run, any depth).
    workdir: where the recommender's runs (feature caches, recommend.json per dataset)
      and validate.json go; "" = `<study_workdir>/recommend`, where the report finds them.
    max_images / image_size / batch_size: passed to the recommender (image_size 0 = the
      size the study's runs used).
    bootstrap: resamples for the intervals.
    seed: of the bootstrap.
  """
  study_workdir: str
  workdir: str = ""
  max_images: int = 1000
  image_size: object = 0
  batch_size: int = 32
  bootstrap: int = 1000
  seed: int = 0


def _slug(text: str) -> str:
  return "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip("_")[:60]


def validate(config: ValidateConfig, progress=print) -> dict:
  """Runs the recommender on every dataset of the study and scores its rankings.

  Raises:
    ConfigError: the study has no finished full-data runs, or no dataset with 2+
      candidates the recommender could rank.
  """
  from tfbackbones import imagesize
  from tfbackbones.config import ConfigError
  from tfbackbones.recommend import outputs, recommender
  from tfbackbones.recommend.config import RecommendConfig
  size = imagesize.canonical(imagesize.parse(config.image_size))
  if not config.workdir:
    config.workdir = os.path.join(config.study_workdir, "recommend")
  groups = ground_truth(config.study_workdir)
  if not groups:
    raise ConfigError(f"no finished full-data runs (result.json with status finished) "
                      f"under {config.study_workdir}; run the study first.")
  per_dataset, skipped = [], []
  for group in groups:
    run_config = group.config
    progress(f"== {group.name} ({group.domain}): {len(group.candidates)} candidates, "
             f"{sum(len(v) for v in group.runs.values())} runs")
    rec_config = RecommendConfig(
        dataset=group.dataset, backbones=tuple(c.label for c in group.candidates),
        workdir=os.path.join(config.workdir, _slug(group.dataset) + (
            "" if group.train_fraction >= 1.0 else f"_frac{group.train_fraction:g}")),
        data_dir=run_config.get("data_dir"), manual_dir=run_config.get("manual_dir"),
        download=False, max_images=config.max_images,
        image_size=size or run_config.get("image_size", 0),
        batch_size=config.batch_size, val_fraction=run_config.get("val_fraction", 0.1),
        split_seed=run_config.get("split_seed", 42), train_fraction=group.train_fraction)
    rec = recommender.run(rec_config, progress=lambda m: progress(f"  {m}"))
    outputs.write(rec, rec_config.workdir)  # the report's "Recommender vs fine-tuning"
    preds = predictions(rec)
    ranked = [c for c in preds["combined"] if c in group.runs]
    skipped.extend({"dataset": group.name, **s} for s in rec.skipped)
    if len(ranked) < 2:
      progress(f"  {group.name}: fewer than 2 candidates ranked; not scored")
      continue
    runs = {c: group.runs[c] for c in ranked}
    truth = {c: float(np.mean(v)) for c, v in runs.items()}
    row = {"dataset": group.name, "domain": group.domain,
           "train_fraction": group.train_fraction, "workdir": rec_config.workdir,
           "truth": truth, "seeds": {c: len(v) for c, v in runs.items()},
           "predicted": {k: {c: v[c] for c in ranked} for k, v in preds.items()},
           "seconds": rec.seconds, "scores": {}, "intervals": {}}
    for key in SCORE_KEYS:
      predicted = row["predicted"][key]
      row["scores"][key] = metrics(truth, predicted)
      row["intervals"][key] = bootstrap(runs, predicted, config.bootstrap, config.seed)
    per_dataset.append(row)
  if not per_dataset:
    raise ConfigError("no dataset of the study had 2 or more candidates the recommender "
                      "could rank (see the skipped candidates above).")
  return {"study": config.study_workdir, "datasets": per_dataset,
          "summary": summarise(per_dataset), "skipped": skipped,
          "config": dataclasses.asdict(config)}


def markdown(result: dict) -> str:
  """Per-dataset and summary tables, for experiments/RESULTS.md."""
  f = rank_lib.fmt
  lines = ["| dataset | domain | candidates | score | tau | weighted tau | regret (pts) | hit@3 "
           "| pick | best |", "|---|---|---|---|---|---|---|---|---|---|"]
  for row in result["datasets"]:
    for key in SCORE_KEYS:
      m, ci = row["scores"][key], row["intervals"][key]
      lines.append(
          f"| {row['dataset']} | {row['domain']} | {len(row['truth'])} | {key} | {f(m['tau'])} "
          f"[{f(ci['tau'][0])}, {f(ci['tau'][1])}] | {f(m['weighted_tau'])} "
          f"[{f(ci['weighted_tau'][0])}, {f(ci['weighted_tau'][1])}] | {f(m['regret'])} "
          f"[{f(ci['regret'][0])}, {f(ci['regret'][1])}] | {f(m['hit3'], 0)} "
          f"[{f(ci['hit3'][0], 0)}, {f(ci['hit3'][1], 0)}] | "
          f"{m['pick']} | {m['best']} |")
  lines += ["", "| group | score | mean tau | mean weighted tau | mean regret | hit@3 rate | "
            "pick within 2 pts |", "|---|---|---|---|---|---|---|"]
  for group, by_score in result["summary"].items():
    for key, m in by_score.items():
      lines.append(f"| {group} | {key} | {f(m['tau'])} | {f(m['weighted_tau'])} | "
                   f"{f(m['regret'])} | {f(m['hit3'])} | {m['within_2_points']}/"
                   f"{m['datasets']} |")
  lines.append("")
  lines.append("Intervals: 2.5-97.5% bootstrap over each candidate's seeds "
               f"({result['config']['bootstrap']} resamples); with one seed per candidate "
               "they collapse to a point, and resamples whose ground truth ties are left out "
               "of tau's. hit@3 is trivially 1 with 3 or fewer candidates.")
  return "\n".join(lines)
