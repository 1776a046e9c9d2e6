"""What the Swin-T, SwinV2-T, ViT-B/16 and WaveMix-192/16 ports share: spec, weights
policy and converter.

Why ports: Keras has none of these models (keras-hub's Swin/ViT have other layer
layouts and their presets need the network; the `swin_tiny`/`vit_b16` hub specs are
fixed-size SavedModels that cannot train at random init or at 256 px). The paper
fine-tunes the torchvision models (WaveMix: the official code), so the ports
(`swin`, `vit`, `wavemix`) mirror that layer structure module for module: every Keras
layer that holds weights is named after the PyTorch module path (`features.1.0.attn`,
`encoder.layers.encoder_layer_3.mlp.0`, ...), so `common.convert_by_name` maps standard
layers (Conv2D, Dense, LayerNorm, BatchNorm) by name, and each family module adds the
assigners for the layers torch and Keras lay out differently.

A family registers a `Port` with `register`; this module then gives it the same spec
shape, weights policy and converter as the others:

* Spec facts: params_m and imagenet_top1 are docs/protocol.md's (the torchvision weight
  tables; WaveMix: the paper's 75.32 although the released file is named 75.06). All
  four take ImageNet mean/std inputs ("torch" preprocessing), default size 224.
* Pretrained weights: `weights="imagenet"` loads
  `$KERAS_HOME/models/<name>_notop.weights.h5`, written by the converter from the
  torchvision (or official WaveMix) `.pth` file; there is nothing to download offline.
* Converters take `(state_dict, *, keep_head, num_classes, image_size=None)`. Without
  `keep_head` the head tensors (`head.*`, `heads.*`, `pool.2.*`) are dropped and the
  registered backbone is returned (built at 224, or at the checkpoint's size for ViT,
  unless `image_size` says otherwise); with it, the reference classifier, whose width
  must equal the checkpoint's.

Relation to the hub specs: `swin_tiny` (hub) and `swin_t` (here) are the same
architecture and ImageNet top-1; `vit_b16` (hub, ImageNet-21k -> 1k, [-1, 1] inputs,
224 px only) and `vit_b_16` (here, torchvision's ImageNet-1k recipe, ImageNet mean/std)
differ in weights and input scaling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tfbackbones import imagesize
from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib
from tfbackbones.backbones.ports import spec as port_spec
from tfbackbones.convert import common
from tfbackbones.convert import registry as convert_registry
from tfbackbones.convert.registry import ConversionError

if TYPE_CHECKING:
  import keras

@dataclasses.dataclass(frozen=True)
class Port:
  """What differs between the transformer-style ports.

  Attributes:
    build: `f(image_size, *, include_top, num_classes, name) -> keras.Model`.
    torch_url: Where the PyTorch weights the spec's ImageNet top-1 refers to are.
    head: torch prefix of the classifier (dropped unless keep_head).
    assigners: Returns the family's (Keras layer type, assigner) pairs, tried before
      `common.default_assigners()`.
    checkpoint_size: ViT: `f(tensors, image_size) -> size` reads the size a checkpoint
      was made for (and resizes its position embedding to `image_size`); None builds
      at `image_size` or 224.
    resize_copy: ViT: `f(source, target)` copies weights converted at 224 px into a
      model of another size; None loads converted files as they are.
  """
  build: Callable[..., keras.Model]
  torch_url: str
  head: str
  assigners: Callable[[], list]
  checkpoint_size: Callable[[dict, int | None], int] | None = None
  resize_copy: Callable[[keras.Model, keras.Model], None] | None = None


_PORTS: dict[str, Port] = {}
# Registered name -> torch prefix of the classifier.
_HEADS: dict[str, str] = {}


def build_port(spec: registry.BackboneSpec, image_size,
               weights: str) -> keras.Model:
  """Builder shared by the four ports: build, then load weights if asked.

  Args:
    spec: The port's spec.
    image_size: (height, width), or an int for a square input.
    weights: "imagenet", "none" or a weights file path.

  Returns:
    The backbone, named `spec.name`.
  """
  port = _PORTS[spec.name]
  choice, path = port_spec.weights_path(spec, weights, port.torch_url)
  image_size = imagesize.require(image_size)
  model = build_backbone(spec.name, image_size)
  if path is None:
    return model
  if (port.resize_copy is not None and choice == "imagenet"
      and image_size != (224, 224)):
    source = build_backbone(spec.name, 224)
    weights_lib.load_weights_file(source, path, spec.name)
    port.resize_copy(source, model)
  else:
    weights_lib.load_weights_file(model, path, spec.name)
  return model


def build_backbone(name: str, image_size, *, include_top: bool = False,
                   num_classes: int = 1000) -> keras.Model:
  """Builds a port by registry name (feature extractor or ImageNet model).

  Args:
    name: One of swin_t, swinv2_t, vit_b_16, wavemix_192_16.
    image_size: (height, width), or an int for a square input.
    include_top: Add the reference classifier head (for conversion tests).
    num_classes: Width of that head.

  Returns:
    Functional model named `name` (backbone) or `name + "_classifier"`.
  """
  if name not in _PORTS:
    raise ValueError(f"Unknown port {name!r}.")
  model_name = f"{name}_classifier" if include_top else name
  return _PORTS[name].build(image_size, include_top=include_top,
                            num_classes=num_classes, name=model_name)


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
  port = _PORTS[arch]
  tensors = common.unwrap_state_dict(dict(state_dict))
  head = port.head
  if keep_head:
    key = f"{head}.weight"
    if key not in tensors:
      raise ConversionError(f"keep_head=True but the state_dict has no "
                            f"{key!r}.")
    if tensors[key].shape[0] != num_classes:
      raise ConversionError(
          f"torch tensor {key!r} has {tensors[key].shape[0]} classes, but "
          f"num_classes={num_classes}.")
  if port.checkpoint_size is not None:
    image_size = port.checkpoint_size(tensors, image_size)
  elif image_size is None:
    image_size = 224
  model = build_backbone(
      arch, image_size, include_top=keep_head, num_classes=num_classes)
  state = common.StateDict(tensors)
  if not keep_head:
    state.drop(f"{head}.")
  common.convert_by_name(
      model, state, assigners=port.assigners() + common.default_assigners())
  return model


def register(name: str, port: Port, *, params_m: float, imagenet_top1: float,
             feature_dim: int, description: str) -> None:
  """Registers a port's backbone spec and its converter under `name`."""
  _PORTS[name] = port
  _HEADS[name] = port.head
  port_spec.register(name, builder=build_port, params_m=params_m,
                     imagenet_top1=imagenet_top1, feature_dim=feature_dim,
                     description=description)

  def converter(state_dict, *, keep_head: bool, num_classes: int = 1000,
                image_size: int | None = None):
    return convert(name, state_dict, keep_head=keep_head,
                   num_classes=num_classes, image_size=image_size)
  converter.__name__ = f"convert_{name}"
  converter.__doc__ = f"Converts a state_dict for {name}; see `convert`."
  convert_registry.register(name)(converter)

