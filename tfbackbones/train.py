r"""Fine-tune one backbone on one dataset: `python -m tfbackbones.train`.

  python -m tfbackbones.train --protocol=paper --backbone=convnext_tiny --dataset=dtd \
      --workdir=runs/dtd/convnext_tiny/s0
  python -m tfbackbones.train --flagfile=flags/tpu.flags --backbone=... --dataset=...

A protocol (`--protocol`, default `paper`; tfbackbones/protocols/) sets every value for
the (dataset, backbone, seed, train_fraction) cell, exactly as the studies do; each flag
you give overrides it, then each `--set KEY=VALUE`. Flagfiles are read first, so a flag
typed on the command line wins wherever it stands. `--dry_run` prints the resolved
config.

Rerunning the same command resumes an interrupted run from its last completed epoch; a
finished run prints its result and does not train again. `tensorboard --logdir=runs`
compares runs (Scalars and HParams).

This is the only module that reads FLAGS: it turns them into a `TrainConfig` and hands it
to the library.
"""

from __future__ import annotations

import dataclasses
import sys

from absl import app, flags

from tfbackbones import cli, nextsteps, protocols
from tfbackbones.config import (
  AUGMENT_AT,
  CACHE_MODES,
  PRECISIONS,
  SELECT_ON,
  STRATEGIES,
  TrainConfig,
)

_D = TrainConfig()
FLAGS = flags.FLAGS

flags.DEFINE_string("backbone", _D.backbone, "Backbone name (`python -m tfbackbones.backbones` "
                    "lists them), or savedmodel:/path, or hub:<handle>.")
flags.DEFINE_string("dataset", _D.dataset, "Dataset name (`python -m tfbackbones.datasets` "
                    "lists them), or folder:/path/to/class_folders for your own images.")
flags.DEFINE_string("workdir", _D.workdir, "Run directory (local or gs://): config, "
                    "checkpoints, TensorBoard events, result.json.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", None, "Where manually downloaded files are "
                    "(BreakHis, RSNA, NEU, PlantCLEF, cars196); default "
                    "<data_dir>/downloads/manual.")
flags.DEFINE_bool("download", None, "Prepare a missing dataset (download if needed).")
flags.DEFINE_string("weights", None, "imagenet | none | PATH (.weights.h5 or .keras).")
flags.DEFINE_string("image_size", None, "Input size: one number for a "
                    "square (`224`), WIDTHxHEIGHT otherwise (`672x448`, the paper's BreakHis "
                    "size); 0 = the dataset's protocol size.")
flags.DEFINE_integer("batch_size", None, "Global batch size (over all replicas). "
                     "Unset, the protocol's batch is lowered so that an epoch has at least "
                     "--min_steps_per_epoch steps (small data); set, it is used as given.")
flags.DEFINE_integer("min_steps_per_epoch", None, "With the protocol's batch: lower it so "
                     "an epoch has at least this many steps (default 10; 0 = never).")
flags.DEFINE_integer("min_images_per_class", None, "0 (default): a class without a train "
                     "or validation image is an error. N: drop classes with fewer than N "
                     "images, with a warning.")
flags.DEFINE_integer("seed", _D.seed, "Training seed (init, shuffling, augmentation).")
flags.DEFINE_integer("split_seed", None, "Seed of the validation split and the "
                     "training-fraction subset: keep it fixed to compare backbones and seeds "
                     "on the same images.")
flags.DEFINE_float("train_fraction", _D.train_fraction, "Share of the training split to use, "
                   "in (0, 1]; stratified, >= 1 example per class.")
flags.DEFINE_float("val_fraction", None, "Share of train held out for selection.")
flags.DEFINE_enum("select_on", None, SELECT_ON, "val: select and early-stop on the "
                  "held-out split (correct). test: the paper's own protocol; every output "
                  "marks the run as selected-on-test.")
flags.DEFINE_integer("patience", None, "Sets both --adamw_patience and --sgd_patience.")
flags.DEFINE_integer("adamw_patience", None, "Epochs without improvement "
                     "before switching AdamW -> SGD.")
flags.DEFINE_integer("sgd_patience", None, "Epochs without improvement before "
                     "stopping the SGD phase.")
flags.DEFINE_integer("max_epochs", None, "Hard cap on epochs over both phases.")
flags.DEFINE_float("adamw_lr", None, "AdamW learning rate.")
flags.DEFINE_float("adamw_weight_decay", None, "AdamW weight decay.")
flags.DEFINE_float("sgd_lr", None, "SGD learning rate.")
flags.DEFINE_float("sgd_momentum", None, "SGD momentum.")
flags.DEFINE_float("dropout", None, "Dropout before the new head.")
flags.DEFINE_float("label_smoothing", None, "Label smoothing of the loss.")
flags.DEFINE_bool("freeze_backbone", None, "Linear probe: train the head only.")
flags.DEFINE_string("augment", None, "auto (the dataset's protocol) | none | flip | trivial.")
flags.DEFINE_enum("augment_at", None, AUGMENT_AT, "cached: augment images "
                  "already resized to the input size (cheapest). native: augment at the "
                  "dataset's native size, then resize, as the paper's code does; matters "
                  "for small images such as CIFAR (TrivialAugment shifts by absolute "
                  "pixels). Needs a dataset whose images share one size.")
