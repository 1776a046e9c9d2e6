"""Converters for the Swin-T, SwinV2-T, ViT-B/16 and WaveMix ports.

The Keras ports (`tfbackbones.backbones.transformer_ports`, `.wavemix`) name
every layer after its PyTorch module path, so `common.convert_by_name` maps
standard layers (Conv2D, Dense, LayerNorm, BatchNorm) by name. This module
adds the layers torch and Keras lay out differently:

* Swin attention: `qkv`/`proj` Linears, the `relative_position_bias_table`
  (v1) or `logit_scale` and `cpb_mlp` (v2); the buffers torch saves
  (`relative_position_index`, v2's `relative_coords_table`) are checked
  against what the port computes, so a checkpoint for another window size
  fails loudly instead of mixing up biases;
* ViT: nn.MultiheadAttention's packed `in_proj_weight` (q, k, v stacked),
  `class_token`, `encoder.pos_embedding` (resized torch-exactly if the
  target size differs);
* WaveMix: ConvTranspose2d weights (in, out, kh, kw) -> (kh, kw, out, in).

Converters take `(state_dict, *, keep_head, num_classes, image_size=None)`.
Without `keep_head` the head tensors (`head.*`, `heads.*`, `pool.2.*`) are
dropped and the registered backbone is returned (built at 224, or at the
checkpoint's size for ViT, unless `image_size` says otherwise); with it, the
reference classifier, whose width must equal the checkpoint's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tfbackbones.backbones import transformer_ports
from tfbackbones.convert import common
from tfbackbones.convert.registry import ConversionError, register

# Registered name -> torch prefix of the classifier.
_HEADS = {"swin_t": "head", "swinv2_t": "head", "vit_b_16": "heads.head",
          "wavemix_192_16": "pool.2"}


def assign_conv_transpose(layer, state: common.StateDict, prefix: str) -> list:
  """Conv2DTranspose <- ConvTranspose2d: (in, out, kh, kw) -> (kh, kw, out, in).

  Same axis permutation as a Conv2d weight, but the torch axes mean
  (in, out), not (out, in); the shape check catches a swapped layer.
  """
  key = f"{prefix}.weight"
  weight = state.take(key, context=layer.name)
  if weight.ndim != 4:
    raise ConversionError(
        f"torch tensor {key!r} has shape {tuple(weight.shape)}; Keras layer "
        f"{layer.name!r} needs a 4-D ConvTranspose2d weight.")
  common.assign(layer.kernel, np.transpose(weight, (2, 3, 1, 0)), key,
                layer.name)
  done = [layer.kernel]
  if layer.bias is not None:
    bias_key = f"{prefix}.bias"
    common.assign(layer.bias, state.take(bias_key, context=layer.name),
                  bias_key, layer.name)
    done.append(layer.bias)
  return done


def _check_buffer(state: common.StateDict, key: str, expected: np.ndarray,
                  layer_name: str) -> None:
  """Consumes a torch buffer the port recomputes, and checks it agrees."""
  value = state.take(key, context=layer_name)
  if value.size != expected.size or not np.allclose(
      value.reshape(-1).astype(np.float64),
      expected.reshape(-1).astype(np.float64), atol=1e-6):
    raise ConversionError(
        f"torch buffer {key!r} (shape {tuple(value.shape)}) differs from what "
        f"Keras layer {layer_name!r} computes (shape {expected.shape}): the "
        "checkpoint was made for another window size.")


def assign_swin_attention(layer, state: common.StateDict, prefix: str) -> list:
  """ShiftedWindowAttention(V2) <- qkv, proj, bias table or cpb_mlp."""
  done = common.assign_dense(layer.qkv, state, f"{prefix}.qkv")
  done += common.assign_dense(layer.proj, state, f"{prefix}.proj")
  _check_buffer(state, f"{prefix}.relative_position_index", layer.index,
                layer.name)
  if layer.version == 1:
    key = f"{prefix}.relative_position_bias_table"
    common.assign(layer.relative_position_bias_table,
                  state.take(key, context=layer.name), key, layer.name)
    return done + [layer.relative_position_bias_table]
  _check_buffer(state, f"{prefix}.relative_coords_table", layer.coords_table,
                layer.name)
  key = f"{prefix}.logit_scale"
  common.assign(layer.logit_scale, state.take(key, context=layer.name), key,
                layer.name)
  done.append(layer.logit_scale)
  done += common.assign_dense(layer.cpb_mlp_0, state, f"{prefix}.cpb_mlp.0")
  done += common.assign_dense(layer.cpb_mlp_2, state, f"{prefix}.cpb_mlp.2")
  return done


def assign_self_attention(layer, state: common.StateDict, prefix: str) -> list:
  """nn.MultiheadAttention <- packed in_proj (q; k; v rows) and out_proj."""
  key = f"{prefix}.in_proj_weight"
  weight = state.take(key, context=layer.name)
  if weight.ndim != 2:
    raise ConversionError(f"torch tensor {key!r} has shape "
                          f"{tuple(weight.shape)}; expected (3*D, D).")
  common.assign(layer.in_proj.kernel, weight.T, key, layer.name)
  key = f"{prefix}.in_proj_bias"
  common.assign(layer.in_proj.bias, state.take(key, context=layer.name), key,
                layer.name)
  done = [layer.in_proj.kernel, layer.in_proj.bias]
  return done + common.assign_dense(layer.out_proj, state, f"{prefix}.out_proj")


def _assign_top_level(layer, state: common.StateDict, prefix: str) -> list:
  """Layers owning one torch Parameter named by the layer's own path."""
  parent, _, _ = prefix.rpartition(".")
  return common.assign_generic(layer, state, parent)


