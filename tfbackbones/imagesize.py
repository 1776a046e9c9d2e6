"""Input sizes: square (`448`) or not (`672x448`), one parser for flags, configs and code.

Why a module: the paper trains BreakHis at 672x448 (its slides are 700x460, wider than
tall) and everything else square. A size travels from the flag through the config, the
catalog, the pipeline (resize, cache estimate, evaluation padding) and every backbone
builder, and each of them must agree on which number is the height.

Conventions:
  * Inside the code a size is a tuple `(height, width)`, TensorFlow's order.
  * Written as text (flags, config.json, result.json, tables) a non-square size is
    `WIDTHxHEIGHT`, as the paper, image viewers and PIL write it: `672x448` is 672 pixels
    wide and 448 high. A square size is written as one number, so square configs keep
    the plain integers they always had.
  * `0` (or None or "") means "the dataset's protocol size".
"""

from __future__ import annotations

import re

Size = tuple  # (height, width), both ints
SizeLike = int | str | tuple | list | None

_TEXT = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*$")


class SizeError(ValueError):
  """A size could not be parsed; the message shows the accepted forms."""


def parse(value: SizeLike) -> Size | None:
  """Returns `(height, width)`, or None for 0/None/"" (the protocol size).

  Accepts an int (square), a string `"448"` or `"WIDTHxHEIGHT"` (`"672x448"`), or a
  `(height, width)` tuple/list.
  """
  if value is None or isinstance(value, bool):
    if value is None:
      return None
    raise SizeError(f"image size {value!r} is not a size.")
  if isinstance(value, (tuple, list)):
    if len(value) != 2 or not all(_is_int(v) for v in value):
      raise SizeError(f"image size {value!r}: a tuple must be (height, width) integers.")
    height, width = int(value[0]), int(value[1])
  elif _is_int(value):
    height = width = int(value)
  elif isinstance(value, str):
    if not value.strip():
      return None
    match = _TEXT.match(value)
    if not match:
      raise SizeError(f"image size {value!r} is not a size: write one number for a square "
                      "(`448`) or WIDTHxHEIGHT (`672x448`), or 0 for the dataset's size.")
    if match.group(2) is None:
      height = width = int(match.group(1))
    else:
      width, height = int(match.group(1)), int(match.group(2))
  else:
    raise SizeError(f"image size {value!r} is not a size.")
  if height == 0 and width == 0:
    return None
  if height <= 0 or width <= 0:
    raise SizeError(f"image size {value!r}: height and width must both be positive.")
  return (height, width)


def _is_int(value) -> bool:
  try:
    return not isinstance(value, bool) and int(value) == value and not isinstance(value, str)
  except (TypeError, ValueError):
    return False


def require(value: SizeLike) -> Size:
  """Like `parse`, but a concrete size is required (builders, resize)."""
  size = parse(value)
  if size is None:
    raise SizeError(f"an image size is required here, got {value!r}.")
  return size


def text(value: SizeLike, both_sides: bool = False) -> str:
  """`448` or `672x448` (WIDTHxHEIGHT); `0` for the protocol size.

  `both_sides=True` writes squares as `448x448` too, for messages that contrast sizes.
  """
  size = parse(value)
  if size is None:
    return "0"
  height, width = size
  return str(height) if height == width and not both_sides else f"{width}x{height}"


def canonical(value: SizeLike) -> int | str:
  """The config/JSON form: an int when square (or 0), else the `WIDTHxHEIGHT` string."""
  size = parse(value)
  if size is None:
    return 0
  height, width = size
  return height if height == width else f"{width}x{height}"


def resolve(requested: SizeLike, protocol: SizeLike) -> Size:
  """The size a run uses: `requested` unless it is 0, then the dataset's protocol size."""
  return parse(requested) or require(protocol)


def pixels(value: SizeLike) -> int:
  height, width = require(value)
  return height * width
