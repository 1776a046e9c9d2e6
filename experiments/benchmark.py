r"""Benchmarks: the project's loop against Keras `fit` and PyTorch; input; inference.

  python -m experiments.benchmark --what=train --backbone=mobilenet_v3_small \
      --image_size=96 --batch_size=64
  python -m experiments.benchmark --what=input --image_size=256
  python -m experiments.benchmark --what=inference --backbones=mobilenet_v3_small,resnet50
  python -m experiments.benchmark --what=depthwise --backbone=mobilenet_v3_small --image_size=96
  python -m experiments.benchmark --what=profile --backbone=mobilenet_v3_small --steps=5
  python -m experiments.benchmark --what=recommend --num_images=1000 --image_size=224
  python -m experiments.benchmark --what=all

A tool, not a test: numbers depend on the machine; the ratios travel.

train: steady-state images/s of (a) the project's loop (`tfbackbones.training.steps`, with
  the engine's defaults), (b) Keras `Model.fit` on a clone of the same model, (c) the
  paper's PyTorch step (torchvision model, AdamW, NCHW and channels_last) when torch and a
  matching torchvision model exist. Same batch, resolution and in-memory data; the
  methods are interleaved (a, b, c, a, b, c, ...) so drifting machine load hits all, and
  the median of `--repeats` is reported. Also the share of the machine's measured matmul
  peak FLOP/s that the loop reaches (forward FLOPs x 3 per training image).
input: tf.data images/s (read, decode JPEG, resize, TrivialAugment, normalise, batch) vs a
  torchvision DataLoader with TrivialAugmentWide at the same worker count, on the same
  JPEG files; and that rate over the training consumption of `--consumer` at that size.
  Then the recommender's first pass over a new class folder of `--num_images` JPEGs (list,
  split, read each file once; fast and exact read) vs a DataLoader doing PIL decode +
  resize on the same files (`first_pass_ratio=`; experiments/benchmark_recommend.py).
inference: batch-1 and batch-32 latency, throughput, size and peak memory per backbone
  (each in its own process, so peak memory is its own); with the `export` extra also
  batch-1 latency of the LiteRT float32 and full-integer INT8 exports of the same model
  (tfbackbones/deploy), ending with `int8_speedup=<fp32 ms / int8 ms>` (median over the
  backbones, then `vs_keras=` and each backbone's ratio).
depthwise: per depthwise layer of `--backbone` at `--image_size` / `--batch_size`, the
  filter gradient's time with TensorFlow's kernel and with `tfbackbones.kernels`, and which
  one the engine uses (the evidence behind `kernels.fuse_depthwise`'s rule).
recommend: `python -m tfbackbones.recommend` on a new folder of `--num_images` JPEGs with
  `--backbones` (default: six light candidates), cold and cached, and its feature
  extraction img/s against `keras.Model.predict` (experiments/benchmark_recommend.py).
profile: where a training step of the engine's loop spends its time: TensorFlow's
  profiler over `--steps` steps, thread time per op type (and idle), largest first.

With `--cpu_replicas=N` (default 2 on a machine with >= 2 cores; 0 = off) the engine's
loop is also timed with the CPU split into N replicas (`--cpu_replicas` of
`tfbackbones.train`), in its own process, since the split must happen before TensorFlow
starts and would slow `fit` in this one.

The last line is `ratio=<loop/fit> vs_torch=<loop/best torch>` (train and all) for the
fastest engine setting, naming it, followed by the single-device loop's ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from tfbackbones import cli, cores

FLAGS = flags.FLAGS
flags.DEFINE_enum("what", "train",
                  ["train", "input", "inference", "depthwise", "profile", "recommend",
                   "all"],
                  "What to measure.")
flags.DEFINE_string("backbone", "mobilenet_v3_small", "Registered backbone (train).")
flags.DEFINE_integer("image_size", 96, "Input resolution (train, input).")
flags.DEFINE_integer("batch_size", 64, "Global batch.")
flags.DEFINE_integer("num_classes", 10, "Head width.")
flags.DEFINE_integer("steps", 15, "Timed steps per measurement.")
flags.DEFINE_integer("repeats", 3, "Interleaved measurements of each method.")
flags.DEFINE_bool("fused_kernels", True, "Engine setting for the loop: fused BatchNorm "
                  "and optimizer kernels (fit always runs Keras's own layers and AdamW).")
flags.DEFINE_bool("torch", True, "Include the PyTorch step if torch is installed.")
flags.DEFINE_integer("workers", 2, "Input workers (tf.data parallelism, DataLoader workers).")
flags.DEFINE_integer("num_images", 256, "JPEG files for the input benchmark.")
flags.DEFINE_string("consumer", "mobilenet_v3_large", "Backbone whose training rate the "
                    "input pipeline must outpace.")
flags.DEFINE_list("backbones", [], "Backbones for inference (default: every keras one).")
flags.DEFINE_integer("cpu_replicas", 2 if cores.usable() >= 2 else 0,
                     "Also time the loop with the CPU split into this many replicas "
                     "(0 = no).")
flags.DEFINE_bool("fused_activations", True, "With --fused_kernels: also the one-pass "
                  "hard-swish/swish CPU kernels (tfbackbones/kernels); --nofused_activations "
                  "isolates their effect.")
flags.DEFINE_bool("fused_depthwise", True, "With --fused_kernels: also the CPU filter "
                  "gradient for depthwise convolutions over 3x3 (tfbackbones/kernels); "
                  "--nofused_depthwise isolates its effect.")
flags.DEFINE_bool("loop_child", False, "Internal: time only the engine loop in this "
                  "process (with --cpu_replicas) and print RESULT.")
flags.DEFINE_integer("inference_size", 224, "Resolution for inference.")
flags.DEFINE_bool("json", False, "Also print the measurements as one JSON line.")

# torchvision models matching registered backbones (the paper's PyTorch side).
TORCHVISION = {"mobilenet_v3_small": "mobilenet_v3_small",
               "mobilenet_v3_large": "mobilenet_v3_large", "resnet50": "resnet50",
               "efficientnetv2_s": "efficientnet_v2_s", "convnext_tiny": "convnext_tiny",
               "densenet121": "densenet121", "resnet101": "resnet101",
               # torchvision has no EfficientNetV2-B0; timm's port of the TF original is
               # the PyTorch model people use (the `parity` extra installs timm).
               "efficientnetv2_b0": "timm:tf_efficientnetv2_b0"}


# ---------------------------------------------------------------------------- helpers
def _median(xs):
  return statistics.median(xs) if xs else float("nan")


def _spread(xs):
  return f"{min(xs):.1f}-{max(xs):.1f}" if xs else "-"


def _keras_setup(backbone: str, size: int, num_classes: int):
  import keras

  from tfbackbones import backbones
  from tfbackbones import model as model_lib
  keras.utils.set_random_seed(0)
  spec = backbones.get(backbone)
  model = model_lib.build_classifier(spec.build(size, "none"), num_classes, size)
  return spec, model


def _synthetic(batch: int, size: int, num_classes: int, preprocess):
  import numpy as np
  import tensorflow as tf
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch * 4, size, size, 3), dtype=np.uint8)
  labels = rng.integers(0, num_classes, (batch * 4,), dtype=np.int32)
  ds = tf.data.Dataset.from_tensor_slices((images, labels))
  ds = ds.map(lambda x, y: (preprocess(tf.cast(x, tf.float32)), y)).cache()
  return ds.repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def forward_flops(model, size: int) -> float:
  """Forward FLOPs per image (a multiply-add counts 2), from TF's graph profiler."""
  import tensorflow as tf
  from tensorflow.python.profiler import model_analyzer, option_builder
  fn = tf.function(lambda x: model(x, training=False))
  graph = fn.get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32)).graph
  opts = option_builder.ProfileOptionBuilder(
      option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
  return float(model_analyzer.profile(graph, options=opts).total_float_ops)


def matmul_peak_flops(n: int = 2048, repeats: int = 5) -> float:
  """The machine's float32 FLOP/s on a large matmul: the practical peak."""
  import tensorflow as tf
  a = tf.random.normal((n, n))
  b = tf.random.normal((n, n))
  mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
  mm().numpy()
  best = 0.0
  for _ in range(repeats):
    t = time.perf_counter()
    mm().numpy()
    best = max(best, 2 * n**3 / (time.perf_counter() - t))
  return best


# ---------------------------------------------------------------------------- train
_TORCH_CHILD = r"""
import json, os, sys, time
import torch, torchvision
arch, size, batch, classes, channels_last, steps, repeats = sys.argv[1:8]
if arch.startswith("timm:"):
  import timm
  build = lambda num_classes: timm.create_model(arch[5:], num_classes=num_classes)
else:
  build = lambda num_classes: getattr(torchvision.models, arch)(num_classes=num_classes)
size, batch, classes, steps, repeats = map(int, (size, batch, classes, steps, repeats))
torch.manual_seed(0)
torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1)  # the cores we may use, as ours
fmt = torch.channels_last if channels_last == "1" else torch.contiguous_format
model = build(classes).to(memory_format=fmt)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.randn(batch, 3, size, size).to(memory_format=fmt)
y = torch.randint(0, classes, (batch,))
def run(n):
  t = time.perf_counter()
  for _ in range(n):
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
  loss.item()
  return n * batch / (time.perf_counter() - t)
run(2)
print("RESULT " + json.dumps([run(steps) for _ in range(repeats)]))
"""


def _torch_runner(backbone: str, size: int, batch: int, num_classes: int,
                  channels_last: bool):
  """A closure timing the paper's PyTorch step in its own process, or None.

  Its own process, because TensorFlow's and PyTorch's thread pools in one process slow
  each other down (and importing torchvision after TensorFlow crashes in triton).
  """
  if backbone not in TORCHVISION:
    return None
  probe = subprocess.run(
      [sys.executable, "-c", "import torch, torchvision" +
       (", timm" if TORCHVISION[backbone].startswith("timm:") else "")],
      capture_output=True)
  if probe.returncode != 0:
    return None

  def run(n):
    proc = subprocess.run(
        [sys.executable, "-c", _TORCH_CHILD, TORCHVISION[backbone], str(size), str(batch),
         str(num_classes), "1" if channels_last else "0", str(n), "1"],
        capture_output=True, text=True, timeout=3600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
      raise RuntimeError(f"torch benchmark failed: {proc.stderr[-2000:]}")
    return json.loads(lines[-1][7:])[0]

  return run


CPU_KERNELS = ("activations", "depthwise")


def _engine_train_fn(model, batch: int, num_classes: int, fused_kernels: bool, strategy,
                     cpu_kernels: tuple = CPU_KERNELS):
  """The engine's step on `model` (built under `strategy`): fused kernels, AdamW.

  `cpu_kernels` names the `tfbackbones.kernels` substitutions to apply (CPU only), for
  A/B runs; the engine applies all of them.
  """
  from tfbackbones import kernels
  from tfbackbones.training import fused_bn, optimizers
  from tfbackbones.training import steps as steps_lib
  with strategy.scope():
    if fused_kernels:
      fused_bn.fuse_batchnorm(model)
      if "activations" in cpu_kernels:
        kernels.fuse_activations(model)  # CPU: one-pass hard-swish / swish
      if "depthwise" in cpu_kernels:
        kernels.fuse_depthwise(model)  # CPU: filter gradient of 5x5+ depthwise convs
    opt = optimizers.adamw(fused_kernels, learning_rate=1e-3, weight_decay=0.01)
    opt.build(model.trainable_variables)
  return steps_lib.make_train_fn(model, opt, strategy, batch,
                                 steps_lib.cross_entropy(num_classes))


def _engine_setup(backbone: str, size: int, batch: int, num_classes: int, strategy,
                  fused_kernels: bool, cpu_kernels: tuple):
  """The engine's step on a fresh model under `strategy`, and an iterator of its data."""
  from tfbackbones import backbones
  with strategy.scope():
    spec, model = _keras_setup(backbone, size, num_classes)
  train_fn = _engine_train_fn(model, batch, num_classes, fused_kernels, strategy,
                              cpu_kernels)
  ds = _synthetic(batch, size, num_classes,
                  lambda x: backbones.preprocess_images(x, spec.preprocessing))
  return train_fn, iter(strategy.experimental_distribute_dataset(ds))


def loop_child(backbone: str, size: int, batch: int, num_classes: int, steps: int,
               replicas: int, fused_kernels: bool, cpu_kernels: tuple = CPU_KERNELS) -> list:
  """Times the engine loop with the CPU split into `replicas` (run in its own process)."""
  from tfbackbones.training import distribute
  distribute.configure_cpu_replicas(replicas)
  import tensorflow as tf
  strategy = distribute.make_strategy("auto", None, replicas)
  train_fn, iterator = _engine_setup(backbone, size, batch, num_classes, strategy,
                                     fused_kernels, cpu_kernels)
  # Warm-up: tracing, then enough steps for the allocator and oneDNN's primitive cache
  # to settle (the parent's in-process methods get repeated runs for the same).
  train_fn(iterator, tf.constant(2))[0].numpy()
  train_fn(iterator, tf.constant(max(2, steps // 2)))[0].numpy()
  t = time.perf_counter()
  train_fn(iterator, tf.constant(steps))[0].numpy()
  return [steps * batch / (time.perf_counter() - t)]


def _replicas_runner(backbone: str, size: int, batch: int, num_classes: int,
                     replicas: int, fused_kernels: bool, cpu_kernels: tuple):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def run(n):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "--loop_child",
         f"--cpu_replicas={replicas}", f"--backbone={backbone}", f"--image_size={size}",
         f"--batch_size={batch}", f"--num_classes={num_classes}", f"--steps={n}",
         f"--{'' if fused_kernels else 'no'}fused_kernels",
         *[f"--{'' if kind in cpu_kernels else 'no'}fused_{kind}" for kind in CPU_KERNELS]],
        capture_output=True, text=True, timeout=3600, cwd=root)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
      raise RuntimeError(f"replica loop benchmark failed: {proc.stderr[-2000:]}")
    return json.loads(lines[-1][7:])[0]

  return run


def measure_train(backbone: str, size: int, batch: int, num_classes: int, steps: int,
                  repeats: int, fused_kernels: bool = True, with_torch: bool = True,
                  flops: bool = True, cpu_replicas: int = 0,
                  cpu_kernels: tuple = CPU_KERNELS) -> dict:
  """Returns img/s lists per method, interleaved, plus FLOP utilisation."""
  import keras
  import tensorflow as tf

  from tfbackbones import backbones

  spec, model = _keras_setup(backbone, size, num_classes)
  ds = _synthetic(batch, size, num_classes,
                  lambda x: backbones.preprocess_images(x, spec.preprocessing))
  strategy = tf.distribute.get_strategy()
  fit_model = keras.models.clone_model(model)
  fit_model.set_weights(model.get_weights())
  fit_model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
  # The engine's defaults (fused kernels); fit_model keeps Keras's own layers.
  train_fn = _engine_train_fn(model, batch, num_classes, fused_kernels, strategy,
                              cpu_kernels)
  iterator = iter(strategy.experimental_distribute_dataset(ds))

  class Timer(keras.callbacks.Callback):
    """Times fit from the end of its first batch to the end of its last (steady state)."""

    def on_train_batch_end(self, batch_index, logs=None):
      if batch_index == 0:
        self.start = time.perf_counter()
      self.end = time.perf_counter()

  def run_loop(n):
    t = time.perf_counter()
    loss = train_fn(iterator, tf.constant(n))[0]
    loss.numpy()
    return n * batch / (time.perf_counter() - t)

  def run_fit(n):
    timer = Timer()
    fit_model.fit(ds, steps_per_epoch=n + 1, epochs=1, verbose=0, callbacks=[timer])
    return n * batch / (timer.end - timer.start)

  methods = {"tfbackbones loop": run_loop, "keras Model.fit": run_fit}
  replicas_name = f"loop, {cpu_replicas} CPU replicas"
  if cpu_replicas > 1 and not tf.config.list_logical_devices("GPU"):
    methods[replicas_name] = _replicas_runner(backbone, size, batch, num_classes,
                                              cpu_replicas, fused_kernels,
                                              cpu_kernels)
  if with_torch:
    for channels_last in (False, True):
      runner = _torch_runner(backbone, size, batch, num_classes, channels_last)
      if runner is not None:
        methods[f"torch {'channels_last' if channels_last else 'NCHW'}"] = runner
  for name, run in methods.items():
    if name in ("tfbackbones loop", "keras Model.fit"):  # children warm up themselves
      run(2)  # warm-up: tracing, allocator
  results = {name: [] for name in methods}
  for _ in range(repeats):
    for name, run in methods.items():
      results[name].append(run(steps))
  out = {"backbone": backbone, "image_size": size, "batch_size": batch,
         "fused_kernels": fused_kernels, "fit_jit_compile": bool(fit_model.jit_compile),
         "img_s": results, "median": {k: _median(v) for k, v in results.items()}}
  med = out["median"]
  torch_best = max([v for k, v in med.items() if k.startswith("torch")], default=None)
  out["default_ratio"] = med["tfbackbones loop"] / med["keras Model.fit"]
  out["default_vs_torch"] = med["tfbackbones loop"] / torch_best if torch_best else None
  # The engine's fastest setting on this machine, named in the output.
  out["best_loop"] = max(("tfbackbones loop", replicas_name),
                         key=lambda k: med.get(k, 0.0))
  out["best_loop_flag"] = (f"--cpu_replicas={cpu_replicas}"
                           if out["best_loop"] == replicas_name else "default")
  best = med[out["best_loop"]]
  out["ratio"] = best / med["keras Model.fit"]
  out["vs_torch"] = best / torch_best if torch_best else None
  if flops:
    out["forward_flops"] = forward_flops(model, size)
    out["peak_flops"] = matmul_peak_flops()
    out["flop_utilisation"] = 3 * out["forward_flops"] * best / out["peak_flops"]
  return out


def print_train(r: dict) -> None:
  print(f"train throughput, {r['backbone']} {r['image_size']}px batch {r['batch_size']} "
        f"(img/s, median of interleaved repeats):")
  print(f"  {'method':<24}{'median':>10}{'range':>20}")
  for name, xs in r["img_s"].items():
    print(f"  {name:<24}{_median(xs):>10.1f}{_spread(xs):>20}")
  if "flop_utilisation" in r:
    print(f"  forward {r['forward_flops'] / 1e9:.3f} GFLOP/img; matmul peak "
          f"{r['peak_flops'] / 1e9:.1f} GFLOP/s; the loop ({r['best_loop']}) reaches "
          f"{r['flop_utilisation']:.1%} of it (3x forward FLOPs per training image)")


# ---------------------------------------------------------------------------- input
def _write_jpegs(folder: str, count: int) -> list:
  """Photo-like JPEGs (smooth gradients + texture), 500x375 like typical datasets."""
  import numpy as np
  from PIL import Image
  rng = np.random.default_rng(0)
  paths = []
  yy, xx = np.mgrid[0:375, 0:500]
  for i in range(count):
    base = np.stack([(xx * rng.uniform(0.2, 0.6) + yy * rng.uniform(0.1, 0.5)) % 256,
                     (yy * rng.uniform(0.2, 0.6)) % 256,
                     (xx * rng.uniform(0.1, 0.4) + 60) % 256], -1)
    noise = rng.normal(0, 12, base.shape)
    image = np.clip(base + noise, 0, 255).astype(np.uint8)
    path = os.path.join(folder, f"img_{i:04d}.jpg")
    Image.fromarray(image).save(path, quality=90)
    paths.append(path)
  return paths


_TORCH_INPUT_CHILD = r"""
import glob, json, os, sys, time
import torch
from torchvision import transforms
from PIL import Image
folder, size, batch, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
paths = sorted(glob.glob(os.path.join(folder, "*.jpg")))
transform = transforms.Compose([
    transforms.Resize((size, size)), transforms.TrivialAugmentWide(), transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
class Files(torch.utils.data.Dataset):
  def __len__(self):
    return len(paths)
  def __getitem__(self, i):
    return transform(Image.open(paths[i]).convert("RGB"))
def run():
  loader = torch.utils.data.DataLoader(Files(), batch_size=batch, num_workers=workers)
  t = time.perf_counter()
  n = sum(int(x.shape[0]) for x in loader)
  return n / (time.perf_counter() - t)
run()
print("RESULT " + json.dumps(run()))
"""


def measure_input(size: int, batch: int, workers: int, num_images: int,
                  consumer: str) -> dict:
  """tf.data vs torchvision DataLoader on the same JPEGs; and vs a training consumer."""
  import tensorflow as tf

  from tfbackbones.backbones import preprocess_images
  from tfbackbones.data import augment
  folder = tempfile.mkdtemp(prefix="tfbackbones_jpegs_")
  paths = _write_jpegs(folder, num_images)

  def tf_pipeline():
    ds = tf.data.Dataset.from_tensor_slices(paths).enumerate()

    def load(i, path):
      image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
      image = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(image, (size, size))), 0,
                                       255), tf.uint8)
      image = augment.trivial_augment(image, tf.stack([tf.constant(1, tf.int32),
                                                       tf.cast(i, tf.int32)]))
      return preprocess_images(tf.cast(image, tf.float32), "torch")

    options = tf.data.Options()
    options.threading.private_threadpool_size = workers
    ds = ds.map(load, num_parallel_calls=workers).batch(batch).prefetch(2)
    return ds.with_options(options)

  def run_tf():
    t = time.perf_counter()
    n = sum(int(x.shape[0]) for x in tf_pipeline())
    return n / (time.perf_counter() - t)

  runs = {"tf.data": run_tf}
  probe = subprocess.run([sys.executable, "-c", "import torch, torchvision"],
                         capture_output=True)
  if probe.returncode == 0:
    def run_torch():  # its own process: see _torch_runner
      proc = subprocess.run([sys.executable, "-c", _TORCH_INPUT_CHILD, folder, str(size),
                             str(batch), str(workers)],
                            capture_output=True, text=True, timeout=3600)
      lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
      if not lines:
        raise RuntimeError(f"torch input benchmark failed: {proc.stderr[-2000:]}")
      return json.loads(lines[-1][7:])

    runs["torch DataLoader"] = run_torch
  run_tf()  # warm-up (the torch child warms up itself)
  results = {k: [] for k in runs}
  for _ in range(2):
    for k, run in runs.items():
      results[k].append(run())
  out = {"image_size": size, "workers": workers, "img_s": results,
         "median": {k: _median(v) for k, v in results.items()}}
  train = measure_train(consumer, size, min(batch, 32), 10, steps=3, repeats=1,
                        with_torch=False, flops=False)
  out["consumer"] = consumer
  out["consumer_img_s"] = train["median"]["tfbackbones loop"]
  out["input_over_consumer"] = out["median"]["tf.data"] / out["consumer_img_s"]
  return out


