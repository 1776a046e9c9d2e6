"""Writing a Recommendation: recommend.json, recommend.csv and the terminal summary."""

from __future__ import annotations

import csv
import io
import json
import math
import os

from tfbackbones.recommend import rank as rank_lib

JSON_FILE = "recommend.json"
CSV_FILE = "recommend.csv"
CSV_COLUMNS = ("rank", "candidate", "backbone", "weights", "mean_rank", "logme", "knn",
               "probe", "probe_c", "params_m", "feature_dim", "img_per_sec",
               "est_finetune_min", "imagenet_top1")


def write(rec, workdir: str) -> tuple[str, str]:
  """Writes recommend.json (everything) and recommend.csv (one row per candidate)."""
  import tensorflow as tf
  tf.io.gfile.makedirs(workdir)
  json_path = os.path.join(workdir, JSON_FILE)
  with tf.io.gfile.GFile(json_path, "w") as f:
    f.write(json.dumps(_finite(rec.as_dict()), indent=1, default=str, allow_nan=False))
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
  writer.writeheader()
  for row in rec.rows:
    writer.writerow(row)
  csv_path = os.path.join(workdir, CSV_FILE)
  with tf.io.gfile.GFile(csv_path, "w") as f:
    f.write(buffer.getvalue())
  return json_path, csv_path


def _finite(value):
  """`value` with NaN and infinities as None: they are not JSON, and a strict reader
  (jq, a browser) refuses the whole file over one undefined figure (a Kendall tau over
  two tied candidates). The report's readers show None as n/a."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  return value


def read(workdir: str) -> dict:
  """The recommend.json of a workdir, as a dict."""
  import tensorflow as tf
  with tf.io.gfile.GFile(os.path.join(workdir, JSON_FILE)) as f:
    return json.loads(f.read())


def _minutes(value) -> str:
  """Whole minutes, but tenths below ten: a small folder's estimate is under a minute and
  used to print as 0."""
  if isinstance(value, (int, float)) and value == value and value < 10:
    return "<0.1" if value < 0.05 else rank_lib.fmt(value, 1)
  return rank_lib.fmt(value, 0)


def summary(rec) -> str:
  """The ranking as a text table, then agreement, skipped candidates and commands."""
  f = rank_lib.fmt
  lines = [f"recommend on {rec.dataset} ({rec.num_classes} classes, {rec.num_train_sample} "
           f"train + {rec.num_val_sample} val images sampled, {rec.image_size} px)", ""]
  header = (f"{'rank':>4}  {'candidate':<28}{'mean rank':>10}{'LogME':>9}{'kNN':>7}"
            f"{'probe':>7}{'params M':>10}{'img/s':>8}{'est. FT min':>12}")
  lines.append(header)
  for r in rec.rows:
    lines.append(f"{r['rank']:>4}  {r['candidate']:<28}{f(r['mean_rank'], 1):>10}"
                 f"{f(r['logme'], 3):>9}{f(r['knn']):>7}{f(r['probe']):>7}"
                 f"{f(r['params_m'], 1):>10}{f(r['img_per_sec'], 1):>8}"
                 f"{_minutes(r['est_finetune_min']):>12}")
  if not rec.rows:
    lines.append("  (no candidate could be ranked)")
  lines.append("")
  lines.append(f"kNN = leave-one-out {rec.config['knn_k']}-NN accuracy, probe = logistic "
               "regression val accuracy;")
  lines.append("est. FT min = epochs x train images x 3 forward passes / measured img/s "
               "(this machine, this image size)")
  if rec.agreement:
    lines.append("score agreement (Kendall tau over candidates): " + ", ".join(
        f"{k} {f(v)}" for k, v in rec.agreement.items()))
  for s in rec.skipped:
    first = s["reason"].splitlines()[0] if s["reason"] else ""
    lines.append(f"skipped {s['candidate']}: {first}")
  if rec.commands:
    lines.append("")
    lines.append(f"fine-tune the top {len(rec.commands)}:")
    lines.extend(f"  {c}" for c in rec.commands)
  return "\n".join(lines)
