"""Shared helpers for turning PyTorch state_dicts into Keras 3 weights.

Every converter (each beside its model in `tfbackbones.backbones.ports`) does the
same three things, and they live here so that they are done the same way and
fail the same way:

1. Read a checkpoint (`load_checkpoint`): torch is imported lazily, so the
   rest of the package works without it; a raw state_dict and the common
   wrappers (`{'state_dict': ...}`, `{'model': ...}`, a `module.` prefix from
   DataParallel) are accepted; tensors become float numpy arrays.
2. Assign tensors to Keras variables with layout changes (OIHW -> HWIO conv
   kernels, (out, in) -> (in, out) linear kernels, BatchNorm running stats)
   and a shape check whose error names the torch key *and* the Keras variable,
   because "shape mismatch" without a name is useless in a 300-layer model.
3. Account for everything: a `StateDict` records which tensors were used, and
   `convert_by_name` records which Keras variables were set, so that a
   conversion that silently leaves random weights in the model, or ignores a
   tensor, is an error rather than a quiet accuracy loss.

The cheapest way to write a converter is to name each Keras layer exactly
after its torch module prefix (Keras 3 allows '.' and '-' in layer names;
saving does not depend on them), then call `convert_by_name(model, state)`:
layers are matched by name and assigned by type. Layers whose name differs
(e.g. keras.applications models) use `name_map`; layers with parameters of
their own kind (layer scale, position embeddings) use `custom`.

No torch import at module level; NumPy and Keras only.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tfbackbones.convert import registry
from tfbackbones.convert.registry import ConversionError

if TYPE_CHECKING:
  pass

# Buffers torch keeps that carry no weights (BatchNorm's step counter).
IGNORED_SUFFIXES = ("num_batches_tracked",)
# Keys under which training scripts commonly nest the state_dict.
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "model_state",
                   "module", "net")
PARITY_INSTALL_HINT = "pip install -e '.[parity]'"


# ----------------------------------------------------------------------------
# Reading checkpoints.


def import_torch():
  """Imports torch, or explains how to get it (it is an optional extra)."""
  try:
    import torch
  except ImportError as e:
    raise ImportError(
        "Converting PyTorch checkpoints needs torch, which is not installed. "
        f"Install the parity extra: {PARITY_INSTALL_HINT}") from e
  return torch


def to_numpy(value: Any) -> np.ndarray:
  """Returns a numpy copy of a torch tensor or array-like (no torch import)."""
  if hasattr(value, "detach"):  # torch.Tensor, without importing torch
    value = value.detach().cpu()
    if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
      value = value.float()
    value = value.numpy()
  return np.asarray(value)


def unwrap_state_dict(obj: Any) -> dict[str, np.ndarray]:
  """Finds the state_dict inside a loaded checkpoint and converts it to numpy.

  Accepts a raw state_dict, or a dict that holds one under one of
  `CHECKPOINT_KEYS` (training checkpoints also hold optimizer state, epoch,
  ...). A `module.` prefix on every key (torch DataParallel / DDP) is removed,
  as is a `_orig_mod.` prefix (torch.compile).

  Args:
    obj: What `torch.load` returned, or a mapping of name -> array.

  Returns:
    {key: np.ndarray}, in the checkpoint's order.

  Raises:
    ConversionError: If no mapping of tensors can be found.
  """
  if not isinstance(obj, Mapping):
    raise ConversionError(
        f"The checkpoint holds a {type(obj).__name__}, not a state_dict. Save "
        "the weights with torch.save(model.state_dict(), path).")
  tensors = obj
  if not _looks_like_state_dict(tensors):
    for key in CHECKPOINT_KEYS:
      if key in obj and isinstance(obj[key], Mapping):
        tensors = obj[key]
        break
    else:
      raise ConversionError(
          "The checkpoint is a dict but neither a state_dict (name -> tensor) "
          f"nor a wrapper with one of the keys {', '.join(CHECKPOINT_KEYS)}; "
          f"its keys are: {', '.join(map(str, list(obj)[:20]))}.")
  result = {}
  for key, value in tensors.items():
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
      continue  # e.g. metadata strings stored beside tensors
    result[str(key)] = to_numpy(value)
  for prefix in ("module.", "_orig_mod."):
    if result and all(k.startswith(prefix) for k in result):
      result = {k[len(prefix):]: v for k, v in result.items()}
  if not result:
    raise ConversionError("The checkpoint contains no tensors.")
  return result


def _looks_like_state_dict(obj: Mapping) -> bool:
  """True if most values are tensors/arrays (a state_dict, not a wrapper)."""
  values = list(obj.values())
  if not values:
    return False
  arrays = sum(hasattr(v, "shape") and hasattr(v, "dtype") for v in values)
  return arrays >= max(1, len(values) // 2)


def load_checkpoint(path: str, *, allow_pickle: bool = False
                    ) -> dict[str, np.ndarray]:
  """Loads a PyTorch `.pth`/`.pt`/`.bin` checkpoint as {key: np.ndarray}.

  torch.load runs with `weights_only=True` unless `allow_pickle`: a `.pth` is
  a pickle, and unpickling an untrusted file can run arbitrary code.
  `.safetensors` files are read with the safetensors package if present.

  Args:
    path: The checkpoint file.
    allow_pickle: Allow full unpickling (only for files you trust; some
      training checkpoints store Python objects beside the weights).

  Returns:
    The state_dict as numpy arrays (see `unwrap_state_dict`).

  Raises:
    FileNotFoundError: If the file does not exist.
    ImportError: If torch (or safetensors) is not installed.
    ConversionError: If the file holds no usable state_dict.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No checkpoint at {path}")
  if path.endswith(".safetensors"):
    try:
      from safetensors.numpy import load_file
    except ImportError as e:
      raise ImportError(
          f"Reading {path} needs the safetensors package "
          "(pip install safetensors).") from e
    return unwrap_state_dict(load_file(path))
  try:
    torch = import_torch()
  except ImportError:
    if allow_pickle:
      raise
    # A plain state_dict reads without torch (the `pretrained` extra has no torch).
    from tfbackbones.convert import pth_numpy
    return unwrap_state_dict(pth_numpy.load_state_dict(path))
  try:
    obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
  except Exception as e:
    if not allow_pickle and "weights_only" in str(e):
      raise ConversionError(
          f"{path} holds Python objects besides tensors, which torch refuses "
          "to unpickle with weights_only=True. If you trust the file, pass "
          "--allow_pickle (or allow_pickle=True).") from e
    raise ConversionError(f"torch could not read {path}: {e}") from e
  return unwrap_state_dict(obj)