def print_input(r: dict) -> None:
  print(f"input pipeline at {r['image_size']}px, {r['workers']} workers (img/s): "
        "read + decode JPEG + resize + TrivialAugment + normalise")
  for name, xs in r["img_s"].items():
    print(f"  {name:<24}{_median(xs):>10.1f}{_spread(xs):>20}")
  print(f"  {r['consumer']} trains at {r['consumer_img_s']:.1f} img/s at this size: the "
        f"pipeline delivers {r['input_over_consumer']:.1f}x that")


# ---------------------------------------------------------------------------- inference
_CHILD = r"""
import json, os, resource, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
from tfbackbones import backbones, model as model_lib
name, size = sys.argv[1], int(sys.argv[2])
spec = backbones.get(name)
model = model_lib.build_classifier(spec.build(size, "none"), 1000, size)
from experiments.benchmark import settle_batchnorm
settle_batchnorm(model, spec.preprocessing, size)
fn = tf.function(lambda x: model(x, training=False))
out = {"backbone": name, "size": size,
       "params_m": model.count_params() / 1e6,
       "size_mb": sum(w.numpy().nbytes for w in model.weights) / 1e6}
for batch in (1, 32):
  x = tf.random.uniform((batch, size, size, 3))
  fn(x).numpy()
  times = []
  for _ in range(5 if batch == 1 else 2):
    t = time.perf_counter(); fn(x).numpy(); times.append(time.perf_counter() - t)
  out[f"latency_b{batch}_ms"] = 1000 * float(np.median(times))
out["throughput_img_s"] = 32 / (out["latency_b32_ms"] / 1000)
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if sys.argv[3] == "litert":
  from experiments.benchmark import litert_latencies
  out.update(litert_latencies(spec, model, size))
print("RESULT " + json.dumps(out))
"""


