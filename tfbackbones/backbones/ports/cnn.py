"""What every torchvision CNN port shares: its spec, its weights policy, its converter.

A CNN port is a constructor `f(input_shape, include_top, num_classes, name)` whose
weight-holding layers are named exactly like torchvision's modules (see `blocks`), so
one converter fits them all: build the model, drop the classifier unless it is kept,
and assign the state_dict by name (`convert.common.convert_by_name`). What differs per
family is passed to `register` by the family's module, next to its model: the
torchvision release the spec's ImageNet figures refer to, the classifier's key
prefixes, the aliases a user would try, and any renaming of legacy keys.

The backbone (include_top=False) outputs the spatial feature map that torchvision
average-pools; include_top=True appends global average pooling and the classifier
exactly as torchvision does (for parity tests and for checking ImageNet accuracy of
converted weights). Inputs are normalised outside the model with ImageNet mean/std on
[0, 1] (preprocessing kind "torch"), as torchvision's transforms do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib
from tfbackbones.backbones.ports import spec as port_spec
from tfbackbones.convert import common
from tfbackbones.convert import registry as convert_registry

if TYPE_CHECKING:
  import keras
  import numpy as np

# The start of every CNN port's description.
TV = "Keras port of torchvision"

# name -> constructor; the converters build through this table too, so a spec and
# its converter cannot diverge.
CONSTRUCTORS: dict[str, Callable[..., keras.Model]] = {}
TORCHVISION_MODELS = "https://download.pytorch.org/models/"
# Where torchvision publishes the weights each spec's imagenet_top1 refers to.
TORCHVISION_WEIGHTS: dict[str, str] = {}
# Head tensors per port (dropped unless keep_head).
_HEADS: dict[str, tuple[str, ...]] = {}


def build_port(spec: registry.BackboneSpec, image_size: tuple,
               weights: str) -> keras.Model:
  """Builder for the ported backbones (`BackboneSpec.builder`).

  There are no Keras ImageNet weights to download for these models: the
  pretrained weights are torchvision's, converted once with
  `python -m tfbackbones.convert` into the Keras cache (then `--weights=imagenet`)
  or anywhere (then `--weights=PATH`).

  Args:
    spec: The spec.
    image_size: (height, width); square or not.
    weights: "none", a path to a converted `.weights.h5`, or "imagenet" (the
      converted file in the Keras cache, or an error saying how to make it).

  Returns:
    Functional model named `spec.name`: (B, H, W, 3) -> (B, h, w, C).

  Raises:
    WeightsNotAvailableError: "imagenet" not converted yet, or a missing file.
    WeightsMismatchError: If the file does not fit.
  """
  _, user_path = port_spec.weights_path(
      spec, weights, TORCHVISION_WEIGHTS.get(spec.name, "<torchvision .pth>"))
  model = CONSTRUCTORS[spec.name](
      input_shape=(*image_size, 3), include_top=False,
      name=spec.name)
  if user_path is not None:
    weights_lib.load_weights_file(model, user_path, spec.name)
  return model


def convert_port(name: str, state_dict: Mapping[str, np.ndarray], *,
                 keep_head: bool, num_classes: int,
                 rename: Callable[[str], str] | None = None):
  """Builds the port `name` and assigns a torchvision state_dict by name.

  Args:
    name: A key of `CONSTRUCTORS`.
    state_dict: {torch key: array}.
    keep_head: Build and fill the ImageNet classifier too.
    num_classes: Classes of that classifier (must match the tensors).
    rename: Key rewriting for legacy checkpoints.

  Returns:
    The Keras model (named `name` without the head), any input size.
  """
  state = common.StateDict(state_dict, rename=rename)
  model = CONSTRUCTORS[name](include_top=keep_head,
                             num_classes=num_classes, name=name)
  if not keep_head:
    for prefix in _HEADS[name]:
      state.drop(prefix)
  common.convert_by_name(model, state)
  return model


def _port_converter(name: str, rename: Callable[[str], str] | None = None):
  def convert(state_dict, *, keep_head: bool = False,
              num_classes: int = 1000):
    return convert_port(name, state_dict, keep_head=keep_head,
                        num_classes=num_classes, rename=rename)
  convert.__name__ = f"convert_{name}"
  convert.__doc__ = f"torchvision state_dict -> Keras {name} (see module doc)."
  return convert


def register(name: str, constructor: Callable[..., keras.Model], *,
             torchvision_file: str, heads: tuple[str, ...],
             params_m: float, imagenet_top1: float, feature_dim: int,
             description: str, default_size: int = 224,
             aliases: Sequence[str] = (),
             rename: Callable[[str], str] | None = None) -> None:
  """Registers a CNN port's backbone spec and its converter (under `name` and aliases).

  Args:
    name: Backbone name; also the converter's name.
    constructor: `f(input_shape, include_top, num_classes, name) -> keras.Model`.
    torchvision_file: The torchvision release the ImageNet figures refer to (a file
      under `TORCHVISION_MODELS`).
    heads: Key prefixes of the classifier's tensors.
    params_m: docs/protocol.md's parameter count (millions, with the head).
    imagenet_top1: torchvision's ImageNet top-1 for those weights.
    feature_dim: Channels of the backbone's feature map.
    description: The spec's description.
    default_size: The spec's default input size.
    aliases: Other converter names (torchvision's or keras.applications' names).
    rename: Key rewriting for legacy checkpoints.
  """
  CONSTRUCTORS[name] = constructor
  TORCHVISION_WEIGHTS[name] = TORCHVISION_MODELS + torchvision_file
  _HEADS[name] = heads
  port_spec.register(name, builder=build_port, params_m=params_m,
                     imagenet_top1=imagenet_top1, feature_dim=feature_dim,
                     description=description, default_size=default_size)
  converter = _port_converter(name, rename)
  for arch in (name, *aliases):
    convert_registry.register(arch)(converter)
