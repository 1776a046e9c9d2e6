"""Registry of state_dict -> Keras converters, one per architecture name.

A converter is `fn(state_dict, *, keep_head, num_classes) -> keras.Model`: it builds the
Keras model for the architecture (with the ImageNet head when `keep_head`, else as a
feature extractor / backbone as registered in `tfbackbones.backbones`) and assigns every
tensor of the PyTorch `state_dict` (numpy arrays, keys as torch saves them) to it,
raising `ConversionError` naming the key or layer on any missing, unused or mis-shaped
tensor.
"""

from __future__ import annotations

from collections.abc import Callable

_CONVERTERS: dict[str, Callable] = {}


class ConversionError(ValueError):
  """A state_dict does not fit the architecture; the message names the tensor."""


def register(arch: str):
  def wrap(fn):
    if arch in _CONVERTERS:
      raise ValueError(f"converter for {arch!r} registered twice")
    _CONVERTERS[arch] = fn
    return fn
  return wrap


def get(arch: str) -> Callable:
  if arch not in _CONVERTERS:
    raise ConversionError(f"no converter for {arch!r}; known: {', '.join(names())}")
  return _CONVERTERS[arch]


def names() -> list[str]:
  return sorted(_CONVERTERS)