def _assigners() -> list[tuple[type, Callable]]:
  import keras

  layers = transformer_ports.layer_classes()
  return [
      (layers.SwinWindowAttention, assign_swin_attention),
      (layers.SelfAttention, assign_self_attention),
      (layers.ClassToken, _assign_top_level),
      (layers.PositionEmbedding, _assign_top_level),
      (keras.layers.Conv2DTranspose, assign_conv_transpose),
  ] + common.default_assigners()


def convert(arch: str, state_dict: Mapping[str, Any], *, keep_head: bool,
            num_classes: int = 1000, image_size: int | None = None):
  """Builds the port `arch` and assigns a torch state_dict to it.

  Args:
    arch: swin_t, swinv2_t, vit_b_16 or wavemix_192_16.
    state_dict: {torch key: array or tensor}; a `module.` prefix is removed.
    keep_head: Return the reference classifier (else the backbone).
    num_classes: Expected head width with keep_head (must match the
      checkpoint); ignored otherwise.
    image_size: Input size to build for; default 224, or for ViT the
      checkpoint's (its position embedding is resized to other sizes).

  Returns:
    The Keras model with every tensor assigned.

  Raises:
    ConversionError: Naming the torch key on a missing, unused or mis-shaped
      tensor.
  """
  tensors = common.unwrap_state_dict(dict(state_dict))
  head = _HEADS[arch]
  if keep_head:
    key = f"{head}.weight"
    if key not in tensors:
      raise ConversionError(f"keep_head=True but the state_dict has no "
                            f"{key!r}.")
    if tensors[key].shape[0] != num_classes:
      raise ConversionError(
          f"torch tensor {key!r} has {tensors[key].shape[0]} classes, but "
          f"num_classes={num_classes}.")
  if arch == "vit_b_16":
    image_size = _vit_size(tensors, image_size)
  elif image_size is None:
    image_size = 224
  model = transformer_ports.build_backbone(
      arch, image_size, include_top=keep_head, num_classes=num_classes)
  state = common.StateDict(tensors)
  if not keep_head:
    state.drop(f"{head}.")
  common.convert_by_name(model, state, assigners=_assigners())
  return model


def _vit_size(tensors: dict[str, np.ndarray], image_size: int | None) -> int:
  """Reads ViT's size from its position embedding; resizes it if asked."""
  key = "encoder.pos_embedding"
  if key not in tensors:
    raise ConversionError(f"Missing tensor {key!r} in the state_dict.")
  pos = tensors[key]
  patch = tensors["conv_proj.weight"].shape[-1] if (
      "conv_proj.weight" in tensors) else 16
  grid = int(round(np.sqrt(pos.shape[1] - 1)))
  if pos.ndim != 3 or grid * grid != pos.shape[1] - 1:
    raise ConversionError(f"torch tensor {key!r} has shape {pos.shape}; "
                          "expected (1, 1 + g*g, D).")
  if image_size is None:
    return grid * patch
  if image_size % patch:
    raise ConversionError(f"ViT image_size {image_size} is not a multiple of "
                          f"the patch size {patch}.")
  tensors[key] = transformer_ports.interpolate_pos_embedding(
      pos, image_size // patch)
  return image_size


def _register(arch: str) -> None:
  def converter(state_dict, *, keep_head: bool, num_classes: int = 1000,
                image_size: int | None = None):
    return convert(arch, state_dict, keep_head=keep_head,
                   num_classes=num_classes, image_size=image_size)
  converter.__name__ = f"convert_{arch}"
  converter.__doc__ = f"Converts a state_dict for {arch}; see `convert`."
  register(arch)(converter)


for _arch in _HEADS:
  _register(_arch)