# ----------------------------------------------------------------------------
# Accounting for tensors.


class StateDict:
  """A state_dict being consumed: each tensor must be used exactly once.

  `take` hands out a tensor and marks it used; `finish` fails if any tensor
  was never used (a sign that the Keras model lacks a layer, or that a
  converter forgot one), so partial conversions cannot pass unnoticed.
  """

  def __init__(self, tensors: Mapping[str, Any], *,
               rename: Callable[[str], str] | None = None):
    """Wraps a state_dict.

    Args:
      tensors: {key: array or tensor}.
      rename: Optional key rewriting applied first (e.g. legacy key names).
    """
    self._tensors: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
      if key.endswith(IGNORED_SUFFIXES):
        continue
      new_key = rename(key) if rename else key
      if new_key in self._tensors:
        raise ConversionError(f"Two tensors map to the key {new_key!r}.")
      self._tensors[new_key] = to_numpy(value)
    self._used: set[str] = set()
    self._dropped: set[str] = set()

  def __contains__(self, key: str) -> bool:
    return key in self._tensors

  def __len__(self) -> int:
    return len(self._tensors)

  def keys(self) -> list[str]:
    return list(self._tensors)

  def keys_under(self, prefix: str) -> list[str]:
    """Keys that start with `prefix` (include the trailing '.')."""
    return [k for k in self._tensors if k.startswith(prefix)]

  def peek(self, key: str) -> np.ndarray:
    """Returns a tensor without marking it used (for reading shapes)."""
    self._require(key)
    return self._tensors[key]

  def take(self, key: str, *, context: str = "") -> np.ndarray:
    """Returns a tensor and marks it used.

    Args:
      key: The torch key.
      context: What wanted it (a Keras layer), for the error message.

    Raises:
      ConversionError: If the key is missing or was already used.
    """
    self._require(key, context)
    if key in self._used:
      raise ConversionError(f"Tensor {key!r} was assigned twice"
                            + (f" (second time for {context})" if context
                               else "") + ".")
    self._used.add(key)
    return self._tensors[key]

  def drop(self, prefix: str) -> list[str]:
    """Marks every tensor under `prefix` as deliberately unused (a head)."""
    keys = self.keys_under(prefix)
    self._dropped.update(keys)
    return keys

  def unused(self) -> list[str]:
    return [k for k in self._tensors
            if k not in self._used and k not in self._dropped]

  def finish(self) -> None:
    """Raises ConversionError if a tensor was neither used nor dropped."""
    left = self.unused()
    if left:
      shown = ", ".join(f"{k} {tuple(self._tensors[k].shape)}"
                        for k in left[:15])
      more = f" and {len(left) - 15} more" if len(left) > 15 else ""
      raise ConversionError(
          f"{len(left)} tensor(s) of the state_dict have no place in the "
          f"Keras model: {shown}{more}. Is it the right --arch (or does the "
          "checkpoint have a head you did not ask to keep)?")

  @property
  def used_count(self) -> int:
    return len(self._used)

  def _require(self, key: str, context: str = "") -> None:
    if key in self._tensors:
      return
    close = difflib.get_close_matches(key, list(self._tensors), n=3,
                                      cutoff=0.6)
    hint = f" Similar keys: {', '.join(close)}." if close else ""
    where = f" (needed by {context})" if context else ""
    raise ConversionError(
        f"Missing tensor {key!r} in the state_dict{where}.{hint}")


