r"""Rank backbones for a dataset from frozen features: `python -m tfbackbones.recommend`.

  python -m tfbackbones.recommend --dataset=folder:/path/to/images \
      --backbones=efficientnet_lite0,efficientnet_lite0@none,resnet50 --workdir=runs/rec

Prints progress, the ranking (LogME, leave-one-out kNN, linear probe, their mean rank,
params, measured img/s, an estimated fine-tune time) and the commands that fine-tune the
top k; writes recommend.json and recommend.csv to --workdir. Features are cached there:
a rerun, or a rerun with one more candidate, only computes what is new. `--finetune_top=k`
then fine-tunes the top k (in <workdir>/finetune/) and prints predicted vs actual.

This is the only module that reads FLAGS: it turns them into a `RecommendConfig`.
"""

from __future__ import annotations

import sys

from absl import app, flags

from tfbackbones import cli
from tfbackbones.recommend.config import SCORES, RecommendConfig

_D = RecommendConfig()
FLAGS = flags.FLAGS

flags.DEFINE_string("dataset", _D.dataset, "Catalog name or folder:/path (one subfolder "
                    "per class).")
flags.DEFINE_list("backbones", list(_D.backbones), "Candidates: names (`python -m "
                  "tfbackbones.backbones` lists them), each optionally @imagenet, @none "
                  "or @/path/file.weights.h5; `all` = every registered backbone.")
flags.DEFINE_string("weights", _D.weights, "Weights of candidates without @: imagenet | "
                    "none | PATH.")
flags.DEFINE_string("workdir", _D.workdir, "Feature cache and outputs.")
flags.DEFINE_string("data_dir", _D.data_dir, "TFDS data_dir (default ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", _D.manual_dir, "Manually downloaded files, as for train.")
flags.DEFINE_bool("download", _D.download, "Prepare a missing dataset (download if needed).")
flags.DEFINE_integer("max_images", _D.max_images, "Images sampled (train + val, "
                     "stratified).")
flags.DEFINE_float("val_share", _D.val_share, "Share of the sample taken from the val split.")
flags.DEFINE_string("image_size", str(_D.image_size), "0 = the dataset's protocol size, "
                    "else N or WIDTHxHEIGHT.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Forward-pass batch.")
flags.DEFINE_float("val_fraction", _D.val_fraction, "Train/val split, as in train.")
flags.DEFINE_integer("split_seed", _D.split_seed, "Train/val split seed, as in train.")
flags.DEFINE_float("train_fraction", _D.train_fraction, "Share of the training split, "
                   "as in train: the sample comes from it.")
flags.DEFINE_bool("fast_read", _D.fast_read, "Folders: decode and resize with Pillow on "
                  "threads (faster first pass; pixels within about a grey level of "
                  "fine-tuning's). --nofast_read: TensorFlow's exact pixels.")
flags.DEFINE_integer("sample_seed", _D.sample_seed, "Which images are sampled.")
flags.DEFINE_integer("knn_k", _D.knn_k, "Neighbours of the kNN score.")
flags.DEFINE_list("scores", list(_D.scores), f"Scores in the combined rank: {SCORES}.")
flags.DEFINE_integer("top_k", _D.top_k, "Fine-tuning commands to print.")
flags.DEFINE_integer("finetune_epochs", _D.finetune_epochs, "Epochs assumed by the "
                     "fine-tune time estimate.")
flags.DEFINE_integer("finetune_top", _D.finetune_top, "After ranking, fine-tune the top k "
                     "with the project's engine and print predicted vs actual (0 = no).")
flags.DEFINE_integer("finetune_max_epochs", None, "max_epochs of those runs (default: the "
                     "engine's).")
flags.DEFINE_integer("finetune_batch_size", None, "batch_size of those runs (default: the "
                     "engine's).")


def config_from_flags() -> RecommendConfig:
  return RecommendConfig(
      dataset=FLAGS.dataset, backbones=tuple(FLAGS.backbones), weights=FLAGS.weights,
      workdir=FLAGS.workdir, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
      download=FLAGS.download, max_images=FLAGS.max_images, val_share=FLAGS.val_share,
      image_size=FLAGS.image_size, batch_size=FLAGS.batch_size,
      val_fraction=FLAGS.val_fraction, split_seed=FLAGS.split_seed,
      train_fraction=FLAGS.train_fraction, fast_read=FLAGS.fast_read,
      sample_seed=FLAGS.sample_seed, knn_k=FLAGS.knn_k, scores=tuple(FLAGS.scores),
      top_k=FLAGS.top_k, finetune_epochs=FLAGS.finetune_epochs,
      finetune_top=FLAGS.finetune_top, finetune_max_epochs=FLAGS.finetune_max_epochs,
      finetune_batch_size=FLAGS.finetune_batch_size)


def main(argv):
  del argv  # cli.parse_flags refuses words that are not flags
  cli.quiet_logs()  # before TensorFlow is imported
  from tfbackbones import runner
  from tfbackbones.recommend import outputs, recommender
  progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
  try:
    config = config_from_flags().validate()
    rec = recommender.run(config, progress=progress)
  except runner.USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  json_path, csv_path = outputs.write(rec, config.workdir)
  print(outputs.summary(rec))
  print(f"\nwrote {json_path} and {csv_path} ({rec.extracted} extracted, "
        f"{len(rec.rows) - rec.extracted} from cache, {rec.seconds:.0f} s)")
  if rec.rows and config.finetune_top:
    from tfbackbones.recommend import finetune
    try:
      result = finetune.finetune_top(rec, config, progress=progress)
    except runner.USER_ERRORS as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    print(finetune.summary(result))
  if not rec.rows:
    print("error: no candidate could be ranked (see the skipped lines above): give "
          "candidates whose weights exist here (e.g. @none for random init, or "
          "@/path/file.weights.h5)", file=sys.stderr)
    sys.exit(2)
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
