"""Shared set-up of the command-line entry points."""

from __future__ import annotations

import sys

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


# The exit code of a command line the program cannot use (a typo'd flag, a bad value):
# what every entry point returns for the user's own mistakes (`error:` lines), and apart
# from 1, which `train` and `experiments.run` keep for runs that are not results.
USAGE_EXIT = 2
# 128 + SIGINT, as a shell reports a process stopped by Ctrl-C.
INTERRUPTED_EXIT = 130


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing for an entry point that takes only flags.

  Use as `app.run(main, flags_parser=cli.parse_flags)`. absl's own parser prints
  "FATAL Flags parsing error" on two lines and exits 1, the code `train` gives a run that
  trained but is not a result; a typo'd flag is the user's mistake like any other, so it
  gets the same one `error:` line and exit 2. absl's message already names the flag and,
  for a near miss, suggests the right one. A word that is not a flag is refused the same
  way: `--set weights=none image_size=32` would otherwise drop `image_size=32` silently
  in the entry points that ignore their arguments.
  """
  args = parse_flags_and_args(argv)
  if len(args) > 1:
    _usage_error(f"unexpected argument(s) {' '.join(args[1:])!r}: every setting is a "
                 "--flag (and each KEY=VALUE needs its own --set)")
  return args


def parse_flags_and_args(argv: list[str]) -> list[str]:
  """`parse_flags` for an entry point that takes arguments too (predict's images)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _usage_error(" ".join(str(e).split()))


def _usage_error(message: str) -> None:
  print(f"error: {message} (--helpshort or --helpfull list the flags)", file=sys.stderr)
  sys.exit(USAGE_EXIT)


def interrupted(workdir: str) -> None:
  """Ctrl-C in a training entry point: one line saying the work is kept, then exit 130.

  The engine's workdir is built to survive a kill at any point (docs/workdir.md), so an
  interrupt is not an error, and the KeyboardInterrupt traceback from deep in the loop
  only made it look like one.
  """
  print(f"interrupted: {workdir} keeps every checkpointed epoch; rerun the same command "
        "to resume", file=sys.stderr)
  sys.exit(INTERRUPTED_EXIT)