# ----------------------------------------------------------------------------
# Layout changes.


def conv_kernel(weight: np.ndarray) -> np.ndarray:
  """torch Conv2d weight (O, I/groups, kh, kw) -> Keras Conv2D (kh, kw, I/g, O).

  Keras grouped Conv2D splits input and output channels into contiguous
  groups exactly like torch, so the same transpose serves grouped convs
  (including ConvNeXt's depthwise conv written as Conv2D(groups=C)).
  """
  _check_rank(weight, 4, "conv weight")
  return np.transpose(weight, (2, 3, 1, 0))


def depthwise_kernel(weight: np.ndarray, multiplier: int = 1) -> np.ndarray:
  """torch depthwise weight (C*m, 1, kh, kw) -> DepthwiseConv2D (kh, kw, C, m).

  torch output channel c*m + j is input channel c's j-th filter, which is
  Keras's [:, :, c, j].
  """
  _check_rank(weight, 4, "depthwise weight")
  out_ch, one, kh, kw = weight.shape
  if one != 1 or out_ch % multiplier:
    raise ConversionError(
        f"not a depthwise weight with multiplier {multiplier}: shape "
        f"{tuple(weight.shape)}")
  return np.transpose(weight.reshape(out_ch // multiplier, multiplier, kh, kw),
                      (2, 3, 0, 1))


def linear_kernel(weight: np.ndarray) -> np.ndarray:
  """torch Linear weight (out, in) -> Keras Dense kernel (in, out)."""
  _check_rank(weight, 2, "linear weight")
  return np.transpose(weight)


def _check_rank(weight: np.ndarray, rank: int, what: str) -> None:
  if weight.ndim != rank:
    raise ConversionError(
        f"{what} must have rank {rank}, got shape {tuple(weight.shape)}")


# ----------------------------------------------------------------------------
# Assigning to Keras variables.


def assign(variable, value: np.ndarray, key: str, layer_name: str = "") -> None:
  """Assigns `value` to a Keras variable after a shape check naming both.

  Args:
    variable: A keras.Variable.
    value: The (already re-laid-out) numpy array.
    key: The torch key it came from (for the message).
    layer_name: The Keras layer (for the message).

  Raises:
    ConversionError: On a shape mismatch.
  """
  expected = tuple(int(d) for d in variable.shape)
  if tuple(value.shape) != expected:
    raise ConversionError(
        f"Shape mismatch for torch tensor {key!r}: after conversion it is "
        f"{tuple(value.shape)}, but Keras variable {variable.path!r}"
        + (f" of layer {layer_name!r}" if layer_name else "")
        + f" is {expected}.")
  variable.assign(np.asarray(value, dtype=_np_dtype(variable)))


def _np_dtype(variable) -> str:
  dtype = str(getattr(variable, "dtype", "float32"))
  return dtype if dtype != "bfloat16" else "float32"


def assign_conv(layer, state: StateDict, prefix: str) -> list:
  """Conv2D / DepthwiseConv2D <- `prefix.weight` (+ `prefix.bias`)."""
  import keras

  key = f"{prefix}.weight"
  weight = state.take(key, context=layer.name)
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    if weight.ndim != 4 or weight.shape[1] != 1:
      raise ConversionError(
          f"torch tensor {key!r} with shape {tuple(weight.shape)} is not a "
          f"depthwise kernel, but Keras layer {layer.name!r} is "
          "DepthwiseConv2D.")
    kernel = depthwise_kernel(weight, int(layer.depth_multiplier))
  else:
    if weight.ndim != 4:
      raise ConversionError(
          f"torch tensor {key!r} has shape {tuple(weight.shape)}; Keras layer "
          f"{layer.name!r} ({type(layer).__name__}) needs a 4-D conv weight.")
    kernel = conv_kernel(weight)
  assign(layer.kernel, kernel, key, layer.name)
  done = [layer.kernel]
  done += _assign_bias(layer, state, prefix)
  return done


def assign_dense(layer, state: StateDict, prefix: str) -> list:
  """Dense <- Linear `prefix.weight` (transposed) (+ `prefix.bias`).

  A 1x1 Conv2d weight (O, I, 1, 1) is accepted too (squeeze-excite convs
  written as Dense on pooled vectors).
  """
  key = f"{prefix}.weight"
  weight = state.take(key, context=layer.name)
  if weight.ndim == 4 and weight.shape[2:] == (1, 1):
    weight = weight[:, :, 0, 0]
  if weight.ndim != 2:
    raise ConversionError(
        f"torch tensor {key!r} has shape {tuple(weight.shape)}; Keras Dense "
        f"layer {layer.name!r} needs a 2-D Linear weight.")
  assign(layer.kernel, linear_kernel(weight), key, layer.name)
  return [layer.kernel] + _assign_bias(layer, state, prefix)


def _assign_bias(layer, state: StateDict, prefix: str) -> list:
  key = f"{prefix}.bias"
  has = key in state
  bias = getattr(layer, "bias", None)
  if bias is None:
    if has:
      raise ConversionError(
          f"torch tensor {key!r} exists but Keras layer {layer.name!r} has no "
          "bias (use_bias=False).")
    return []
  if not has:
    raise ConversionError(
        f"Keras layer {layer.name!r} has a bias but the state_dict has no "
        f"{key!r} (the torch layer was built with bias=False?).")
  assign(bias, state.take(key, context=layer.name), key, layer.name)
  return [bias]


def assign_batchnorm(layer, state: StateDict, prefix: str) -> list:
  """BatchNormalization <- weight, bias, running_mean, running_var.

  Keras omits gamma/beta when scale/center is False; torch omits
  weight/bias when affine=False. Both must agree.
  """
  pairs = (("gamma", "weight"), ("beta", "bias"),
           ("moving_mean", "running_mean"), ("moving_variance", "running_var"))
  return _assign_named(layer, state, prefix, pairs, "BatchNormalization")


def assign_layernorm(layer, state: StateDict, prefix: str) -> list:
  """LayerNormalization <- weight (gamma), bias (beta)."""
  return _assign_named(layer, state, prefix, (("gamma", "weight"), ("beta", "bias")),
                       "LayerNormalization")


def _assign_named(layer, state: StateDict, prefix: str, pairs, kind: str) -> list:
  """Assigns `prefix.<torch suffix>` to each `layer.<keras attr>` of `pairs`.

  An attribute Keras omits (scale/center False) must have no torch tensor either.
  """
  done = []
  for attr, suffix in pairs:
    variable = getattr(layer, attr, None)
    key = f"{prefix}.{suffix}"
    if variable is None:
      if key in state:
        raise ConversionError(
            f"torch tensor {key!r} exists but Keras {kind} "
            f"{layer.name!r} has no {attr}.")
      continue
    assign(variable, state.take(key, context=layer.name), key, layer.name)
    done.append(variable)
  return done


def assign_generic(layer, state: StateDict, prefix: str, *,
                   names: Mapping[str, str] | None = None,
                   transforms: Mapping[str, Callable[[np.ndarray], np.ndarray]]
                   | None = None) -> list:
  """Assigns each variable `v` of a custom layer from `prefix.<names[v]>`.

  For layers with parameters of their own (layer scale, class tokens,
  position embeddings, relative position bias tables).

  Args:
    layer: A Keras layer.
    state: The state_dict being consumed.
    prefix: torch prefix; the key is `prefix.<suffix>` or just `<suffix>` if
      prefix is empty.
    names: Keras variable name -> torch suffix; default: the same name.
    transforms: Keras variable name -> function applied to the tensor
      (e.g. `lambda a: a.reshape(-1)` for a (C, 1, 1) layer scale).

  Returns:
    The variables assigned.
  """
  done = []
  for variable in layer.weights:
    vname = variable.name
    suffix = (names or {}).get(vname, vname)
    key = f"{prefix}.{suffix}" if prefix else suffix
    value = state.take(key, context=layer.name)
    if transforms and vname in transforms:
      value = transforms[vname](value)
    assign(variable, value, key, layer.name)
    done.append(variable)
  return done


Assigner = Callable[[Any, StateDict, str], list]


def default_assigners() -> list[tuple[type, Assigner]]:
  """(Keras layer class, assigner) pairs, most specific class first."""
  import keras

  return [
      (keras.layers.DepthwiseConv2D, assign_conv),
      (keras.layers.Conv2D, assign_conv),
      (keras.layers.Dense, assign_dense),
      (keras.layers.BatchNormalization, assign_batchnorm),
      (keras.layers.LayerNormalization, assign_layernorm),
  ]


def iter_leaf_layers(model) -> list:
  """Every layer of `model`'s graph, nested models flattened away, each once.

  A custom layer is one unit even when it holds layers: its assigner sets all of its
  variables (see `layer_walk.walk`, into="models").
  """
  from tfbackbones import layer_walk  # imports Keras, which this module defers

  return layer_walk.walk(model, into="models", containers=False)


def convert_by_name(
    model,
    state: StateDict,
    *,
    name_map: Callable[[str], str | None] | Mapping[str, str] | None = None,
    custom: Mapping[str, Assigner] | None = None,
    assigners: Iterable[tuple[type, Assigner]] | None = None,
    skip_layers: Iterable[str] = (),
    finish: bool = True,
) -> int:
  """Assigns a state_dict to a Keras model whose layers are named like torch.

  Every layer that owns variables is matched to a torch prefix (its name, or
  `name_map(name)`) and assigned by its type. Afterwards every Keras variable
  must have been set and (if `finish`) every tensor used.

  Args:
    model: The built Keras model (nested models are walked).
    state: The state_dict to consume.
    name_map: Keras layer name -> torch prefix (callable or dict); a callable
      returning None, or a dict without the name, falls back to the name.
    custom: Keras layer name -> assigner, for layers of custom types.
    assigners: (class, assigner) pairs to use instead of the defaults.
    skip_layers: Names of layers with variables that have no torch
      counterpart and keep their values (e.g. fixed input normalisation).
    finish: Call `state.finish()` at the end (False if the caller converts
      more afterwards).

  Returns:
    The number of Keras variables assigned.

  Raises:
    ConversionError: Naming the torch key or Keras layer at fault.
  """
  table = list(assigners) if assigners is not None else default_assigners()
  skip = set(skip_layers)
  assigned: set[int] = set()
  for layer in iter_leaf_layers(model):
    if not layer.weights or layer.name in skip:
      continue
    if custom and layer.name in custom:
      fn = custom[layer.name]
    else:
      fn = next((f for cls, f in table if isinstance(layer, cls)), None)
      if fn is None:
        raise ConversionError(
            f"Keras layer {layer.name!r} ({type(layer).__name__}) has "
            "variables but no converter; pass it in `custom` or "
            "`skip_layers`.")
    prefix = _lookup(name_map, layer.name)
    for variable in fn(layer, state, prefix):
      assigned.add(id(variable))
  missing = [f"{v.path} {tuple(v.shape)}" for layer in iter_leaf_layers(model)
             if layer.name not in skip
             for v in layer.weights if id(v) not in assigned]
  if missing:
    raise ConversionError(
        f"{len(missing)} Keras variable(s) received no tensor: "
        f"{', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
  if finish:
    state.finish()
  return len(assigned)


def _lookup(name_map, name: str) -> str:
  if name_map is None:
    return name
  if callable(name_map):
    mapped = name_map(name)
  else:
    mapped = name_map.get(name)
  return name if mapped is None else mapped


def regex_renamer(rules: Iterable[tuple[str, str]]) -> Callable[[str], str]:
  """Returns a key-renaming function applying `re.sub` rules in order.

  Used for legacy checkpoint keys, e.g. torchvision DenseNet's
  `denselayer1.norm.1.weight` -> `denselayer1.norm1.weight`.
  """
  compiled = [(re.compile(p), r) for p, r in rules]

  def rename(key: str) -> str:
    for pattern, replacement in compiled:
      key = pattern.sub(replacement, key)
    return key
  return rename


# ----------------------------------------------------------------------------
# Finding converters and running one end to end.

def load_converter_modules() -> dict[str, Exception]:
  """Imports the modules that register converters (they self-register).

  Every converter sits beside its model in `tfbackbones.backbones` (the `ports`
  package, `efficientnet_lite`), which registers it when it registers the backbones,
  so importing that package is all the command line and `convert_file` need; no
  list to keep in sync.

  Returns:
    {module name: import error} if the import failed, else {}.
  """
  try:
    importlib.import_module("tfbackbones.backbones")
  except Exception as e:
    return {"tfbackbones.backbones": e}
  return {}


def get_converter(arch: str) -> Callable:
  """Returns the converter for `arch`, importing converter modules first."""
  errors = load_converter_modules()
  try:
    return registry.get(arch)
  except ConversionError as e:
    if errors:
      detail = "; ".join(f"{m}: {type(x).__name__}: {x}"
                         for m, x in errors.items())
      raise ConversionError(
          f"{e}. (Converter modules that failed to import: {detail})") from e
    raise


def convert_state_dict(arch: str, state_dict: Mapping[str, Any], *,
                       keep_head: bool = False, num_classes: int = 1000):
  """Converts an in-memory state_dict with the converter registered for arch.

  Returns:
    The Keras model with the weights assigned.
  """
  tensors = {k: to_numpy(v) for k, v in state_dict.items()}
  return get_converter(arch)(tensors, keep_head=keep_head,
                             num_classes=num_classes)


def convert_file(arch: str, src: str, dst: str, *, keep_head: bool = False,
                 num_classes: int = 1000, allow_pickle: bool = False):
  """Converts a PyTorch checkpoint file into a Keras `.weights.h5` file.

  Without `keep_head` the file fits `tfbackbones.backbones.get(<model
  name>).build(size, weights=dst)`; with it, the converter's ImageNet-head
  model (for checking ImageNet accuracy).

  Args:
    arch: Converter name (see `registry.names()`).
    src: The .pth / .pt / .bin / .safetensors file.
    dst: Output path; must end in `.weights.h5`.
    keep_head: Keep the classifier.
    num_classes: Classes of the kept head (must match the checkpoint).
    allow_pickle: See `load_checkpoint`.

  Returns:
    The converted Keras model.

  Raises:
    ValueError: If dst does not end in .weights.h5.
    ConversionError: If the checkpoint does not fit the architecture.
  """
  if not dst.endswith(".weights.h5"):
    raise ValueError(f"--dst must end in .weights.h5 (Keras 3), got {dst!r}")
  converter = get_converter(arch)  # fail on a bad arch before reading src
  state_dict = load_checkpoint(src, allow_pickle=allow_pickle)
  model = converter(state_dict, keep_head=keep_head, num_classes=num_classes)
  parent = os.path.dirname(os.path.abspath(dst))
  os.makedirs(parent, exist_ok=True)
  model.save_weights(dst)
  return model


def count_params(model) -> int:
  """Trainable parameters: what torch's `sum(p.numel() for p in
  model.parameters())` counts (BatchNorm running stats are buffers there)."""
  return int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))
