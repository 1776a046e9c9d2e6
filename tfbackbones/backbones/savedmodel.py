"""TF SavedModels as fine-tunable Keras 3 backbones (`savedmodel:` names).

A SavedModel directory becomes `Input((s, s, 3)) -> TFSMLayer -> features`.
`keras.layers.TFSMLayer` is the Keras 3 way to load a SavedModel: it tracks
the SavedModel's variables as layer weights, so they train. (`hub.KerasLayer`
is a tf_keras layer and cannot be used in Keras 3 models.)

Endpoint choice, from the SavedModel's `saved_model.pb` (read without loading
variables): an explicit `endpoint=` option; else `serve` (what Keras 3
`model.export()` writes); else the `serving_default` signature; else an error
listing what exists. Signatures return dicts: the single entry is used, or the
`output=` option's key.

Limits worth knowing: the endpoint runs in inference mode (BatchNorm uses its
moving statistics and they are not updated; dropout is off), and a SavedModel
keeps the dtypes it was saved with, so the layer is float32 and casts its
inputs even under a mixed-precision policy.

Name syntax: `savedmodel:/abs/dir[?preprocessing=unit&endpoint=serve&
output=key&size=224]`. Defaults: preprocessing `unit` ([0, 1], the TF Hub image
convention), size from the signature if it is fixed, else 224.
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from typing import TYPE_CHECKING

from tfbackbones import imagesize
from tfbackbones.backbones import preprocessing as preprocessing_lib
from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib

if TYPE_CHECKING:
  import keras

OPTION_KEYS = ("preprocessing", "endpoint", "output", "size")
DEFAULT_PREPROCESSING = "unit"
DEFAULT_SIZE = 224
_DT_FLOAT = 1  # tensorflow.core.framework.types_pb2.DT_FLOAT


class SavedModelError(ValueError):
  """A SavedModel cannot be used as a backbone as configured."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  """Dtype enum and shape (-1 = unknown) of one signature tensor."""
  dtype: int
  shape: tuple[int, ...] | None


@dataclasses.dataclass(frozen=True)
class SavedModelInfo:
  """What a SavedModel offers, read from saved_model.pb.

  Attributes:
    path: The SavedModel directory.
    functions: Callable attributes of the root object (e.g. `serve`,
      `__call__`).
    signatures: Signature name -> (inputs, outputs), each name -> TensorInfo.
  """
  path: str
  functions: tuple[str, ...]
  signatures: dict[str, tuple[dict[str, TensorInfo], dict[str, TensorInfo]]]

  def endpoints_text(self) -> str:
    """Lists endpoints for error messages."""
    sigs = [s for s in self.signatures if not s.startswith("__")]
    return (f"functions: {', '.join(self.functions) or '(none)'}; "
            f"signatures: {', '.join(sigs) or '(none)'}")


def split_options(text: str) -> tuple[str, dict[str, str]]:
  """Splits `location?key=value&...` into the location and known options.

  Args:
    text: A path or handle, optionally followed by `?options`.

  Returns:
    (location, options).

  Raises:
    SavedModelError: On an unknown or repeated option.
  """
  location, sep, query = text.partition("?")
  if not sep:
    return text, {}
  options = {}
  for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
    if key not in OPTION_KEYS:
      raise SavedModelError(
          f"Unknown option {key!r} in {text!r}; known: "
          f"{', '.join(OPTION_KEYS)}.")
    if key in options:
      raise SavedModelError(f"Option {key!r} given twice in {text!r}.")
    options[key] = value
  return location, options


def _tensor_info(proto) -> TensorInfo:
  """Converts a TensorInfo proto."""
  if proto.tensor_shape.unknown_rank:
    return TensorInfo(proto.dtype, None)
  return TensorInfo(proto.dtype,
                    tuple(int(d.size) for d in proto.tensor_shape.dim))


def inspect_saved_model(path: str) -> SavedModelInfo:
  """Reads a SavedModel's endpoints without restoring its variables.

  Args:
    path: SavedModel directory.

  Returns:
    Its endpoints and signatures.

  Raises:
    SavedModelError: If the directory holds no saved_model.pb.
  """
  from tensorflow.core.protobuf import saved_model_pb2

  pb_path = os.path.join(path, "saved_model.pb")
  if not os.path.isfile(pb_path):
    raise SavedModelError(
        f"{path} is not a SavedModel directory (no saved_model.pb). Pass the "
        "directory that contains saved_model.pb and variables/.")
  proto = saved_model_pb2.SavedModel()
  with open(pb_path, "rb") as f:
    proto.ParseFromString(f.read())
  graph = proto.meta_graphs[0]
  signatures = {
      name: ({k: _tensor_info(v) for k, v in sig.inputs.items()},
             {k: _tensor_info(v) for k, v in sig.outputs.items()})
      for name, sig in graph.signature_def.items()
  }
  functions = []
  nodes = graph.object_graph_def.nodes
  if nodes:
    for child in nodes[0].children:
      kind = nodes[child.node_id].WhichOneof("kind")
      if kind in ("function", "bare_concrete_function"):
        functions.append(child.local_name)
  return SavedModelInfo(path, tuple(functions), signatures)


def choose_endpoint(info: SavedModelInfo, requested: str | None) -> str:
  """Picks the endpoint to call (see module docstring for the order).

  Args:
    info: From `inspect_saved_model`.
    requested: Endpoint asked for, or None to auto-detect.

  Returns:
    The endpoint name.

  Raises:
    SavedModelError: If the requested endpoint is absent, or none of the
      defaults exists; the message lists what is available.
  """
  available = set(info.functions) | set(info.signatures)
  if requested:
    if requested not in available:
      raise SavedModelError(
          f"Endpoint {requested!r} not found in {info.path} "
          f"({info.endpoints_text()}).")
    return requested
  for candidate in ("serve", "serving_default"):
    if candidate in available:
      return candidate
  raise SavedModelError(
      f"{info.path} has neither a 'serve' endpoint nor a 'serving_default' "
      f"signature ({info.endpoints_text()}). Choose one with "
      "'?endpoint=<name>'.")


def _signature_facts(info: SavedModelInfo, endpoint: str,
                     output_key: str | None
                     ) -> tuple[int | None, int | None, str | None]:
  """Reads input size, feature width and output key from a signature.

  Args:
    info: SavedModel info.
    endpoint: Chosen endpoint.
    output_key: Requested output key or None.

  Returns:
    (fixed input size or None, feature dim or None, output key or None).

  Raises:
    SavedModelError: For several inputs, a non-float32 input, an unknown
      output key, or several outputs and no key.
  """
  if endpoint not in info.signatures:
    return None, None, output_key
  inputs, outputs = info.signatures[endpoint]
  if len(inputs) != 1:
    raise SavedModelError(
        f"Endpoint {endpoint!r} of {info.path} takes {len(inputs)} inputs "
        f"({', '.join(inputs)}); a backbone needs exactly one image input.")
  (image,) = inputs.values()
  if image.dtype != _DT_FLOAT:
    raise SavedModelError(
        f"Endpoint {endpoint!r} of {info.path} expects input dtype enum "
        f"{image.dtype}, not float32; re-export it with a float32 input.")
  size = None
  if image.shape and len(image.shape) == 4:
    h, w = image.shape[1], image.shape[2]
    if h > 0 and w > 0:
      size = imagesize.canonical((h, w))
  if output_key is not None and output_key not in outputs:
    raise SavedModelError(
        f"Output {output_key!r} not returned by endpoint {endpoint!r} of "
        f"{info.path}; outputs: {', '.join(sorted(outputs))}.")
  if output_key is None and len(outputs) > 1 and endpoint not in (
      info.functions):
    raise SavedModelError(
        f"Endpoint {endpoint!r} of {info.path} returns several outputs "
        f"({', '.join(sorted(outputs))}); choose one with '?output=<key>'.")
  key = output_key or (next(iter(outputs)) if len(outputs) == 1 else None)
  feature_dim = None
  if key is not None and outputs[key].shape:
    last = outputs[key].shape[-1]
    feature_dim = last if last > 0 else None
  return size, feature_dim, output_key


def keras_name(text: str) -> str:
  """Turns any string into a valid Keras layer/model name."""
  name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")
  return name or "savedmodel"


def _select_output(out, output_key: str | None, where: str):
  """Picks the feature tensor from what the endpoint returned."""
  if isinstance(out, dict):
    if output_key is not None:
      if output_key not in out:
        raise SavedModelError(
            f"Output {output_key!r} not returned by {where}; outputs: "
            f"{', '.join(sorted(out))}.")
      return out[output_key]
    if len(out) == 1:
      return next(iter(out.values()))
    raise SavedModelError(
        f"{where} returns several outputs ({', '.join(sorted(out))}); "
        "choose one with '?output=<key>'.")
  if isinstance(out, (list, tuple)):
    if len(out) == 1:
      return out[0]
    raise SavedModelError(
        f"{where} returns {len(out)} tensors; a backbone needs one.")
  return out


def build_savedmodel_model(path: str, *, name: str, image_size,
                           endpoint: str | None = None,
                           output_key: str | None = None) -> keras.Model:
  """Wraps a SavedModel directory into a trainable Keras 3 model.

  Args:
    path: SavedModel directory.
    name: Model name (made Keras-safe).
    image_size: (height, width), or an int for a square input.
    endpoint: Endpoint to call, or None to auto-detect.
    output_key: Output to use if the endpoint returns a dict.

  Returns:
    Functional model (B, H, W, 3) float32 -> (B, C) or (B, h, w, C).

  Raises:
    SavedModelError: If the SavedModel does not fit (see messages).
  """
  import keras

  info = inspect_saved_model(path)
  endpoint = choose_endpoint(info, endpoint)
  fixed, _, output_key = _signature_facts(info, endpoint, output_key)
  image_size = imagesize.require(image_size)
  if fixed is not None and imagesize.require(fixed) != image_size:
    raise SavedModelError(
        f"{path} (endpoint {endpoint!r}) was exported for "
        f"{imagesize.text(fixed, both_sides=True)} inputs, not "
        f"{imagesize.text(image_size, both_sides=True)} (width x height). Pass "
        f"--image_size={imagesize.text(fixed)} or re-export the model with a "
        "flexible input shape.")
  safe = keras_name(name)
  layer = keras.layers.TFSMLayer(
      path, call_endpoint=endpoint, trainable=True, dtype="float32",
      name=f"{safe}_savedmodel")
  inputs = keras.Input((*image_size, 3), dtype="float32", name="images")
  features = _select_output(layer(inputs), output_key,
                            f"endpoint {endpoint!r} of {path}")
  if len(features.shape) not in (2, 4):
    raise SavedModelError(
        f"Endpoint {endpoint!r} of {path} gives features of shape "
        f"{tuple(features.shape)}; a backbone must give (B, C) or "
        "(B, h, w, C). Choose another output with '?output=<key>'.")
  return keras.Model(inputs, features, name=safe)


def build_from_directory(spec: registry.BackboneSpec, path: str,
                         image_size, weights: str) -> keras.Model:
  """Builds a SavedModel-backed spec from a local directory.

  Args:
    spec: tfhub or savedmodel spec (endpoint/output options are read).
    path: Local SavedModel directory.
    image_size: (height, width).
    weights: Already checked to be "imagenet" or a path.

  Returns:
    The backbone model, with a user weights file loaded if one was given.
  """
  choice = weights_lib.parse_weights_arg(weights)
  user_path = None
  if choice not in ("imagenet", "none"):
    user_path = weights_lib.check_weights_path(choice)
  model = build_savedmodel_model(
      path, name=spec.name, image_size=image_size, endpoint=spec.endpoint,
      output_key=spec.output_key)
  if user_path is not None:
    weights_lib.load_weights_file(model, user_path, spec.name)
  return model


def reject_no_weights(spec: registry.BackboneSpec, weights: str) -> None:
  """Raises for weights="none", which a SavedModel cannot honour.

  Args:
    spec: The spec being built.
    weights: The weights argument.

  Raises:
    ValueError: If weights is "none".
  """
  if weights_lib.parse_weights_arg(weights) == "none":
    raise ValueError(
        f"Backbone {spec.name!r} is a SavedModel ({spec.source}): it comes "
        "with its own weights and has no random-init variant. Use "
        "--weights=imagenet (the SavedModel's weights) or a keras.applications "
        "backbone for training from scratch.")


def _build(spec: registry.BackboneSpec, image_size: int,
           weights: str) -> keras.Model:
  """Builder for `savedmodel:` specs."""
  reject_no_weights(spec, weights)
  return build_from_directory(spec, spec.handle, image_size, weights)


def parse_size(options: dict[str, str], text: str) -> int | str | None:
  """Reads the `size` option: `224`, or `WIDTHxHEIGHT` such as `672x448`.

  Args:
    options: Parsed options.
    text: Full name, for the message.

  Returns:
    The size, or None if not given.
  """
  if "size" not in options:
    return None
  try:
    size = imagesize.parse(options["size"])
  except imagesize.SizeError:
    size = None
  if size is None:
    raise SavedModelError(f"size must be a positive integer or WIDTHxHEIGHT in "
                          f"{text!r}.")
  return imagesize.canonical(size)


def savedmodel_spec(rest: str) -> registry.BackboneSpec:
  """Resolves `savedmodel:<dir>[?options]` into a spec.

  Reads the SavedModel's signature (cheap, no variables) so the spec already
  knows its endpoint, native size and feature width.

  Args:
    rest: The name without the `savedmodel:` prefix.

  Returns:
    An unregistered spec named `savedmodel:<rest>`.

  Raises:
    SavedModelError: If the directory or options are unusable.
  """
  full_name = "savedmodel:" + rest
  location, options = split_options(rest)
  if not location:
    raise SavedModelError(
        "Empty path in 'savedmodel:'; use savedmodel:/abs/path/to/dir.")
  path = os.path.abspath(os.path.expanduser(location))
  if not os.path.isdir(path):
    raise SavedModelError(f"SavedModel directory not found: {path}")
  kind = preprocessing_lib.check_kind(
      options.get("preprocessing", DEFAULT_PREPROCESSING))
  info = inspect_saved_model(path)
  endpoint = choose_endpoint(info, options.get("endpoint"))
  fixed, feature_dim, output_key = _signature_facts(
      info, endpoint, options.get("output"))
  size = parse_size(options, full_name) or fixed or DEFAULT_SIZE
  return registry.BackboneSpec(
      name=full_name,
      source="savedmodel",
      default_size=size,
      preprocessing=kind,
      params_m=None,
      imagenet_top1=None,
      feature_dim=feature_dim,
      weights_file=None,
      description=f"Local SavedModel {path} (endpoint {endpoint!r})",
      handle=path,
      endpoint=endpoint,
      output_key=output_key,
      fixed_size=fixed is not None,
      builder=_build,
  )


registry.register_dynamic("savedmodel:", savedmodel_spec)