def settle_batchnorm(model, preprocessing_kind: str, size: int, seed: int = 0) -> None:
  """Gives a random-init model's BatchNorm layers the statistics of one batch of pixels.

  Why: at random init the moving statistics are mean 0 and variance 1 whatever the
  layer's real ones, so activations drift layer by layer (in MobileNetV3-Small at 224 px
  the deep ones fell below 1e-4). INT8 calibration then sees ranges no trained network
  has, and XNNPACK even left 16 of MobileNetV3-Small's int8 ADDs (input scale < 1e-4,
  output 0.012) to TFLite's kernels, which no trained model would do. A trained
  network's BatchNorm normalises its activations; one training-mode pass with momentum 0
  gives a random one that property. Float latency is unaffected.
  """
  import numpy as np

  from tfbackbones import artifacts
  from tfbackbones.training import precise_bn
  layers = precise_bn.batchnorm_layers(model)
  saved = [layer.momentum for layer in layers]
  pixels = np.random.default_rng(seed).integers(0, 256, (8, size, size, 3)).astype("float32")
  try:
    for layer in layers:
      layer.momentum = 0.0
    model(artifacts.Preprocess(preprocessing_kind)(pixels), training=True)
  finally:
    for layer, momentum in zip(layers, saved, strict=True):
      layer.momentum = momentum


