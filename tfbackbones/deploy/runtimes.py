"""Run any exported artifact with its own runtime behind one interface.

  predictor = runtimes.open_model("runs/q/mobilenet_v3_small/export/model_int8.tflite")
  probabilities = predictor.predict(uint8_images)      # (N, H, W, 3) -> (N, classes)

Formats: `keras` (a workdir or `model.keras`), `saved_model` (a folder with
`saved_model.pb`), `litert` (`.tflite`, the `ai-edge-litert` interpreter) and `onnx`
(`.onnx`, onnxruntime). Every artifact takes uint8 RGB pixels at its input size and
returns probabilities (see `tfbackbones/artifacts.py`); a full-integer LiteRT model
quantizes its input and output, which `predict` undoes with the tensors' own scale and
zero point. TensorFlow is imported only for `keras` and `saved_model`: a LiteRT or ONNX
model runs where TensorFlow is not installed (`tests/test_export.py` checks it).

Class names come from `labels.txt` beside the artifact (or in its parent folder, the
workdir): LiteRT flatbuffers have no standard place for them that its interpreter reads.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np

from tfbackbones import cores, quiet

FORMATS = ("keras", "saved_model", "litert", "onnx")
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.keras"


class ArtifactError(ValueError):
  """The path is not a model this module can run, or its runtime is not installed."""


@dataclasses.dataclass
class Predictor:
  """A loaded artifact: pixels in, probabilities out."""
  format: str
  path: str
  height: int
  width: int
  class_names: list
  runtime: str                                   # e.g. "ai-edge-litert 2.3.0"
  run: Callable[[np.ndarray], np.ndarray] = dataclasses.field(repr=False)
  input_dtype: str = "uint8"
  max_batch: int = 32

  def predict(self, images: np.ndarray) -> np.ndarray:
    """(N, height, width, 3) uint8 -> (N, num_classes) float32 probabilities."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (self.height, self.width, 3):
      raise ValueError(f"{self.path} takes (N, {self.height}, {self.width}, 3) images, "
                       f"got {images.shape}")
    out = [self.run(images[i:i + self.max_batch])
           for i in range(0, len(images), self.max_batch)]
    return np.concatenate(out).astype(np.float32)


def detect_format(path: str) -> str:
  """The format of `path` (file or folder); ArtifactError if it is none of FORMATS."""
  if os.path.isdir(path):
    if os.path.exists(os.path.join(path, "saved_model.pb")):
      return "saved_model"
    if os.path.exists(os.path.join(path, MODEL_FILE)):
      return "keras"
    raise ArtifactError(
        f"{path} holds neither {MODEL_FILE} (a finished training run) nor saved_model.pb; "
        "pass a workdir of a finished run, or a .keras/.tflite/.onnx file or SavedModel "
        "folder")
  if not os.path.exists(path):
    raise ArtifactError(f"{path}: no such file or folder")
  ext = os.path.splitext(path)[1].lower()
  formats = {".keras": "keras", ".tflite": "litert", ".onnx": "onnx"}
  if ext not in formats:
    raise ArtifactError(f"{path}: unknown model format {ext or '(no extension)'!r}; "
                        "expected .keras, .tflite, .onnx, a SavedModel folder or a workdir")
  return formats[ext]


def read_labels(path: str, num_classes: int) -> list:
  """Class names from labels.txt beside `path` or one folder up; else the indices."""
  folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
  for candidate in (folder, os.path.dirname(folder)):
    labels = os.path.join(candidate, LABELS_FILE)
    if os.path.exists(labels):
      with open(labels, encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f if line.strip()]
      if len(names) == num_classes:
        return names
  return [str(i) for i in range(num_classes)]


def open_model(path: str, threads: int | None = None) -> Predictor:
  """Loads `path` with its format's runtime.

  Args:
    path: a workdir, `model.keras`, a SavedModel folder, `.tflite` or `.onnx`.
    threads: intra-op threads of LiteRT and onnxruntime (None = all cores). TensorFlow
      fixes its thread pools at start-up: set them before loading (see `latency`).
  """
  fmt = detect_format(path)
  if fmt == "keras" and os.path.isdir(path):
    path = os.path.join(path, MODEL_FILE)
  threads = threads or cores.usable()
  return _OPENERS[fmt](path, threads)


def _version(package: str) -> str:
  from importlib import metadata
  try:
    return f"{package} {metadata.version(package)}"
  except metadata.PackageNotFoundError:
    return package


def _missing(runtime: str, error: Exception) -> ArtifactError:
  return ArtifactError(f"cannot run this model: {runtime} is not installed ({error}); "
                       "install the export extra: pip install 'tfbackbones[export]'")


