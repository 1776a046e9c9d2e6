"""`--finetune_top=k`: fine-tune the recommender's top k and compare predicted with actual.

Each candidate is trained by the project's engine (`tfbackbones.runner.train`, the same
code path as `tfbackbones.train` and the study runner) on the same dataset, image size
and train/val split as the recommender used, in `<workdir>/finetune/<candidate>/`; a
finished run is not trained again, an interrupted one resumes. The result says, for those
k, the recommender's rank next to the fine-tuned test top-1 and rank, and the Kendall tau
between the two.
"""

from __future__ import annotations

import dataclasses
import json
import os

from tfbackbones.config import TrainConfig
from tfbackbones.recommend import rank as rank_lib
from tfbackbones.recommend.candidates import Candidate

FINETUNE_FILE = "finetune.json"


def train_config(candidate: Candidate, config, image_size, **overrides) -> TrainConfig:
  """The TrainConfig of one candidate: the recommender's data, the engine's defaults."""
  values = dict(backbone=candidate.name, weights=candidate.weights, dataset=config.dataset,
                image_size=image_size, val_fraction=config.val_fraction,
                split_seed=config.split_seed, train_fraction=config.train_fraction,
                data_dir=config.data_dir,
                manual_dir=config.manual_dir, download=config.download,
                workdir=os.path.join(config.workdir, "finetune", candidate.slug))
  values.update({k: v for k, v in overrides.items() if v is not None})
  return TrainConfig(**values).validate()


def finetune_top(rec, config, progress=print, **train_overrides) -> dict:
  """Fine-tunes the top `config.finetune_top` rows of `rec`; returns and writes the result.

  Args:
    rec: a Recommendation.
    config: its RecommendConfig (finetune_top, finetune_max_epochs, finetune_batch_size).
    progress: line sink.
    **train_overrides: further TrainConfig fields for library callers.
  """
  k = config.finetune_top
  overrides = {"max_epochs": config.finetune_max_epochs,
               "batch_size": config.finetune_batch_size, **train_overrides}
  from tfbackbones import runner
  rows = []
  for row in rec.rows[:k]:
    cand = Candidate(row["backbone"], row["weights"])
    train = train_config(cand, config, rec.image_size, **overrides)
    progress(f"fine-tuning #{row['rank']} {cand.label} in {train.workdir}")
    result = runner.train(train)
    finished = result.ranked
    rows.append({"candidate": cand.label, "rec_rank": row["rank"],
                 "test_top1": 100.0 * result.test_top1 if finished else None,
                 "status": result.status, "workdir": train.workdir})
  done = [r for r in rows if r["test_top1"] is not None]
  for position, r in enumerate(sorted(done, key=lambda r: -r["test_top1"]), 1):
    r["ft_rank"] = position
  tau = rank_lib.kendall_tau([-r["rec_rank"] for r in done], [r["test_top1"] for r in done])
  out = {"rows": rows, "kendall_tau": tau,
         "train_overrides": {k: v for k, v in overrides.items() if v is not None},
         "train_defaults": dataclasses.asdict(TrainConfig())}
  with open(os.path.join(config.workdir, FINETUNE_FILE), "w") as f:
    json.dump(out, f, indent=1)
  return out


def summary(result: dict) -> str:
  f = rank_lib.fmt
  lines = ["predicted vs fine-tuned:",
           f"  {'candidate':<28}{'rec rank':>9}{'test top-1':>12}{'ft rank':>9}"]
  for r in result["rows"]:
    top1 = f(r["test_top1"]) if r["test_top1"] is not None else r["status"]
    lines.append(f"  {r['candidate']:<28}{r['rec_rank']:>9}{top1:>12}"
                 f"{r.get('ft_rank', '-'):>9}")
  lines.append(f"  Kendall tau (recommender rank vs fine-tuned top-1): "
               f"{f(result['kendall_tau'])}")
  return "\n".join(lines)
