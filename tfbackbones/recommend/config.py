"""The typed configuration of one `recommend` run (the CLI turns flags into this)."""

from __future__ import annotations

import dataclasses

from tfbackbones import imagesize
from tfbackbones.config import ConfigError

# Which scores enter the combined rank (all three by default; see scores.py).
SCORES = ("logme", "knn", "probe")


@dataclasses.dataclass
class RecommendConfig:
  """What to rank, on which images, where to keep the features.

  Attributes:
    dataset: catalog name or `folder:/path` (as for `tfbackbones.train`).
    backbones: candidate names; each may end in `@imagenet`, `@none` or `@/path/w.h5`
      to override `weights` for that candidate; `("all",)` = every registered backbone.
    weights: weights of candidates that do not name theirs.
    workdir: where the feature cache, recommend.json and recommend.csv go.
    data_dir / manual_dir / download: as for `tfbackbones.train`.
    max_images: size of the stratified sample (train + val) that is fed to each backbone.
    val_share: share of the sample drawn from the validation split (the linear probe's
      selection set); the rest comes from the training split.
    image_size: 0 = the dataset's protocol size (what fine-tuning uses), else a size.
    batch_size: forward-pass batch.
    val_fraction / split_seed: the train/val split, the same rule and defaults as
      `tfbackbones.train`, so the recommender never looks at the test images.
    train_fraction: share of the training split fine-tuning would use (as in
      `tfbackbones.train`); the sample is drawn from that share only.
    fast_read: folder datasets: decode and resize with Pillow on threads (large JPEGs
      at a reduced DCT scale, torchvision's antialiased bilinear resize): a faster first
      pass, pixels within a grey level or so of fine-tuning's (docs/recommend.md).
      False = TensorFlow's decode and resize, exactly the pixels fine-tuning sees.
    sample_seed: which images are sampled.
    knn_k: neighbours of the leave-one-out kNN score.
    scores: scores that enter the combined rank.
    top_k: how many fine-tuning commands to print.
    finetune_epochs: epochs assumed by the fine-tune time estimate.
    finetune_top: fine-tune this many top candidates after ranking (0 = none).
    finetune_max_epochs / finetune_batch_size: for those runs; None = the engine's
      defaults (the paper protocol).
  """
  dataset: str = "sklearn_digits"
  backbones: tuple = ("all",)
  weights: str = "imagenet"
  workdir: str = "runs/recommend"
  data_dir: str | None = None
  manual_dir: str | None = None
  download: bool = True
  max_images: int = 1000
  val_share: float = 0.25
  image_size: int | str = 0
  batch_size: int = 32
  val_fraction: float = 0.1
  split_seed: int = 42
  train_fraction: float = 1.0
  fast_read: bool = True
  sample_seed: int = 0
  knn_k: int = 5
  scores: tuple = SCORES
  top_k: int = 3
  finetune_epochs: int = 30
  finetune_top: int = 0
  finetune_max_epochs: int | None = None
  finetune_batch_size: int | None = None

  def validate(self) -> RecommendConfig:
    """Raises ConfigError naming the first bad value and the fix; returns self."""
    def bad(name, value, fix):
      raise ConfigError(f"--{name}={value!r} is invalid: {fix}")

    self.backbones = tuple(b.strip() for b in self.backbones if b.strip())
    if not self.backbones:
      bad("backbones", ",".join(self.backbones), "name at least one backbone, or `all`.")
    if self.max_images < 20:
      bad("max_images", self.max_images, "use >= 20 (1000 is a good default).")
    if not 0.0 < self.val_share < 1.0:
      bad("val_share", self.val_share, "it must be in (0, 1), e.g. 0.25.")
    if not 0.0 < self.val_fraction < 1.0:
      bad("val_fraction", self.val_fraction, "it must be in (0, 1) (default 0.1).")
    if not 0.0 < self.train_fraction <= 1.0:
      bad("train_fraction", self.train_fraction, "it must be in (0, 1] (default 1).")
    if self.batch_size < 1:
      bad("batch_size", self.batch_size, "use >= 1.")
    if self.knn_k < 1:
      bad("knn_k", self.knn_k, "use >= 1.")
    if self.finetune_top < 0:
      bad("finetune_top", self.finetune_top, "use >= 0 (0 = rank only).")
    if self.top_k < 0:
      bad("top_k", self.top_k, "use >= 0.")
    unknown = [s for s in self.scores if s not in SCORES]
    if unknown or not self.scores:
      bad("scores", ",".join(self.scores), f"choose from {', '.join(SCORES)}.")
    try:
      size = imagesize.parse(self.image_size)
    except imagesize.SizeError as e:
      bad("image_size", self.image_size, str(e))
    if size is not None and min(size) < 32:
      bad("image_size", self.image_size, "use 0 (the dataset's protocol size) or >= 32.")
    self.image_size = imagesize.canonical(size)
    return self
