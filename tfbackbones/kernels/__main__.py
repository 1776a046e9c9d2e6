"""`python -m tfbackbones.kernels`: build the fused CPU kernels now."""

import sys

from tfbackbones import kernels


def main() -> int:
  try:
    path = kernels.build()
  except kernels.KernelBuildError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"fused CPU kernels: {path}")
  return 0 if kernels.load() is not None else 1


if __name__ == "__main__":
  sys.exit(main())
