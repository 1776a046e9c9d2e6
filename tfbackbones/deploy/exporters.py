"""Write a run's `model.keras` as deployable artifacts, one registered function a format.

Every artifact keeps the contract of `model.keras` (uint8 RGB pixels at the run's size in,
probabilities out). SavedModel and LiteRT go through Keras 3 `Model.export` (for LiteRT:
a traced SavedModel and TensorFlow's TFLite converter); ONNX runs tf2onnx on the frozen
graph (see `_onnx`):

  saved_model   TF SavedModel, `serving_default` signature (TF Serving, TF.js converters).
  litert        float32 .tflite, TFLite builtin ops only (no Flex delegate needed).
  litert_fp16   float16 weights, float32 compute (half the file; XNNPACK may run fp16).
  litert_int8   full-integer post-training quantization: int8 weights and activations,
                uint8 input and output, calibrated on images of the run's training split;
                the weights are rounded to the int8 grid with those images first
                (`rounding.py`, GPTQ) unless `int8_rounding="nearest"`.
  onnx          ONNX (tf2onnx), for onnxruntime.

Why builtins only: Keras's default converter settings allow SELECT_TF_OPS, which makes a
model depend on the Flex delegate that the `ai-edge-litert` wheel does not ship; the
export should fail here, not on the device.

TensorFlow and Keras are imported when a format is written, not with this module, so
the export command checks its flags before TensorFlow starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import os
from collections.abc import Callable

import numpy as np

from tfbackbones import quiet
from tfbackbones.deploy import runtimes

FILES = {"saved_model": "saved_model", "litert": "model_fp32.tflite",
         "litert_fp16": "model_fp16.tflite", "litert_int8": "model_int8.tflite",
         "onnx": "model.onnx"}
FORMATS = tuple(FILES)
# The Python modules each format needs beyond TensorFlow (the `export` extra): to write the
# artifact and to run it with its own runtime.
REQUIRES = {"saved_model": (), "litert": ("ai_edge_litert",),
            "litert_fp16": ("ai_edge_litert",), "litert_int8": ("ai_edge_litert",),
            "onnx": ("tf2onnx", "onnx", "onnxruntime")}
INT8_ROUNDINGS = ("gptq", "nearest")  # see rounding.py; "nearest" is the converter alone


class ExportError(ValueError):
  """A bad format name or a model that a format cannot represent."""


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: an array field is not hashable
class ExportOptions:
  """What an exporter may use beyond the model; every exporter takes the same options.

  Attributes:
    calibration: (N, H, W, 3) uint8 training images (`litert_int8` calibrates on them).
    int8_rounding: one of INT8_ROUNDINGS (`litert_int8`'s weight rounding).
  """
  calibration: np.ndarray | None = None
  int8_rounding: str = "gptq"


def check_formats(formats) -> tuple:
  """Validates format names; the error lists the valid ones and the nearest match."""
  for name in formats:
    if name not in FILES:
      near = difflib.get_close_matches(name, FORMATS, n=1)
      hint = f" Did you mean {near[0]!r}?" if near else ""
      raise ExportError(f"unknown export format {name!r}.{hint} Valid formats: "
                        f"{', '.join(FORMATS)}")
  if not formats:
    raise ExportError(f"no export format given; valid formats: {', '.join(FORMATS)}")
  return tuple(formats)


def check_installed(formats) -> None:
  """Refuses formats whose packages are missing, before any work is done.

  Without this, a user who ran only `make quickstart` got the whole export's work (model
  loading, calibration, the SavedModel) and then one `ModuleNotFoundError` row per format.
  """
  missing: dict = {}
  for fmt in formats:
    for module in REQUIRES[fmt]:
      if importlib.util.find_spec(module) is None:
        missing.setdefault(module, []).append(fmt)
  if missing:
    needed_by = sorted({fmt for fmts in missing.values() for fmt in fmts})
    raise ExportError(
        f"{', '.join(sorted(missing))} not installed (needed by --formats="
        f"{','.join(needed_by)}): install the export extra, pip install -e '.[export]', "
        "or export only --formats=saved_model, which needs TensorFlow alone")


def check_int8_rounding(name: str) -> str:
  """Validates an INT8 weight rounding name; the error lists the valid ones."""
  if name not in INT8_ROUNDINGS:
    raise ExportError(f"unknown INT8 weight rounding {name!r}; valid: "
                      f"{', '.join(INT8_ROUNDINGS)}")
  return name


def _saved_model(model, path, options: ExportOptions) -> dict:
  del options  # float formats need no calibration
  from tfbackbones.deploy import rewrite
  rewrite.for_export(model).export(path, format="tf_saved_model", verbose=False)
  return {}


def _litert(model, path, options: ExportOptions) -> dict:
  del options  # float formats need no calibration
  import tensorflow as tf

  from tfbackbones.deploy import rewrite
  rewrite.for_export(model).export(
      path, format="litert", verbose=False,
      target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]})
  return {}


def _litert_fp16(model, path, options: ExportOptions) -> dict:
  del options  # float formats need no calibration
  import tensorflow as tf

  from tfbackbones.deploy import rewrite
  rewrite.for_export(model).export(
      path, format="litert", verbose=False, optimizations=[tf.lite.Optimize.DEFAULT],
      target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS],
                   "supported_types": [tf.float16]})
  return {}


def _litert_int8(model, path, options: ExportOptions) -> dict:
  """Full-integer: the converter calibrates every activation's range on
  `options.calibration`.

  Before that, the weights of a copy are rounded to the converter's int8 grid with the
  same images (`rounding.round_weights`, GPTQ): on the few-photo quickstart, nearest
  rounding of the stem's nearly cancelling colour weights alone changed 11% of the
  predictions (docs/export.md). The graph is rewritten so that every op has an int8
  XNNPACK kernel (`rewrite.for_export`, int8=True): without that, MobileNetV3's INT8
  file ran slower than its float one.

  Returns:
    facts for export.json: the weight rounding's statistics and the input's quantization.
  """
  import tensorflow as tf

  from tfbackbones import artifacts
  from tfbackbones.deploy import rewrite, rounding
  calibration = options.calibration
  check_int8_rounding(options.int8_rounding)
  if calibration is None or not len(calibration):
    raise ExportError("litert_int8 needs calibration images from the training split")

  def representative():
    for image in calibration:
      yield [image[None].astype(np.float32)]

  float_model = artifacts.float_input_variant(model)
  facts = {"weight_rounding": {"method": "nearest"}}
  if options.int8_rounding == "gptq":
    float_model, facts["weight_rounding"] = rounding.round_weights(float_model, calibration)
  int8_model = rewrite.for_export(float_model, int8=True)
  int8_model.export(
      path, format="litert", verbose=False, optimizations=[tf.lite.Optimize.DEFAULT],
      representative_dataset=representative,
      target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
      inference_input_type=tf.uint8, inference_output_type=tf.uint8)
  facts["input_quantization"] = input_quantization(path)
  return facts


def input_quantization(tflite_path: str) -> dict:
  """The uint8 input's scale and zero point: raw pixels need scale 1, zero point 0.

  The converter takes the input's range from the calibration images: if they do not
  reach 0 and 255, pixels outside their range are clipped and every pixel is rounded
  onto a coarser grid, a noise the model sees on every image.
  """
  detail = runtimes.litert_interpreter(tflite_path).get_input_details()[0]
  scale, zero_point = detail["quantization"]
  return {"dtype": np.dtype(detail["dtype"]).name, "scale": float(scale),
          "zero_point": int(zero_point),
          "raw_pixels": bool(scale == 1.0 and zero_point == 0)}


def _onnx(model, path, options: ExportOptions) -> dict:
  """tf2onnx on the frozen graph, not Keras's `export(format="onnx")`.

  Keras converts the traced function itself, and with tf2onnx 1.17 the tensors it captures
  that are not variables (the mean and variance of keras.applications EfficientNetV2's
  Normalization layer) stay ONNX graph *inputs* that nobody feeds, so onnxruntime
  refuses to run the model. Freezing the function first makes them constants.
  """
  del options  # float formats need no calibration
  import tensorflow as tf
  import tf2onnx
  from tensorflow.python.framework import convert_to_constants
  try:  # tf2onnx 1.17 still uses numpy aliases removed in numpy 2; Keras patches them
    from keras.src.export.tf2onnx_lib import patch_tf2onnx
    patch_tf2onnx()
  except ImportError:
    pass
  spec = tf.TensorSpec((None, *model.input_shape[1:]), model.inputs[0].dtype, name="image")
  function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
  frozen = convert_to_constants.convert_variables_to_constants_v2(function)
  tf2onnx.convert.from_graph_def(
      frozen.graph.as_graph_def(), input_names=[t.name for t in frozen.inputs],
      output_names=[t.name for t in frozen.outputs], output_path=path,
      custom_op_handlers=ONNX_OP_HANDLERS)
  return {}


def _erfc_as_one_minus_erf(ctx, node, name, args):
  """TF's `Erfc` as `1 - Erf(x)`: ONNX has Erf (opset 9), no Erfc, and tf2onnx 1.17 no
  handler for it.

  Keras's exact GELU (`approximate=False`, keras-hub's DINOv2 and DINOv3) computes
  `0.5 * x * erfc(-x / sqrt(2))`, so without this their ONNX export fails. The function
  is unchanged up to float32 rounding: `1 - erf(x)` and `erfc(x)` differ by about 1e-7
  at most (absolute; ONNX probabilities agree with Keras to ~2e-7, docs/keras_hub.md).
  """
  del args
  from tf2onnx import utils
  node.type = "Erf"
  dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
  one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype))
  erfc = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(name),
                                       inputs=[one.output[0], node.output[0]])
  ctx.copy_shape(node.output[0], erfc.output[0])
  ctx.set_dtype(erfc.output[0], ctx.get_dtype(node.output[0]))


# tf2onnx's `custom_op_handlers`: TF op -> (handler(ctx, node, name, args), args).
ONNX_OP_HANDLERS = {"Erfc": (_erfc_as_one_minus_erf, [])}


# Every exporter: (model, path, options: ExportOptions) -> facts for export.json (a dict,
# empty when the format has nothing to report).
EXPORTERS: dict[str, Callable[..., dict]] = {
    "saved_model": _saved_model, "litert": _litert, "litert_fp16": _litert_fp16,
    "litert_int8": _litert_int8, "onnx": _onnx}


def export(fmt: str, model, out_dir: str,
           options: ExportOptions | None = None) -> tuple[str, dict]:
  """Writes `model` in format `fmt` under `out_dir`.

  Args:
    fmt: one of FORMATS.
    model: a model with the `model.keras` contract (uint8 pixels in, probabilities out).
    out_dir: folder for the artifact (created).
    options: calibration images and INT8 rounding (default: none, GPTQ); each format
      uses what it needs, and `litert_int8` refuses to run without calibration.

  Returns:
    (the artifact's path, the exporter's facts for export.json: litert_int8 reports its
    weight rounding and input quantization, the float formats nothing).
  """
  check_formats([fmt])
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, FILES[fmt])
  with quiet.native_output():
    return path, dict(EXPORTERS[fmt](model, path, options or ExportOptions()))


def size_mb(path: str) -> float:
  """Bytes on disk of a file or a folder (SavedModel), in MB (1e6 bytes)."""
  if os.path.isfile(path):
    return os.path.getsize(path) / 1e6
  return sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(path) for f in files) / 1e6


def tensor_dtypes(tflite_path: str) -> dict:
  """How many tensors of each dtype a .tflite holds (int8 models: no float32 ones)."""
  counts: dict = {}
  for detail in runtimes.litert_interpreter(tflite_path).get_tensor_details():
    name = np.dtype(detail["dtype"]).name
    counts[name] = counts.get(name, 0) + 1
  return counts


def delegation(tflite_path: str, threads: int = 1) -> dict | None:
  """Which ops of a .tflite LiteRT's default CPU delegate (XNNPACK) runs, and which not.

  An op XNNPACK does not take runs on TFLite's own kernel, for some int8 ops its scalar
  reference kernel, and splits the graph into several delegate partitions: one such op
  type made INT8 MobileNetV3 slower than float (see `rewrite.py`). The interpreter lists
  its nodes after delegation: the original ops, then one `DELEGATE` node per partition
  with the partition's boundary tensors. An op ran outside XNNPACK if what it writes is
  not a partition output but is read by a partition, by an op outside, or is a model
  output. The conversions at the model's input and output (uint8 <-> int8 QUANTIZE of a
  full-integer model, the uint8 -> float CAST of a float one) are counted apart
  (`interface_ops`): XNNPACK has no uint8 -> int8 kernel, and each is one pass over the
  pixels or the probabilities.

  Returns:
    {"partitions": N, "not_delegated": {op name: count}, "interface_ops": K}, or None
    if this ai-edge-litert does not list its nodes.
  """
  interpreter = runtimes.litert_interpreter(tflite_path, threads)
  try:
    nodes = interpreter._get_ops_details()  # private, but the only listing of the nodes
  except AttributeError:
    return None
  delegates = [n for n in nodes if n["op_name"] == "DELEGATE"]
  ops = [n for n in nodes if n["op_name"] != "DELEGATE"]
  partition_in = {t for n in delegates for t in n["inputs"]}
  partition_out = {t for n in delegates for t in n["outputs"]}
  model_in = {d["index"] for d in interpreter.get_input_details()}
  model_out = {d["index"] for d in interpreter.get_output_details()}
  outside = {id(n) for n in ops
             if not set(n["outputs"]) & partition_out
             and set(n["outputs"]) & (partition_in | model_out)}
  changed = True
  while changed:  # an op feeding an op outside XNNPACK, not through a partition, is outside
    read_outside = {t for n in ops if id(n) in outside for t in n["inputs"]}
    grown = {id(n) for n in ops
             if not set(n["outputs"]) & partition_out and set(n["outputs"]) & read_outside}
    changed = not grown <= outside
    outside |= grown
  counts: dict = {}
  interface = 0
  for n in ops:
    if id(n) not in outside:
      continue
    if n["op_name"] in ("QUANTIZE", "DEQUANTIZE", "CAST") and (
        set(n["inputs"]) & model_in or set(n["outputs"]) & model_out):
      interface += 1
      continue
    counts[n["op_name"]] = counts.get(n["op_name"], 0) + 1
  return {"partitions": len(delegates), "not_delegated": counts, "interface_ops": interface}