flags.DEFINE_float("bn_momentum", None, "Override BatchNorm momentum (useful "
                   "from random init on small data, e.g. 0.9).")
flags.DEFINE_bool("precise_bn", None, "Re-estimate BatchNorm statistics on up to 4096 "
                  "training images before each evaluation (\"precise BN\", as pycls and "
                  "detectron2 do). Unset: on only when an epoch has fewer than 8 steps; "
                  "see docs/results.md.")
flags.DEFINE_enum("strategy", None, STRATEGIES, "tf.distribute strategy; auto = TPU "
                  "if --tpu, mirrored over GPUs if any, else default.")
flags.DEFINE_string("tpu", None, "TPU name or grpc address; 'local' on a TPU VM.")
flags.DEFINE_integer("cpu_replicas", None, "CPU-only hosts: train N replicas, "
                     "one per core (MirroredStrategy over N slices of the CPU). Faster for "
                     "small networks (measured on 2 cores: +26% MobileNetV3-Small, +12% "
                     "EfficientNetV2-B0, +8% MobileNetV3-Large; experiments/BENCHMARKS.md); "
                     "BatchNorm then normalises per replica, as on several GPUs.")
flags.DEFINE_enum("precision", None, PRECISIONS, "auto = float32 on CPU, "
                  "mixed_float16 on GPU, mixed_bfloat16 on TPU.")
flags.DEFINE_integer("steps_per_execution", None, "Training steps per "
                     "tf.function call (fewer host round trips).")
flags.DEFINE_bool("fused_kernels", None, "Train with TF's fused kernels for "
                  "BatchNormalization and the AdamW/SGD updates, and on CPU one-pass "
                  "hard-swish/swish kernels and a depthwise filter gradient, built with "
                  "g++ on first use (same math, fewer and faster kernels; see "
                  "tfbackbones/training/fused_bn.py, optimizers.py and tfbackbones/kernels/).")
flags.DEFINE_enum("cache", None, CACHE_MODES, "Cache decoded, resized images in memory.")
flags.DEFINE_integer("keep_checkpoints", None, "Epoch checkpoints to keep.")
flags.DEFINE_integer("checkpoint_min_steps", None, "Write the resumable checkpoint only at "
                     "epochs at least this many training steps apart (0: every epoch); a "
                     "kill then redoes at most that many steps, with the same result.")


flags.DEFINE_string("protocol", "paper", "How to train: a registered protocol (" +
                    ", ".join(protocols.names()) + "; tfbackbones/protocols/, "
                    "docs/protocol.md) sets every value for the --dataset/--backbone/--seed/"
                    "--train_fraction cell. Any flag you give overrides it, wherever it "
                    "stands (a flagfile never overrides the command line).")
flags.DEFINE_multi_string("set", [], "KEY=VALUE: set any TrainConfig field (repeatable), "
                          "applied last, e.g. --set image_size=672x448; the same language "
                          "as experiments.run --set.")
flags.DEFINE_bool("dry_run", False, "Print the resolved config as JSON and exit: nothing "
                  "is trained, prepared or written.")

def config_from_flags() -> TrainConfig:
  fields = {f.name for f in dataclasses.fields(TrainConfig)}
  given = {name: getattr(FLAGS, name) for name in fields
           if FLAGS[name].present or name in protocols.CELL or name == "workdir"}
  if "image_size" in given and isinstance(given["image_size"], str):
    given["image_size"] = given["image_size"].strip()
  if FLAGS.patience is not None:
    given["adamw_patience"] = given["sgd_patience"] = FLAGS.patience
  return protocols.resolve(FLAGS.protocol, given, FLAGS.set)


def main(argv):
  del argv  # cli.parse_flags refuses arguments that are not flags
  cli.quiet_logs()  # before TensorFlow is imported
  from tfbackbones import runner
  from tfbackbones.training import distribute
  try:
    config = config_from_flags().validate()
    if FLAGS.dry_run:  # names are checked as a real run would, nothing is touched
      runner.check(config)
      print(config.to_json())
      return 0
    distribute.configure_cpu_replicas(config.cpu_replicas)  # before TF starts
    result = runner.train(config)
  except KeyboardInterrupt:
    cli.interrupted(FLAGS.workdir)
  except runner.USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except distribute.WorkerLostError as e:
    # Not the user's fault and not a bug: rerunning resumes. 75 = EX_TEMPFAIL, which job
    # schedulers can treat as "restart me".
    print(f"error: {e}", file=sys.stderr)
    sys.exit(75)
  if result.ranked:
    print("\n" + nextsteps.text(config.workdir, config.workdir))
  return 0 if result.ranked else 1


if __name__ == "__main__":
  app.run(main, argv=cli.flagfiles_first(sys.argv), flags_parser=cli.parse_flags)
