"""Which backbone for my images? Rank candidates from frozen features, in minutes.

Public API:
  RecommendConfig (config.py); run(config, progress) -> Recommendation (recommender.py);
  outputs.write / outputs.summary; the scores (scores.py) and rank helpers (rank.py).

Command line: `python -m tfbackbones.recommend --dataset=folder:/path --backbones=a,b`.
See docs/recommend.md.
"""

from tfbackbones.recommend.config import SCORES, RecommendConfig
from tfbackbones.recommend.recommender import Recommendation, run

__all__ = ["SCORES", "Recommendation", "RecommendConfig", "run"]
