"""Shared set-up of the command-line entry points."""

from __future__ import annotations

from absl import flags
from absl import logging as absl_logging

from tfbackbones import quiet

flags.DEFINE_bool("verbose", False, "Show TensorFlow's and TFDS's start-up logs (CUDA "
                  "probing, dataset scanning) and INFO logging; hidden by default.")


def verbose() -> bool:
  """True when the user asked for library logs: --verbose, or absl's --verbosity/-v."""
  values = flags.FLAGS
  return ("verbose" in values and values.verbose) or values["verbosity"].present


def quiet_logs(tensorflow: bool = True) -> None:
  """Keeps the terminal for progress lines: call first in main, before TF is imported.

  `absl.app.run` turns INFO logging on, which buries the per-epoch lines under TF and
  TFDS chatter (checkpoint sharding, dataset construction, progress bars); TensorFlow's
  start-up block and TFDS's folder-scanning warnings are noise too (tfbackbones/quiet.py).
  `--verbose` keeps all of it. `tensorflow=False` quiets without importing TensorFlow
  (or TFDS), for entry points that must run without it.
  """
  if verbose():
    return
  absl_logging.set_verbosity(absl_logging.WARNING)
  quiet.quiet(tensorflow)
  if tensorflow:
    import tensorflow_datasets as tfds
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
