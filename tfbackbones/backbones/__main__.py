"""Prints the backbone registry: `python -m tfbackbones.backbones`.

An absl entry point like the others, so `--help`/`--helpfull` answer instead of being
ignored; it takes no flags of its own and builds nothing, so it is fast.
"""

from __future__ import annotations

from absl import app

from tfbackbones.backbones import table


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  print(table.render())


if __name__ == "__main__":
  app.run(main)
