"""Which backbone for my images? Rank candidates from frozen features, in minutes.

Public API:
  RecommendConfig (config.py); run(config, progress) -> Recommendation (recommender.py);
  outputs.write / outputs.summary; the scores (scores.py) and rank helpers (rank.py).

Command line: `python -m tfbackbones.recommend --dataset=folder:/path --backbones=a,b`.
See docs/recommend.md.

`run` and `Recommendation` are imported on first use: the recommender imports Keras and
TensorFlow, and `python -m tfbackbones.recommend` imports this package before its `main`
can quiet TensorFlow's start-up (`cli.quiet_logs`).
"""

from tfbackbones.recommend.config import SCORES, RecommendConfig

__all__ = ["SCORES", "Recommendation", "RecommendConfig", "run"]


def __getattr__(name):
  if name in ("Recommendation", "run"):
    from tfbackbones.recommend import recommender
    return getattr(recommender, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
