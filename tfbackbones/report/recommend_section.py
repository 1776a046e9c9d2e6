"""The report's "Recommender vs fine-tuning" section: per dataset, both rankings side by side.

The recommender's rankings are the `recommend.json` files under `<study>/recommend/`
(where `experiments.validate_recommend` writes them by default); the fine-tuned ranking
is the mean test top-1 over seeds of the study's finished full-data runs, per
(backbone, weights) candidate. No recommend.json: no section.
"""

from __future__ import annotations

import html
import json
import math
import os

import tensorflow as tf

RECOMMEND_DIR = "recommend"


def find(workdir: str) -> list:
  """Every recommend.json under `<workdir>/recommend/` (one level of dataset folders)."""
  root = os.path.join(workdir, RECOMMEND_DIR)
  paths = sorted(tf.io.gfile.glob(os.path.join(root, "*", "recommend.json"))
                 + tf.io.gfile.glob(os.path.join(root, "recommend.json")))
  out = []
  for path in paths:
    with tf.io.gfile.GFile(path) as f:
      try:
        out.append(json.loads(f.read()))
      except json.JSONDecodeError:
        continue
  return out


def rows(rec: dict, truth: dict) -> list:
  """One row per candidate: the recommender's rank and scores, the fine-tuned rank/top-1."""
  means = {c: sum(v) / len(v) for c, v in truth.items()}
  ordered = sorted(means, key=lambda c: -means[c])
  true_rank = {c: i for i, c in enumerate(ordered, 1)}
  out = []
  for r in rec["rows"]:
    c = r["candidate"]
    out.append({"candidate": c, "rec_rank": r["rank"], "logme": r["logme"],
                "knn": r["knn"], "probe": r["probe"], "ft_rank": true_rank.get(c),
                "ft_top1": means.get(c), "seeds": len(truth.get(c, []))})
  return out


def _num(value, digits=2) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "–"
  return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def section_html(workdir: str) -> str:
  """The section's HTML, or "" when the study has no recommend.json."""
  recs = find(workdir)
  if not recs:
    return ""
  from tfbackbones.recommend import validation
  # A study may train at several fractions: each is its own ground truth.
  truth = {(g.dataset, g.train_fraction): g for g in validation.ground_truth(workdir)}
  parts = ["<h2>Recommender vs fine-tuning</h2><p>Left: <code>python -m "
           "tfbackbones.recommend</code> from frozen features (rank 1 = recommended). Right: "
           "the fine-tuned ranking by mean test top-1 over seeds. See docs/recommend.md.</p>"]
  for rec in recs:
    fraction = float(rec.get("config", {}).get("train_fraction", 1.0))
    group = truth.get((rec["dataset"], fraction))
    table = rows(rec, group.runs if group else {})
    title = group.name if group else rec["dataset"]
    body = "".join(
        f"<tr><td>{html.escape(r['candidate'])}</td><td>{r['rec_rank']}</td>"
        f"<td>{_num(r['logme'], 3)}</td><td>{_num(r['knn'])}</td><td>{_num(r['probe'])}</td>"
        f"<td>{_num(r['ft_rank'])}</td><td>{_num(r['ft_top1'])}</td><td>{r['seeds']}</td></tr>"
        for r in table)
    parts.append(
        f"<h3>{html.escape(title)}</h3><table><thead><tr><th>candidate</th>"
        "<th>recommender rank</th><th>LogME</th><th>kNN</th><th>probe</th>"
        "<th>fine-tuned rank</th><th>test top-1 (%)</th><th>seeds</th></tr></thead>"
        f"<tbody>{body}</tbody></table>")
  return "".join(parts)