def litert_latencies(spec, model, size: int) -> dict:
  """LiteRT float32 vs full-integer INT8 at batch 1, timed in turns (in the child).

  Through the project's own export path (tfbackbones/deploy), with the preprocessing
  inside. Random init (BatchNorm settled, see `settle_batchnorm`) and random calibration
  pixels: latency does not depend on the weights' values. Both files are loaded at once
  and timed in alternating turns (`latency.interleaved`), on all cores and on 1 thread;
  the speedup is the median of the per-round fp32/INT8 ratios.
  """
  import numpy as np

  from tfbackbones import artifacts
  from tfbackbones.deploy import exporters, latency, runtimes
  full = artifacts.with_preprocessing(model, spec.preprocessing)
  calibration = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), np.uint8)
  out = {}
  with tempfile.TemporaryDirectory() as folder:
    options = exporters.ExportOptions(calibration=calibration)
    paths = {fmt: exporters.export(fmt, full, folder, options)[0]
             for fmt in ("litert", "litert_int8")}
    out["litert_int8_mb"] = exporters.size_mb(paths["litert_int8"])
    report = exporters.delegation(paths["litert_int8"]) or {}
    out["int8_not_delegated"] = report.get("not_delegated")
    for suffix, threads in (("b1", cores.usable()), ("1t", 1)):
      timing = latency.interleaved(
          {fmt: runtimes.open_model(path, threads=threads) for fmt, path in paths.items()})
      for fmt in paths:
        out[f"{fmt}_{suffix}_ms"] = timing["median_ms"][fmt]
      out[f"int8_speedup_{suffix}"] = _median(
          latency.round_ratios(timing, "litert", "litert_int8"))
  return out


