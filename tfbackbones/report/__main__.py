r"""`python -m tfbackbones.report`: a study's report from its workdir and CSV files.

  python -m tfbackbones.report --workdir=gs://BUCKET/runs/paper --out=runs/paper_report \
      --reference=paper
  python -m tfbackbones.report --import_csv=paper --out=/tmp/paper_only   # no runs needed

`--reference=paper` (or `--import_csv=paper`) is the paper's published Tables 4-8,
bundled as tfbackbones/report/paper_results.csv. Exit code 2 for a bad flag or CSV file.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from tfbackbones import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Study directory (local or gs://) to read runs from.",
                    allow_override=True)
flags.DEFINE_string("out", None, "Output directory of the report (local or gs://).")
flags.DEFINE_multi_string("import_csv", [], "CSV of results (backbone,dataset,top1[,domain,"
                          "train_fraction,seed]; top1 in %), shown beside the runs; "
                          "`paper` = the paper's published numbers. Repeatable.")
flags.DEFINE_string("reference", None, "CSV of published numbers for the delta columns; "
                    "`paper` = the paper's Tables 4-8.")


def main(argv):
  del argv
  if not FLAGS.out or not (FLAGS.workdir or FLAGS.import_csv):
    print("error: give --out=DIR and --workdir=DIR (and/or --import_csv=FILE)",
          file=sys.stderr)
    return 2
  from tfbackbones import report
  cli.quiet_logs()
  try:
    report.build(FLAGS.workdir, FLAGS.out, import_csv=FLAGS.import_csv,
                reference=FLAGS.reference)
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except Exception as e:  # tf.io.gfile's errors (an --out it cannot create, a bucket's
    import tensorflow as tf  # permissions) are not OSErrors; they are about the paths given
    if not isinstance(e, tf.errors.OpError):
      raise
    print(f"error: {type(e).__name__}: {e.message} (check --workdir and --out)",
          file=sys.stderr)
    return 2
  print(f"open {os.path.join(FLAGS.out, 'report.html')}; "
        f"tensorboard --logdir={FLAGS.out} (Text tab)")
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
