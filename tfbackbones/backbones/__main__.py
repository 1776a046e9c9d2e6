"""Prints the backbone registry: `python -m tfbackbones.backbones`."""

from __future__ import annotations

from tfbackbones.backbones import table


def main() -> None:
  """Prints the registry table (builds nothing, so it is fast)."""
  print(table.render())


if __name__ == "__main__":
  main()
