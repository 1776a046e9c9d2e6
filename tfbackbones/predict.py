r"""Classify images with a trained or exported model: `python -m tfbackbones.predict`.

  python -m tfbackbones.predict --model=runs/quickstart/mobilenet_v3_small digit.png
  python -m tfbackbones.predict --model=W/export/model_int8.tflite photos/ --top_k=3 \
      --out=preds.csv

`--model` is a finished run's workdir (its model.keras), a `.keras`, `.tflite` or `.onnx`
file, or a SavedModel folder; `--workdir` is the same flag. Folders are searched
recursively for images; unreadable files found in them are skipped and counted on
stderr, while an unreadable file named itself is an error. Images are resized to the
model's input exactly as training resized them (tfbackbones/deploy/images.py). LiteRT and
ONNX models run without importing TensorFlow. Class names come from labels.txt beside the
model or in the workdir. With `--out`, a CSV gets one row per image and rank:
path,rank,class_index,class_name,probability.
"""

from __future__ import annotations

import csv
import sys

from absl import app, flags

from tfbackbones import cli, quiet

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A finished run's workdir, a .keras/.tflite/.onnx file "
                    "or a SavedModel folder.")
flags.DEFINE_alias("workdir", "model")
flags.DEFINE_integer("top_k", 5, "Classes to print per image.")
flags.DEFINE_string("out", None, "Also write the predictions to this CSV file.")
flags.DEFINE_integer("threads", 0, "Threads for LiteRT/onnxruntime (0 = all cores).")


def write_csv(path: str, rows: list) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["path", "rank", "class_index", "class_name", "probability"])
    for image, ranked in rows:
      for rank, (index, name, p) in enumerate(ranked, 1):
        writer.writerow([image, rank, index, name, f"{p:.6f}"])


def main(argv):
  # Quiet, without importing TensorFlow: LiteRT and ONNX artifacts run without it, and a
  # Keras artifact's runtime imports it (quietly, TF_CPP_MIN_LOG_LEVEL is set) when needed.
  cli.quiet_logs(tensorflow=False)
  from tfbackbones.deploy import images as images_lib
  from tfbackbones.deploy import runtimes
  paths = argv[1:]
  try:
    if not FLAGS.model:
      raise runtimes.ArtifactError("--model is required: a workdir, .keras, .tflite, "
                                   ".onnx or SavedModel folder")
    if FLAGS.top_k < 1:
      raise runtimes.ArtifactError(f"--top_k={FLAGS.top_k}: use 1 or more")
    # The cheap checks first: a bad model or image path fails before a runtime starts.
    if runtimes.detect_format(FLAGS.model) in ("keras", "saved_model"):
      quiet.import_tensorflow_quietly()  # its runtime is TensorFlow: load it without noise
    found = images_lib.find_images(paths)
    predictor = runtimes.open_model(FLAGS.model, threads=FLAGS.threads or None)
    batch, files, skipped = images_lib.load_found(found, predictor.height, predictor.width)
  except (runtimes.ArtifactError, images_lib.ImageError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  if skipped:
    print(f"skipped {len(skipped)} unreadable files found in the folders given (e.g. "
          f"{skipped[0][1]}); predicting the other {len(files)}", file=sys.stderr)
  probabilities = predictor.predict(batch)
  k = min(FLAGS.top_k, probabilities.shape[1])
  rows = [(path, runtimes.top_k(p, predictor.class_names, k))
          for path, p in zip(files, probabilities, strict=True)]
  for path, ranked in rows:
    print(f"{path}: " + ", ".join(f"{name} {p:.4f}" for _, name, p in ranked))
  if FLAGS.out:
    write_csv(FLAGS.out, rows)
    print(f"wrote {FLAGS.out} ({len(rows)} images, top {k})")
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags_and_args)
