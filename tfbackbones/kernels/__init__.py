"""CPU kernels for mobile networks, built on first use: fused hard-swish and swish
(`activations.cc`), and the filter gradient of depthwise convolutions (`depthwise.cc`).

Why: on a CPU a mobile network's activations are memory-bound, and TensorFlow spells
hard-swish as 4 element-wise ops forward and 5 backward, swish as 2 + 6: each a pass over
the tensor. Replacing MobileNetV3-Small's 18 hard-swish activations by ReLU (one op each
way) speeds its training by 18% (96 px, batch 64, this machine), so the passes, not the
math, are the cost. The kernels here compute the same functions and gradients in one pass
each (one Eigen expression on TF's intra-op pool) — see `experiments/BENCHMARKS.md`.

The depthwise filter gradient is the other hot spot: oneDNN's is fast for 3x3 filters but
slow from 5x5 up. On MobileNetV3-Small's eight 5x5 layers at 96 px it takes 3-8x as long
as the forward convolution, 21 of a step's 150 ms. `fuse_depthwise` gives those layers a
gradient that uses `depthwise.cc` for the filter and TensorFlow's op for the input.

How: the C++ source ships with the package and is compiled with the system's `g++`
against the installed TensorFlow's headers the first time it is needed (about 10 s), into
`$TFBACKBONES_CACHE` (default `~/.cache/tfbackbones`) under a key of the source, the
TensorFlow version and the compiler flags, so a second run loads it at once. Without a
compiler, or if the build fails, `load()` returns None after one warning and the models
keep TensorFlow's own ops: nothing depends on the kernels but speed. They are CPU-only
and float32-only; `fuse_activations` leaves GPU/TPU runs and other dtypes alone.

`fuse(model)` applies both; the trainer calls it with `--fused_kernels` on CPU.
`python -m tfbackbones.kernels` builds them ahead of time and prints where.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import types

import keras
import tensorflow as tf

from tfbackbones import layer_walk

_SOURCES = tuple(os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
                 for name in ("activations.cc", "depthwise.cc"))
_LOCK = threading.Lock()
_STATE: dict = {}
# Safe on every x86-64 CPU TensorFlow's wheels support (they require AVX); FP16 AVX-512
# from -march=native breaks the bundled Eigen headers with GCC 12, so no -march=native.
_X86_FLAGS = ["-mavx2", "-mfma"]

FUSABLE = {"hard_silu": "hard_swish", "hard_swish": "hard_swish", "silu": "swish",
           "swish": "swish"}


class KernelBuildError(RuntimeError):
  """The kernels could not be compiled; the message has the compiler's output."""


def cache_dir() -> str:
  return os.environ.get("TFBACKBONES_CACHE",
                        os.path.join(os.path.expanduser("~"), ".cache", "tfbackbones"))


def _compile_command(output: str) -> list:
  flags = ["-O3", "-shared", "-fPIC", "-w"]
  if platform.machine() in ("x86_64", "AMD64") and _cpu_has("avx2", "fma"):
    flags += _X86_FLAGS
  return (["g++", *flags, *_SOURCES, "-o", output] + tf.sysconfig.get_compile_flags()
          + tf.sysconfig.get_link_flags())


def _cpu_has(*features: str) -> bool:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      words = set(f.read().split())
  except OSError:
    return False
  return all(feature in words for feature in features)


def library_path() -> str:
  """Where the compiled library for this source, TensorFlow and compiler flags lives."""
  source = b""
  for name in _SOURCES:
    with open(name, "rb") as f:
      source += f.read()
  # The command (without an output path) holds the flags and TF's include/link flags.
  key = hashlib.sha256(source + repr((tf.__version__, _compile_command(""),
                                      platform.machine())).encode()).hexdigest()[:16]
  return os.path.join(cache_dir(), "kernels", key, "tfbackbones_kernels.so")


