r"""Does `recommend` pick right? Its rankings against a finished study's fine-tuned runs.

  python -m experiments.validate_recommend --study=runs/study
  python -m tfbackbones.report --workdir=runs/study --out=runs/study_report

For every dataset of the study (runs with result.json, full training set), the
recommender ranks the study's candidates (backbone + weights, as each run's config says)
on the same train/val split, and each score's ranking is compared with the mean test
top-1 over seeds: Kendall tau, weighted tau, top-1 regret and hit@3, with bootstrap
intervals over seeds; then means per domain and overall. Writes validate.json and
validate.md (tables for experiments/RESULTS.md) to --workdir (default <study>/recommend,
where the report's "Recommender vs fine-tuning" section reads them). See
tfbackbones/recommend/validation.py.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from tfbackbones import cli
from tfbackbones.recommend.validation import ValidateConfig

FLAGS = flags.FLAGS
flags.DEFINE_string("study", None, "Workdir of a finished study (result.json per run).")
flags.DEFINE_string("workdir", "", "Recommender caches and outputs; default <study>/recommend, "
                    "where `python -m tfbackbones.report --workdir=<study>` shows them.")
flags.DEFINE_integer("max_images", 1000, "Images the recommender samples per dataset.")
flags.DEFINE_string("image_size", "0", "0 = the size the study's runs used.")
flags.DEFINE_integer("batch_size", 32, "Forward-pass batch.")
flags.DEFINE_integer("bootstrap", 1000, "Bootstrap resamples over seeds.")
flags.DEFINE_integer("seed", 0, "Bootstrap seed.")


def main(argv):
  del argv  # cli.parse_flags refuses words that are not flags
  cli.quiet_logs()  # before TensorFlow is imported
  from tfbackbones import runner
  from tfbackbones.config import ConfigError
  from tfbackbones.recommend import validation
  progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
  try:
    if not FLAGS.study:
      raise ConfigError("--study is required: the workdir of a finished study.")
    config = ValidateConfig(study_workdir=FLAGS.study, workdir=FLAGS.workdir,
                            max_images=FLAGS.max_images, image_size=FLAGS.image_size,
                            batch_size=FLAGS.batch_size, bootstrap=FLAGS.bootstrap,
                            seed=FLAGS.seed)
    result = validation.validate(config, progress=progress)
  except runner.USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  os.makedirs(config.workdir, exist_ok=True)
  with open(os.path.join(config.workdir, "validate.json"), "w") as f:
    json.dump(result, f, indent=1)
  text = validation.markdown(result)
  with open(os.path.join(config.workdir, "validate.md"), "w") as f:
    f.write(text + "\n")
  print(text)
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