def measure_inference(names: list, size: int, litert: bool = False) -> list:
  rows = []
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  for name in names:
    proc = subprocess.run([sys.executable, "-c", _CHILD, name, str(size),
                           "litert" if litert else "-"], cwd=root,
                          capture_output=True, text=True, timeout=1800)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
      rows.append({"backbone": name, "error": proc.stderr.strip().splitlines()[-1:]})
      continue
    rows.append(json.loads(lines[-1][7:]))
    print(f"  measured {name}", file=sys.stderr)
  return rows


def print_inference(rows: list, size: int) -> None:
  print(f"inference at {size}px (float32, CPU):")
  print(f"  {'backbone':<22}{'params M':>9}{'MB':>8}{'b1 ms':>9}{'b32 ms':>10}"
        f"{'img/s':>8}{'peak MB':>9}")
  for r in rows:
    if "error" in r:
      print(f"  {r['backbone']:<22} failed: {r['error']}")
      continue
    print(f"  {r['backbone']:<22}{r['params_m']:>9.2f}{r['size_mb']:>8.1f}"
          f"{r['latency_b1_ms']:>9.1f}{r['latency_b32_ms']:>10.1f}"
          f"{r['throughput_img_s']:>8.1f}{r['peak_rss_mb']:>9.0f}")
  litert = [r for r in rows if "int8_speedup_b1" in r]
  if not litert:
    return
  print("batch-1 latency, ms (median; LiteRT fp32 and INT8 timed in turns): Keras vs LiteRT")
  print(f"  {'backbone':<22}{'keras':>9}{'fp32':>9}{'int8':>9}{'speedup':>9}"
        f"{'fp32 1t':>9}{'int8 1t':>9}{'speedup':>9}{'int8 MB':>9}  not in XNNPACK (int8)")
  for r in litert:
    outside = ", ".join(f"{op} x{n}" for op, n in (r.get("int8_not_delegated") or {}).items())
    print(f"  {r['backbone']:<22}{r['latency_b1_ms']:>9.2f}{r['litert_b1_ms']:>9.2f}"
          f"{r['litert_int8_b1_ms']:>9.2f}{r['int8_speedup_b1']:>8.2f}x"
          f"{r['litert_1t_ms']:>9.2f}{r['litert_int8_1t_ms']:>9.2f}{r['int8_speedup_1t']:>8.2f}x"
          f"{r['litert_int8_mb']:>9.1f}  {outside or '-'}")
  print(f"  (speedup: median of per-round fp32/INT8 ratios; b1 on all {cores.usable()} cores, "
        "1t on one thread)")