def build(path: str | None = None) -> str:
  """Compiles the kernels into `path` (default `library_path()`); returns the path.

  Raises:
    KernelBuildError: no g++, or it failed (its output is in the message).
  """
  path = path or library_path()
  if os.path.exists(path):
    return path
  if shutil.which("g++") is None:
    raise KernelBuildError("no g++ on PATH (apt install g++); the fused CPU kernels are "
                           "off, TensorFlow's own ops are used (same results, slower on "
                           "CPU).")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
  os.close(fd)
  try:
    proc = subprocess.run(_compile_command(tmp), capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
      raise KernelBuildError(f"g++ failed building {', '.join(_SOURCES)}:\n"
                             f"{proc.stderr[-3000:]}")
    os.replace(tmp, path)  # atomic: a concurrent build never sees half a library
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def load():
  """The loaded op library, building it if needed; None (one warning) if impossible."""
  with _LOCK:
    if "lib" not in _STATE:
      _STATE["lib"] = None
      try:
        lib = tf.load_op_library(build())
        _register_gradients(lib)
        _STATE["lib"] = lib
      except (KernelBuildError, OSError, tf.errors.OpError,
              subprocess.TimeoutExpired) as e:
        logging.warning("fused CPU kernels unavailable (%s); using TensorFlow's ops",
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
    return _STATE["lib"]


def _register_gradients(lib) -> None:
  @tf.RegisterGradient("TfbHardSwish")
  def _hard_swish_grad(op, dy):
    return lib.tfb_hard_swish_grad(dy, op.inputs[0])

  @tf.RegisterGradient("TfbSwish")
  def _swish_grad(op, dy):
    return lib.tfb_swish_grad(dy, op.inputs[0])


def hard_swish(x):
  """x * relu6(x + 3) / 6 in one kernel (float32, CPU); TF's ops otherwise."""
  lib = load()
  if lib is None or x.dtype != tf.float32:
    return x * tf.nn.relu6(x + 3.0) / 6.0
  return lib.tfb_hard_swish(x)


def swish(x):
  """x * sigmoid(x) in one kernel (float32, CPU); tf.nn.silu otherwise."""
  lib = load()
  if lib is None or x.dtype != tf.float32:
    return tf.nn.silu(x)
  return lib.tfb_swish(x)


_FUNCTIONS = {"hard_swish": hard_swish, "swish": swish}


def fuse_activations(model, on_cpu: bool | None = None) -> int:
  """Points every float32 hard-swish / swish activation of `model` at the fused kernels.

  Layers keep their config (a saved model still says "hard_silu"), their variables and
  their results; only the function their `call` uses changes. Returns how many layers
  were changed: 0 when the kernels are unavailable, on GPU/TPU (the kernels are CPU-only),
  or when the compute dtype is not float32.
  """
  if not _usable(on_cpu):
    return 0
  count = 0
  for layer in layer_walk.walk(model, include_root=True):
    fn = getattr(layer, "activation", None)
    kind = FUSABLE.get(getattr(fn, "__name__", ""))
    if kind is None or getattr(layer, "compute_dtype", "float32") != "float32":
      continue
    layer.activation = _FUNCTIONS[kind]
    count += 1
  return count


def depthwise_conv2d(x, kernel, strides=(1, 1), padding="valid"):
  """`tf.nn.depthwise_conv2d` (NHWC, depth multiplier 1) whose filter gradient is ours.

  The forward pass and the input gradient are TensorFlow's own ops (oneDNN on CPU); only
  the filter gradient runs `TfbDepthwiseConv2dBackpropFilter`. Falls back to TensorFlow
  alone when the kernels are unavailable or the dtype is not float32.
  """
  strides = tuple(int(s) for s in strides)
  padding = padding.upper()
  strides4 = [1, strides[0], strides[1], 1]
  x = tf.convert_to_tensor(x)
  kernel = tf.convert_to_tensor(kernel)
  lib = load()
  if lib is None or x.dtype != tf.float32 or kernel.dtype != tf.float32:
    return tf.nn.depthwise_conv2d(x, kernel, strides4, padding)

  @tf.custom_gradient
  def conv(x, kernel):
    def grad(dy):
      dx = tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
          input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=strides4,
          padding=padding)
      dk = lib.tfb_depthwise_conv2d_backprop_filter(
          x, dy, kernel_size=list(kernel.shape[:2]), strides=list(strides),
          padding=padding)
      return dx, dk
    return tf.nn.depthwise_conv2d(x, kernel, strides4, padding), grad

  return conv(x, kernel)


def _depthwise_fusable(layer) -> bool:
  """Float32 NHWC 2-D depthwise layers, multiplier 1, no dilation, filters over 3x3.

  3x3 stays on oneDNN: its 3x3 filter gradient is specialised and as fast as ours or
  faster in total (see depthwise.cc); from 5x5 up ours is 2-8x faster.
  """
  return (isinstance(layer, keras.layers.DepthwiseConv2D)
          and layer.data_format == "channels_last" and layer.depth_multiplier == 1
          and tuple(layer.dilation_rate) == (1, 1)
          and layer.kernel_size[0] * layer.kernel_size[1] > 9
          and getattr(layer, "compute_dtype", None) == "float32"
          and getattr(layer, "variable_dtype", None) == "float32")


def _depthwise_call(self, inputs):
  if inputs.shape.rank != 4 or inputs.dtype != tf.float32:
    return type(self).call(self, inputs)
  outputs = depthwise_conv2d(inputs, self.kernel, self.strides, self.padding)
  if self.use_bias:
    outputs = outputs + tf.reshape(self.bias, [1, 1, 1, -1])
  if self.activation is not None:
    return self.activation(outputs)
  return outputs


def fuse_depthwise(model, on_cpu: bool | None = None) -> int:
  """Gives `model`'s depthwise convolutions over 3x3 our filter gradient (CPU, float32).

  Like `fuse_activations`: config, variables and results are unchanged (gradients to
  float32 rounding); only the layer instance's `call` is replaced. Returns how many layers
  were changed (0 on GPU/TPU or without the kernels).
  """
  if not _usable(on_cpu):
    return 0
  count = 0
  for layer in layer_walk.walk(model, include_root=True):
    if _depthwise_fusable(layer):
      layer.call = types.MethodType(_depthwise_call, layer)
      count += 1
  return count


def fuse(model, on_cpu: bool | None = None) -> dict:
  """Both substitutions on `model`; returns how many layers each changed.

  `on_cpu`: whether the model will run on CPUs. The caller that knows its strategy's
  devices (the trainer) says so; by default, only when no GPU or TPU is visible.
  """
  return {"activations": fuse_activations(model, on_cpu),
          "depthwise": fuse_depthwise(model, on_cpu)}


def _usable(on_cpu: bool | None) -> bool:
  """The model runs on CPUs (`on_cpu`, or no GPU/TPU visible) and the kernels load."""
  return (cpu_only() if on_cpu is None else on_cpu) and load() is not None


def cpu_only() -> bool:
  """No GPU or TPU is visible (the kernels are CPU-only)."""
  return not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
