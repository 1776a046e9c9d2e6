"""Initialisers shared by the ports of PyTorch models (transformer_ports, wavemix).

A module of its own so that the ports depend on it and not on each other (no import
cycle between transformer_ports and wavemix).
"""

from __future__ import annotations

import math
from typing import Any


def torch_conv_init(fan_in: int) -> dict[str, Any]:
  """Initializers equal in distribution to torch's Conv/Linear defaults.

  torch draws both weight (kaiming_uniform, a=sqrt(5)) and bias from
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)); used where the reference keeps them, so that a
  port trained from scratch starts where the reference would.

  Args:
    fan_in: Fan-in of the torch layer (in_channels * kernel area).

  Returns:
    Keyword arguments for a Keras Conv/Dense layer.
  """
  import keras

  bound = 1 / math.sqrt(fan_in)
  return dict(
      kernel_initializer=keras.initializers.VarianceScaling(
          1 / 3, mode="fan_in", distribution="uniform"),
      bias_initializer=keras.initializers.RandomUniform(-bound, bound))
