r"""The offline quickstart: which small backbone learns handwritten digits best?

  make quickstart          # or: python -m experiments.quickstart --workdir=runs/quickstart

Fine-tunes three small backbones with the paper's DualOpt protocol (AdamW -> SGD, early
stopping on a held-out validation split) on scikit-learn's bundled 8x8 handwritten digits
(1,797 real images, upsampled to 32 px), then prints a comparison table. Everything is
offline: ImageNet weights cannot be downloaded here, so the backbones start from RANDOM
initialisation — the table compares architectures trained from scratch on tiny data, not
pretrained backbones. Expect >= 90% test top-1 for the best one, in a few minutes on 2
CPU cores. `tensorboard --logdir=runs/quickstart` shows the curves and the HParams table.
Rerunning skips finished runs.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfbackbones import cli  # noqa: E402

from tfbackbones.config import TrainConfig  # noqa: E402,F401  (type of configs())

FLAGS = flags.FLAGS


def _define_flags():
  """Flags of the script only: importing `configs` (the studies do) defines none."""
  flags.DEFINE_string("workdir", "runs/quickstart", "Study directory (one sub-workdir per "
                      "run).")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir; default "
                      "<workdir>/tensorflow_datasets.")
  flags.DEFINE_list("backbones", None, "Override the backbones (comma-separated).")
  flags.DEFINE_integer("max_epochs", None, "Override the epoch cap (for a faster look).")

BACKBONES = ("mobilenet_v3_small", "mobilenet_v3_large", "efficientnetv2_b0")

PROTOCOL = "quickstart"  # tfbackbones/protocols/quickstart.py, also flags/quickstart.flags


def configs(workdir: str, data_dir: str | None = None, backbones=BACKBONES,
            **overrides) -> list[TrainConfig]:
  """The quickstart study: one run per backbone, seed 0, under the quickstart protocol."""
  from tfbackbones import protocols  # pylint: disable=import-outside-toplevel
  from tfbackbones.protocols import quickstart as quick  # pylint: disable=import-outside-toplevel
  data_dir = data_dir or os.path.join(workdir, "tensorflow_datasets")
  return [protocols.build(PROTOCOL, dataset=quick.DATASET, backbone=b, seed=0).replace(
      workdir=os.path.join(workdir, b), data_dir=data_dir, **overrides).validate()
          for b in backbones]


def table(results: list) -> str:
  """The comparison table of RunResults, best test top-1 first; non-results last."""
  header = ("backbone", "params", "val top1", "test top1", "epochs", "wall time", "img/s")
  rows = []
  for r in sorted(results, key=lambda r: -(r.test_top1 if r.ranked else -1.0)):
    test = f"{r.test_top1:.2%}" if r.ranked else f"{r.status.upper()} (not a result)"
    rows.append((r.backbone, f"{r.params / 1e6:.2f}M", f"{r.val['top1']:.2%}", test,
                 f"{r.epochs['total']} ({r.epochs['adamw']}+{r.epochs['sgd']})",
                 f"{r.wall_time_sec:.0f}s", f"{r.train_images_per_sec:.0f}"))
  widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
  fmt = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths))  # noqa: E731
  return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def main(argv):
  del argv
  from tfbackbones import runner  # pylint: disable=import-outside-toplevel
  cli.quiet_logs()
  overrides = {"max_epochs": FLAGS.max_epochs} if FLAGS.max_epochs else {}
  runs = configs(FLAGS.workdir, FLAGS.data_dir, tuple(FLAGS.backbones or BACKBONES),
                 **overrides)
  print("tfbackbones quickstart: offline, so every backbone starts from RANDOM "
        "initialisation (ImageNet weights are not downloadable here).")
  started = time.time()
  results, failures = [], []
  for i, cfg in enumerate(runs, 1):
    print(f"\n[{i}/{len(runs)}] {cfg.backbone} -> {cfg.workdir}", flush=True)
    try:
      results.append(runner.train(cfg))
    except runner.USER_ERRORS as e:
      failures.append((cfg.backbone, str(e)))
      print(f"error: {e}", file=sys.stderr)
  print(f"\nsklearn_digits (1,797 real 8x8 handwritten digits at 32 px), random init, "
        f"DualOpt, selection on a 10% validation split; {time.time() - started:.0f}s total\n")
  if results:
    print(table(results))
  for backbone, error in failures:
    print(f"{backbone}: FAILED: {error}")
  print(f"\nTensorBoard: tensorboard --logdir={FLAGS.workdir}")
  print("The real thing (ImageNet weights, a paper dataset, a GPU):\n"
        "  python -m tfbackbones.train --flagfile=flags/paper.flags "
        "--backbone=convnext_tiny --dataset=dtd --workdir=runs/dtd/convnext_tiny")
  return 1 if failures or not results else 0


if __name__ == "__main__":
  _define_flags()
  app.run(main)
