"""Prints the backbone registry: `python -m tfbackbones.backbones`.

An absl entry point like the others, so `--help`/`--helpfull` answer instead of being
ignored; it takes no flags of its own and builds nothing, so it is fast.
"""

from __future__ import annotations

from absl import app

from tfbackbones import cli
from tfbackbones.backbones import table


def main(argv) -> None:
  del argv  # cli.parse_flags refuses words that are not flags
  print(table.render())


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