def _open_keras(path: str, threads: int) -> Predictor:
  del threads
  from tfbackbones import artifacts
  try:
    model = artifacts.load_model(path)
  except (ValueError, OSError, TypeError) as e:
    raise ArtifactError(f"{path}: not a loadable Keras model ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from e
  import tensorflow as tf
  height, width = model.input_shape[1:3]
  # A traced call, as a served Keras model runs: eager dispatch would add ~30 ms a call.
  call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
  return Predictor("keras", path, int(height), int(width),
                   read_labels(path, int(model.output_shape[-1])), _version("keras"),
                   lambda x: call(tf.constant(x)).numpy(),
                   input_dtype=str(model.inputs[0].dtype))


def _open_saved_model(path: str, threads: int) -> Predictor:
  del threads
  import tensorflow as tf
  try:
    signature = tf.saved_model.load(path).signatures["serving_default"]
    (name, spec), = signature.structured_input_signature[1].items()
    output = sorted(signature.structured_outputs)[0]
  except (KeyError, ValueError, OSError) as e:
    raise ArtifactError(f"{path}: not a SavedModel with one image input and a "
                        f"serving_default signature ({type(e).__name__}: {e})") from e
  height, width = int(spec.shape[1]), int(spec.shape[2])
  run = lambda x: signature(**{name: tf.constant(x, spec.dtype)})[output].numpy()  # noqa: E731
  num_classes = int(run(np.zeros((1, height, width, 3), np.uint8)).shape[-1])
  return Predictor("saved_model", path, height, width, read_labels(path, num_classes),
                   _version("tensorflow"), run, input_dtype=spec.dtype.name)


def litert_interpreter(path: str, threads: int | None = None):
  """A LiteRT interpreter with its tensors allocated, without LiteRT's C++ greeting
  (`quiet.native_output`): the one way predict, the export and the benchmark open one."""
  from ai_edge_litert.interpreter import Interpreter
  with quiet.native_output():
    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
  return interpreter


def _open_litert(path: str, threads: int) -> Predictor:
  try:
    interpreter = litert_interpreter(path, threads)
  except ImportError as e:
    raise _missing("ai-edge-litert", e) from e
  except (ValueError, RuntimeError) as e:
    raise ArtifactError(f"{path}: not a LiteRT model the interpreter can load ({e})") from e
  inp = interpreter.get_input_details()[0]
  out = interpreter.get_output_details()[0]
  height, width = int(inp["shape"][1]), int(inp["shape"][2])

  def run(images):
    rows = []
    for image in images:
      interpreter.set_tensor(inp["index"], _to_input(image[None], inp))
      interpreter.invoke()
      rows.append(_from_output(interpreter.get_tensor(out["index"]), out))
    return np.concatenate(rows)

  return Predictor("litert", path, height, width,
                   read_labels(path, int(out["shape"][-1])), _version("ai-edge-litert"), run,
                   input_dtype=np.dtype(inp["dtype"]).name, max_batch=1)


def _to_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
  """uint8 pixels -> the input tensor's dtype, quantized with its scale/zero point."""
  dtype = np.dtype(detail["dtype"])
  scale, zero_point = detail["quantization"]
  if dtype.kind == "f":
    return pixels.astype(dtype)
  if not scale or (scale == 1.0 and zero_point == 0 and dtype == np.uint8):
    return pixels.astype(dtype)
  info = np.iinfo(dtype)
  q = np.round(pixels.astype(np.float32) / scale + zero_point)
  return np.clip(q, info.min, info.max).astype(dtype)


def _from_output(tensor: np.ndarray, detail: dict) -> np.ndarray:
  scale, zero_point = detail["quantization"]
  if np.dtype(detail["dtype"]).kind == "f" or not scale:
    return tensor.astype(np.float32)
  return (tensor.astype(np.float32) - zero_point) * np.float32(scale)


def _open_onnx(path: str, threads: int) -> Predictor:
  try:
    import onnxruntime as ort
  except ImportError as e:
    raise _missing("onnxruntime", e) from e
  options = ort.SessionOptions()
  options.intra_op_num_threads = threads
  options.inter_op_num_threads = 1
  options.log_severity_level = 3
  try:
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
  except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
    raise ArtifactError(f"{path}: not an ONNX model onnxruntime can load "
                        f"({type(e).__name__})") from e
  if len(session.get_inputs()) != 1:
    raise ArtifactError(f"{path}: an image model has one input, this one has "
                        f"{len(session.get_inputs())} (constants the converter left as inputs)")
  inp, out = session.get_inputs()[0], session.get_outputs()[0]
  height, width = int(inp.shape[1]), int(inp.shape[2])
  dtype = np.uint8 if inp.type == "tensor(uint8)" else np.float32
  run = lambda x: session.run([out.name], {inp.name: x.astype(dtype)})[0]  # noqa: E731
  num_classes = int(run(np.zeros((1, height, width, 3), np.uint8)).shape[-1])
  return Predictor("onnx", path, height, width, read_labels(path, num_classes),
                   _version("onnxruntime"), run, input_dtype=np.dtype(dtype).name)


_OPENERS = {"keras": _open_keras, "saved_model": _open_saved_model,
            "litert": _open_litert, "onnx": _open_onnx}


def top_k(probabilities, class_names, k: int) -> list:
  """[(class_index, class_name, probability)] of the k most probable classes.

  Equal probabilities keep class order, so the first is `argmax`, the class the export's
  measurements count (a uint8 INT8 output ties two classes at 128/256 now and then).
  """
  order = np.argsort(-np.asarray(probabilities), kind="stable")[:k]
  return [(int(i), class_names[i], float(probabilities[i])) for i in order]
