"""Converters from torchvision CNN state_dicts to tfbackbones Keras models.

Registered architecture names are the backbone names the weights load into
(`tfbackbones.backbones.get(name).build(size, weights=PATH)`):

  regnety_032, resnext50_32x4d, shufflenet_v2_x2_0, densenet161,
  resnet50_torchvision, efficientnetv2_s_torchvision,
  mobilenet_v3_large_torchvision  -> the ports in backbones/cnn_ports.py

plus aliases for the keras.applications names a user of the paper would try
first: `resnet50`, `efficientnetv2_s`, `mobilenet_v3_large` convert to the
*_torchvision ports, because torchvision's weights do not fit the Keras
networks of those names (see cnn_ports.py for why), and
`regnet_y_3_2gf` / `efficientnet_v2_s` (torchvision's own names). The command
line prints which backbone the result belongs to.

(ConvNeXt-Tiny's converter is in backbones/ports/convnext.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tfbackbones.backbones import cnn_ports
from tfbackbones.convert import common
from tfbackbones.convert.registry import register

# Head tensors per port (dropped unless keep_head).
_HEADS: dict[str, tuple[str, ...]] = {
    "regnety_032": ("fc.",),
    "resnext50_32x4d": ("fc.",),
    "shufflenet_v2_x2_0": ("fc.",),
    "densenet161": ("classifier.",),
    "resnet50_torchvision": ("fc.",),
    "efficientnetv2_s_torchvision": ("classifier.",),
    "mobilenet_v3_large_torchvision": ("classifier.",),
}

# torchvision's released DenseNet files use pre-0.4 names ('norm.1' for
# 'norm1'); torchvision renames them on load with this very pattern.
_DENSENET_LEGACY = common.regex_renamer([(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var))$", r"\1\2")])


def convert_port(name: str, state_dict: Mapping[str, np.ndarray], *,
                 keep_head: bool, num_classes: int,
                 rename: Callable[[str], str] | None = None):
  """Builds the port `name` and assigns a torchvision state_dict by name.

  Args:
    name: A key of `cnn_ports.CONSTRUCTORS`.
    state_dict: {torch key: array}.
    keep_head: Build and fill the ImageNet classifier too.
    num_classes: Classes of that classifier (must match the tensors).
    rename: Key rewriting for legacy checkpoints.

  Returns:
    The Keras model (named `name` without the head), any input size.
  """
  state = common.StateDict(state_dict, rename=rename)
  model = cnn_ports.CONSTRUCTORS[name](include_top=keep_head,
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


def _register(names: Sequence[str], fn) -> None:
  for arch in names:
    register(arch)(fn)


_register(["regnety_032", "regnet_y_3_2gf"], _port_converter("regnety_032"))
_register(["resnext50_32x4d"], _port_converter("resnext50_32x4d"))
_register(["shufflenet_v2_x2_0"], _port_converter("shufflenet_v2_x2_0"))
_register(["densenet161"],
          _port_converter("densenet161", rename=_DENSENET_LEGACY))
_register(["resnet50_torchvision", "resnet50"],
          _port_converter("resnet50_torchvision"))
_register(["efficientnetv2_s_torchvision", "efficientnetv2_s",
           "efficientnet_v2_s"],
          _port_converter("efficientnetv2_s_torchvision"))
_register(["mobilenet_v3_large_torchvision", "mobilenet_v3_large"],
          _port_converter("mobilenet_v3_large_torchvision"))
