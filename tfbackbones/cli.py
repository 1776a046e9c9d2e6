"""Shared set-up of the command-line entry points."""

from __future__ import annotations

from absl import flags
from absl import logging as absl_logging


def quiet_logs() -> None:
  """Keeps the terminal for progress lines: WARNING unless --verbosity was given.

  `absl.app.run` turns INFO logging on, which buries the per-epoch lines under TF and
  TFDS chatter (checkpoint sharding, dataset construction, progress bars).
  """
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  tfds.disable_progress_bar()