def int8_speedup_line(rows: list) -> str | None:
  """`int8_speedup=<LiteRT fp32 / INT8, batch 1, all cores>`: the median over backbones.

  Each backbone's ratio is itself the median of per-round ratios of interleaved timing.
  """
  rows = [r for r in rows if "int8_speedup_b1" in r]
  if not rows:
    return None
  keras = [r["latency_b1_ms"] / r["litert_int8_b1_ms"] for r in rows]
  return (f"int8_speedup={_median([r['int8_speedup_b1'] for r in rows]):.2f} "
          f"one_thread={_median([r['int8_speedup_1t'] for r in rows]):.2f} "
          f"vs_keras={_median(keras):.2f} "
          + " ".join(f"{r['backbone']}={r['int8_speedup_b1']:.2f}" for r in rows))


# ---------------------------------------------------------------------------- depthwise
def measure_depthwise(backbone: str, size: int, batch: int, repeats: int) -> list:
  """Per depthwise layer: ms of the forward convolution and of the filter gradient,
  TensorFlow's kernel vs ours (the forward has the same FLOPs: the yardstick)."""
  import keras
  import numpy as np
  import tensorflow as tf

  from tfbackbones import kernels, layer_walk
  _, model = _keras_setup(backbone, size, 10)
  lib = kernels.load()
  if lib is None:
    raise SystemExit("the kernels could not be built (see the warning above)")
  rng = np.random.default_rng(0)

  def best_ms(fn):
    fn().numpy()
    times = []
    for _ in range(max(3, repeats)):
      t = time.perf_counter()
      for _ in range(5):
        out = fn()
      out.numpy()
      times.append((time.perf_counter() - t) / 5 * 1e3)
    return min(times)

  rows = []
  for layer in layer_walk.walk(model):  # in model order
    if not isinstance(layer, keras.layers.DepthwiseConv2D) or layer.depth_multiplier != 1:
      continue
    in_shape = (batch,) + tuple(layer.input.shape[1:])
    k, s, pad = tuple(layer.kernel_size), tuple(layer.strides), layer.padding.upper()
    x = tf.constant(rng.normal(size=in_shape).astype(np.float32))
    y = tf.nn.depthwise_conv2d(x, tf.ones(k + (in_shape[-1], 1)), [1, *s, 1], pad)
    dy = tf.constant(rng.normal(size=y.shape).astype(np.float32))
    # Tensors captured by closure, as constants inside a graph, since passing them as
    # arguments adds ~0.3 ms of call overhead to both sides.
    def forward_fn(x=x, k=k, s=s, pad=pad):
      kernel = tf.constant(rng.normal(size=k + (x.shape[-1], 1)).astype(np.float32))
      return tf.function(lambda: tf.nn.depthwise_conv2d(x, kernel, [1, *s, 1], pad))

    def ref_fn(x=x, dy=dy, k=k, s=s, pad=pad):
      return tf.function(lambda: tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
          input=x, filter_sizes=[*k, x.shape[-1], 1], out_backprop=dy,
          strides=[1, *s, 1], padding=pad))

    def ours_fn(x=x, dy=dy, k=k, s=s, pad=pad):
      return tf.function(lambda: lib.tfb_depthwise_conv2d_backprop_filter(
          x, dy, kernel_size=list(k), strides=list(s), padding=pad))

    ref, ours = ref_fn(), ours_fn()
    rows.append({"layer": layer.name, "input": list(in_shape[1:]), "kernel": list(k),
                 "strides": list(s), "forward_ms": best_ms(forward_fn()),
                 "tf_ms": best_ms(ref), "ours_ms": best_ms(ours),
                 "engine_uses": "ours" if kernels._depthwise_fusable(layer) else "tf"})
  return rows


