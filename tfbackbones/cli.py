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


def flagfiles_first(argv: list[str]) -> list[str]:
  """Moves every `--flagfile` to the front, so that a flag on the command line wins.

  absl applies flags in order and expands a flagfile where it stands, so
  `--max_epochs=5 --flagfile=flags/paper.flags` would silently take the flagfile's
  value. With flagfiles first, what the user typed always wins, wherever it stands.
  """
  head, files, rest, i = argv[:1], [], [], 1
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--flagfile=") or arg.startswith("-flagfile="):
      files.append(arg)
    elif arg in ("--flagfile", "-flagfile") and i + 1 < len(argv):
      files += [arg, argv[i + 1]]
      i += 1
    else:
      rest.append(arg)
    i += 1
  return head + files + rest
