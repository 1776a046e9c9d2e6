r"""Benchmarks: the project's training loop against Keras `Model.fit`.

  python -m experiments.benchmark --what=train \
      --backbone=mobilenet_v3_small --image_size=96 --batch_size=64

Same model, same optimizer (AdamW 1e-3, wd 0.01), same in-memory data and batch, in one
process; measurements are interleaved (loop, fit, loop, fit, ...) so drift in machine load
hits both, and the median of `--repeats` is reported. Only steady state is timed: the
first call of each (tracing) is a warm-up. This is a tool, not a test: the numbers depend
on the machine; the ratio is what travels. The last line is `ratio=<loop/fit>`.
"""

from __future__ import annotations

import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tfbackbones import cli  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("what", "train", ["train"], "What to measure.")
flags.DEFINE_string("backbone", "mobilenet_v3_small", "Registered backbone name.")
flags.DEFINE_integer("image_size", 96, "Input resolution.")
flags.DEFINE_integer("batch_size", 64, "Global batch.")
flags.DEFINE_integer("num_classes", 10, "Head width.")
flags.DEFINE_integer("steps", 15, "Timed steps per measurement.")
flags.DEFINE_integer("repeats", 3, "Interleaved measurements of each method.")
flags.DEFINE_bool("fused_batchnorm", True, "Engine setting for the loop (fit always runs "
                  "Keras's own BatchNormalization).")
flags.DEFINE_bool("json", False, "Also print the measurements as one JSON line.")


def _data(batch: int, size: int, num_classes: int, preprocess):
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch * 4, size, size, 3), dtype=np.uint8)
  labels = rng.integers(0, num_classes, (batch * 4,), dtype=np.int32)
  ds = tf.data.Dataset.from_tensor_slices((images, labels))
  ds = ds.map(lambda x, y: (preprocess(tf.cast(x, tf.float32)), y)).cache()
  return ds.repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def measure_train(backbone: str, size: int, batch: int, num_classes: int, steps: int,
                  repeats: int, fused_batchnorm: bool = True) -> dict:
  """Returns img/s lists for the project loop and for Model.fit, interleaved."""
  # pylint: disable=import-outside-toplevel
  import keras
  import tensorflow as tf
  from tfbackbones import backbones, model as model_lib
  from tfbackbones.training import fused_bn, steps as steps_lib

  keras.utils.set_random_seed(0)
  spec = backbones.get(backbone)
  model = model_lib.build_classifier(spec.build(size, "none"), num_classes, size)
  ds = _data(batch, size, num_classes,
             lambda x: backbones.preprocess_images(x, spec.preprocessing))
  strategy = tf.distribute.get_strategy()

  loop_opt = keras.optimizers.AdamW(1e-3, weight_decay=0.01)
  loop_opt.build(model.trainable_variables)
  train_fn = steps_lib.make_train_fn(model, loop_opt, strategy, batch,
                                     steps_lib.cross_entropy(num_classes))
  iterator = iter(strategy.experimental_distribute_dataset(ds))

  fit_model = keras.models.clone_model(model)
  fit_model.set_weights(model.get_weights())
  if fused_batchnorm:  # the engine's default; fit_model keeps Keras's own layers
    fused_bn.fuse_batchnorm(model)
  fit_model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])

  class Timer(keras.callbacks.Callback):
    """Times fit from the end of its first batch to the end of its last (steady state)."""

    def on_train_batch_end(self, batch_index, logs=None):
      if batch_index == 0:
        self.start = time.perf_counter()
      self.end = time.perf_counter()

  def run_loop(n):
    t = time.perf_counter()
    loss, _ = train_fn(iterator, tf.constant(n))
    loss.numpy()
    return n * batch / (time.perf_counter() - t)

  def run_fit(n):
    timer = Timer()
    fit_model.fit(ds, steps_per_epoch=n + 1, epochs=1, verbose=0, callbacks=[timer])
    return n * batch / (timer.end - timer.start)

  run_loop(2)  # warm-up: tracing
  run_fit(2)
  loop, fit = [], []
  for _ in range(repeats):
    loop.append(run_loop(steps))
    fit.append(run_fit(steps))
  return {"backbone": backbone, "image_size": size, "batch_size": batch,
          "loop_img_s": loop, "fit_img_s": fit,
          "loop_median": statistics.median(loop), "fit_median": statistics.median(fit),
          "fit_jit_compile": bool(fit_model.jit_compile), "fused_batchnorm": fused_batchnorm,
          "ratio": statistics.median(loop) / statistics.median(fit)}


def main(argv):
  del argv
  cli.quiet_logs()
  r = measure_train(FLAGS.backbone, FLAGS.image_size, FLAGS.batch_size, FLAGS.num_classes,
                    FLAGS.steps, FLAGS.repeats, FLAGS.fused_batchnorm)
  spread = lambda xs: f"{min(xs):.1f}-{max(xs):.1f}"  # noqa: E731
  print(f"train throughput, {r['backbone']} {r['image_size']}px batch {r['batch_size']}, "
        f"{FLAGS.repeats} interleaved repeats of {FLAGS.steps} steps (img/s):")
  print(f"  {'method':<22}{'median':>10}{'range':>20}")
  print(f"  {'tfbackbones loop':<22}{r['loop_median']:>10.1f}{spread(r['loop_img_s']):>20}")
  print(f"  {'keras Model.fit':<22}{r['fit_median']:>10.1f}{spread(r['fit_img_s']):>20}")
  if FLAGS.json:
    print(json.dumps(r))
  print(f"ratio={r['ratio']:.3f}")


if __name__ == "__main__":
  app.run(main)