def print_depthwise(rows: list, backbone: str, size: int, batch: int) -> None:
  print(f"depthwise filter gradient, {backbone} {size}px batch {batch} (ms per call, best "
        f"of repeats):")
  print(f"  {'layer':<28}{'input':>16}{'kernel':>8}{'stride':>8}{'forward':>9}{'tf':>9}"
        f"{'ours':>9}{'uses':>6}")
  for r in rows:
    print(f"  {r['layer']:<28}{'x'.join(map(str, r['input'])):>16}"
          f"{'x'.join(map(str, r['kernel'])):>8}{r['strides'][0]:>8}"
          f"{r['forward_ms']:>9.2f}{r['tf_ms']:>9.2f}{r['ours_ms']:>9.2f}"
          f"{r['engine_uses']:>6}")
  forward = sum(r["forward_ms"] for r in rows)
  print(f"  forward convolutions (oneDNN, same FLOPs as the filter gradient): {forward:.1f} ms")
  tf_total = sum(r["tf_ms"] for r in rows)
  engine = sum(r["ours_ms"] if r["engine_uses"] == "ours" else r["tf_ms"] for r in rows)
  print(f"  per step: TensorFlow {tf_total:.1f} ms, the engine's choice {engine:.1f} ms")


# ---------------------------------------------------------------------------- profile
def measure_profile(backbone: str, size: int, batch: int, num_classes: int, steps: int,
                    fused_kernels: bool, cpu_kernels: tuple) -> dict:
  """Thread time per op type over `steps` engine steps (TF profiler, framework_op_stats)."""
  import collections
  import glob

  import tensorflow as tf
  try:  # TensorBoard's profile plugin reads the same data; this is its converter.
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin
  except ImportError as e:
    raise SystemExit(f"--what=profile needs TensorFlow's profiler plugin ({e})") from e
  train_fn, iterator = _engine_setup(backbone, size, batch, num_classes,
                                     tf.distribute.get_strategy(), fused_kernels,
                                     cpu_kernels)
  train_fn(iterator, tf.constant(2))[0].numpy()
  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    train_fn(iterator, tf.constant(steps))[0].numpy()
    tf.profiler.experimental.stop()
    planes = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    data, ok = plugin.xspace_to_tools_data(planes[-1:], "framework_op_stats", {})
  if not ok:
    raise SystemExit("the profiler produced no op statistics")
  table = json.loads(data)
  table = table[0] if isinstance(table, list) else table
  columns = [c["id"] for c in table["cols"]]
  kind, count = columns.index("type"), columns.index("occurrences")
  self_time = columns.index("total_self_time")
  micros, calls = collections.Counter(), collections.Counter()
  for row in table["rows"]:
    cells = [c.get("v") if c else None for c in row["c"]]
    micros[cells[kind]] += cells[self_time]
    calls[cells[kind]] += cells[count]
  return {"backbone": backbone, "image_size": size, "batch_size": batch, "steps": steps,
          "ops": [{"type": k, "ms_per_step": v / 1e3 / steps,
                   "calls_per_step": calls[k] / steps} for k, v in micros.most_common()],
          "total_ms_per_step": sum(micros.values()) / 1e3 / steps}


