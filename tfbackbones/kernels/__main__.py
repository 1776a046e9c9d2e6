"""`python -m tfbackbones.kernels`: build the fused CPU kernels now.

An absl entry point, so `--help`/`--helpfull` print help instead of starting a build.
"""

import sys

from absl import app

from tfbackbones import cli


def main(argv) -> int:
  del argv  # cli.parse_flags refuses words that are not flags
  cli.quiet_logs()  # before TensorFlow is imported (the kernels package loads it)
  from tfbackbones import kernels
  try:
    path = kernels.build()
  except kernels.KernelBuildError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"fused CPU kernels: {path}")
  return 0 if kernels.load() is not None else 1


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
