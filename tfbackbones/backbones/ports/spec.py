"""The backbone spec and weights policy every port shares.

Every port is a "tfbackbones" backbone fed ImageNet mean/std inputs ("torch"
preprocessing), whose ImageNet weights are a PyTorch release converted once with
`python -m tfbackbones.convert` into `<keras cache>/models/<name>_notop.weights.h5`:
there is no Keras download. The CNN and transformer ports build their models
differently (`cnn`, `transformer`), but register and find weights through these two
functions, so the two kinds cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib

SOURCE = "tfbackbones"  # implemented in this project (registry.SOURCES)


def register(name: str, *, builder: Callable, params_m: float, imagenet_top1: float,
             feature_dim: int, description: str, default_size: int = 224) -> None:
  """Registers a port's backbone spec (converted weights file named after `name`)."""
  registry.register(registry.BackboneSpec(
      name=name,
      source=SOURCE,
      default_size=default_size,
      preprocessing="torch",
      params_m=params_m,
      imagenet_top1=imagenet_top1,
      feature_dim=feature_dim,
      weights_file=weights_lib.ported_weights_file(name),
      description=description,
      builder=builder,
  ))


def weights_path(spec: registry.BackboneSpec, weights: str,
                 torch_url: str) -> tuple[str, str | None]:
  """Resolves a port's `weights` argument to the file to load.

  Args:
    spec: The port's spec.
    weights: "none", "imagenet" (the converted file in the Keras cache) or a path to
      a converted `.weights.h5`.
    torch_url: The PyTorch release to name when "imagenet" is not converted yet.

  Returns:
    (the parsed choice, the file to load or None for "none").

  Raises:
    WeightsNotAvailableError: "imagenet" not converted yet, or a missing file.
  """
  choice = weights_lib.parse_weights_arg(weights)
  if choice == "imagenet":
    return choice, weights_lib.ported_imagenet_path(spec, torch_url)
  if choice != "none":
    return choice, weights_lib.check_weights_path(choice)
  return choice, None