def print_profile(r: dict, top: int = 20) -> None:
  total = r["total_ms_per_step"]
  print(f"thread time per training step, {r['backbone']} {r['image_size']}px batch "
        f"{r['batch_size']} ({r['steps']} steps profiled; all threads, so idle counts "
        f"too):")
  print(f"  {'op type':<48}{'ms/step':>9}{'share':>8}{'calls':>7}")
  for op in r["ops"][:top]:
    print(f"  {op['type']:<48}{op['ms_per_step']:>9.1f}{op['ms_per_step'] / total:>8.1%}"
          f"{op['calls_per_step']:>7.0f}")
  print(f"  total {total:.1f} ms per step (the profiler slows steps down; compare shares)")


# ---------------------------------------------------------------------------- main
def _litert_available() -> bool:
  """LiteRT columns need the export extra (ai-edge-litert); without it, Keras only."""
  import importlib.util
  return importlib.util.find_spec("ai_edge_litert") is not None


def _cpu_kernels() -> tuple:
  return tuple(kind for kind in CPU_KERNELS if getattr(FLAGS, f"fused_{kind}"))


def main(argv):
  del argv
  cli.quiet_logs()
  if FLAGS.loop_child:
    print("RESULT " + json.dumps(loop_child(
        FLAGS.backbone, FLAGS.image_size, FLAGS.batch_size, FLAGS.num_classes, FLAGS.steps,
        FLAGS.cpu_replicas, FLAGS.fused_kernels, _cpu_kernels())))
    return
  report = {}
  if FLAGS.what == "depthwise":
    report["depthwise"] = measure_depthwise(FLAGS.backbone, FLAGS.image_size,
                                            FLAGS.batch_size, FLAGS.repeats)
    print_depthwise(report["depthwise"], FLAGS.backbone, FLAGS.image_size,
                    FLAGS.batch_size)
  if FLAGS.what == "profile":
    report["profile"] = measure_profile(FLAGS.backbone, FLAGS.image_size, FLAGS.batch_size,
                                        FLAGS.num_classes, FLAGS.steps, FLAGS.fused_kernels,
                                        _cpu_kernels())
    print_profile(report["profile"])
  if FLAGS.what == "recommend":
    from experiments import benchmark_recommend
    report["recommend"] = benchmark_recommend.measure_recommend(
        FLAGS.backbones, FLAGS.num_images, FLAGS.image_size, FLAGS.batch_size,
        FLAGS.workers)
    benchmark_recommend.print_recommend(report["recommend"])
  if FLAGS.what in ("input", "all"):
    report["input"] = measure_input(256 if FLAGS.what == "all" else FLAGS.image_size,
                                    FLAGS.batch_size, FLAGS.workers, FLAGS.num_images,
                                    FLAGS.consumer)
    print_input(report["input"])
    from experiments import benchmark_recommend
    report["first_pass"] = benchmark_recommend.first_pass_on_new_folder(
        FLAGS.num_images, report["input"]["image_size"], FLAGS.workers)
    benchmark_recommend.print_first_pass(report["first_pass"])
  if FLAGS.what in ("inference", "all"):
    from tfbackbones import backbones
    names = FLAGS.backbones or [s.name for s in backbones.registry.specs()
                                if s.source == "keras.applications"]
    report["inference"] = measure_inference(names, FLAGS.inference_size, _litert_available())
    print_inference(report["inference"], FLAGS.inference_size)
  if FLAGS.what in ("train", "all"):
    report["train"] = measure_train(FLAGS.backbone, FLAGS.image_size, FLAGS.batch_size,
                                    FLAGS.num_classes, FLAGS.steps, FLAGS.repeats,
                                    FLAGS.fused_kernels, FLAGS.torch,
                                    cpu_replicas=FLAGS.cpu_replicas,
                                    cpu_kernels=_cpu_kernels())
    print_train(report["train"])
  if FLAGS.json:
    print(json.dumps(report))
  if FLAGS.what == "inference" and int8_speedup_line(report["inference"]):
    print(int8_speedup_line(report["inference"]))
  if "train" in report:
    r = report["train"]
    fmt = lambda v: f"{v:.3f}" if v else "n/a"  # noqa: E731
    print(f"ratio={fmt(r['ratio'])} vs_torch={fmt(r['vs_torch'])} "
          f"loop={r['best_loop_flag']} default_ratio={fmt(r['default_ratio'])} "
          f"default_vs_torch={fmt(r['default_vs_torch'])}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
