"""The offline quickstart's protocol: small data, random initialisation, quick stops.

scikit-learn's 8x8 digits upsampled to 32 px, random init (ImageNet weights cannot be
downloaded offline). BatchNorm momentum 0.9 so that the moving statistics keep up with
weights that train from scratch in a few hundred steps (docs/stack.md, "small data").
"""

from __future__ import annotations

from tfbackbones.config import TrainConfig
from tfbackbones.protocols import register

DATASET = "sklearn_digits"


@register("quickstart")
def quickstart(dataset: str, backbone: str, seed: int, train_fraction: float) -> TrainConfig:
  """Random init, 32 px, batch 64, patience 5/3, at most 30 epochs (offline, minutes)."""
  return TrainConfig(backbone=backbone, dataset=dataset, seed=seed,
                     train_fraction=train_fraction, weights="none", image_size=32,
                     batch_size=64, bn_momentum=0.9, adamw_patience=5, sgd_patience=3,
                     max_epochs=30, select_on="val", val_fraction=0.1)
