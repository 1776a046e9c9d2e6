r"""Export a finished run for deployment and measure what it costs: `python -m tfbackbones.export`.

  python -m tfbackbones.export --workdir=runs/quickstart/mobilenet_v3_small
  python -m tfbackbones.export --workdir=W --formats=litert,litert_int8

Writes `<workdir>/export/` (saved_model/, model_fp32.tflite, model_fp16.tflite,
model_int8.tflite, model.onnx, labels.txt) and `<workdir>/export.json`: per artifact the
test top-1 with its own runtime, the drop against the Keras float model, top-1 agreement,
batch-1 latency (median/p90, 1 thread and all cores) and size; and the Keras model's
own stability under +-1 grey level of noise, against which a low agreement is judged
(the model's sensitivity or a real quantization error: a printed note). Needs the `export` extra
(`pip install -e '.[export]'`) and the run's dataset where training found it. See
docs/export.md.

This is the only module that reads these flags; the library takes an `ExportConfig`.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from tfbackbones import cli
from tfbackbones.deploy import evaluation, exporters, stability

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Workdir of a finished training run.")
flags.DEFINE_list("formats", list(exporters.FORMATS),
                  f"Formats to export: {', '.join(exporters.FORMATS)}.")
flags.DEFINE_integer("calibration_images", 200, "Training images that calibrate INT8.")
flags.DEFINE_string("calibration_from", "pool",
                    "Where INT8 calibration images come from: pool (the run's whole training "
                    "pool, labelled or not) or train (its labelled training split). Never "
                    "val or test.")
flags.DEFINE_integer("latency_runs", 50, "Timed batch-1 calls per artifact and setting.")
flags.DEFINE_integer("latency_warmup", 5, "Untimed calls before timing.")
flags.DEFINE_enum("int8_rounding", "gptq", list(exporters.INT8_ROUNDINGS),
                  "How litert_int8 rounds weights to int8: gptq (with the calibration "
                  "images, docs/export.md) or nearest (the TFLite converter alone).")
flags.DEFINE_integer("stability_draws", stability.DEFAULT_DRAWS,
                     "Noisy copies of the test set (+-1 grey level) on which the Keras float "
                     "model's agreement with itself is measured: the noise floor an export's "
                     "agreement is judged against (docs/export.md). 0 skips it.")
flags.DEFINE_bool("latency", True, "Measure latency (--nolatency: accuracy and size only).")


def main(argv):
  del argv  # cli.parse_flags refuses words that are not flags
  if not FLAGS.workdir:
    print("error: --workdir is required: the workdir of a finished training run",
          file=sys.stderr)
    sys.exit(2)
  config = evaluation.ExportConfig(
      workdir=FLAGS.workdir, formats=FLAGS.formats,
      calibration_images=FLAGS.calibration_images, latency_runs=FLAGS.latency_runs,
      latency_warmup=FLAGS.latency_warmup, latency=FLAGS.latency,
      int8_rounding=FLAGS.int8_rounding, calibration_from=FLAGS.calibration_from,
      stability_draws=FLAGS.stability_draws)
  try:  # the cheap checks first, before TensorFlow starts
    config.validate()
  except (evaluation.WorkdirError, exporters.ExportError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  # Before TensorFlow is imported: reading the workdir's result.json already imports it.
  cli.quiet_logs()
  try:
    evaluation.check_workdir(config.workdir)
  except evaluation.WorkdirError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  from tfbackbones import runner
  from tfbackbones.deploy import runtimes
  try:
    report = evaluation.export_workdir(config)
  except (evaluation.WorkdirError, exporters.ExportError, runtimes.ArtifactError,
          *runner.USER_ERRORS) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  failed = [a["format"] for a in report["artifacts"] if "error" in a]
  written = len(report["artifacts"]) - 1 - len(failed)  # the keras row is not an artifact
  print(f"wrote {os.path.join(FLAGS.workdir, evaluation.EXPORT_JSON)} "
        f"({written} artifact{'s' if written != 1 else ''} under "
        f"{os.path.join(FLAGS.workdir, evaluation.EXPORT_DIR)}"
        + (f"; FAILED: {', '.join(failed)})" if failed else ")"))
  return 1 if failed else 0


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
