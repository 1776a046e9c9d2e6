"""Converts a PyTorch checkpoint into Keras 3 weights for a tfbackbones model.

Usage:
  python -m tfbackbones.convert --arch=regnety_032 --src=model.pth \
      --dst=model.weights.h5 [--keep_head] [--num_classes=1000]
  python -m tfbackbones.convert --list

Without --keep_head the output loads into the registered backbone:
`tfbackbones.backbones.get(NAME).build(size, weights="model.weights.h5")`,
or `--backbone=NAME --weights=model.weights.h5` on the training command line.
With --keep_head it fits the converter's ImageNet classifier instead (for
checking ImageNet accuracy against the PyTorch original).

Why a separate step rather than loading .pth files at training time: torch is
an optional extra (`pip install -e '.[parity]'`), needed once per checkpoint;
training then reads plain Keras weights on any machine (TPU VMs included).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from tfbackbones import cli

_ARCH = flags.DEFINE_string(
    "arch", None, "Converter name, e.g. regnety_032, convnext_tiny (--list "
    "shows all).")
_SRC = flags.DEFINE_string(
    "src", None, "PyTorch checkpoint: a state_dict, or a dict holding one "
    "under 'state_dict' / 'model' (.pth, .pt, .bin, .safetensors).")
_DST = flags.DEFINE_string("dst", None, "Output file, ending in .weights.h5.")
_KEEP_HEAD = flags.DEFINE_bool(
    "keep_head", False, "Keep the classifier (ImageNet head) instead of "
    "writing backbone-only weights.")
_NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", 1000, "Classes of the kept head (with --keep_head); must "
    "match the checkpoint.")
_ALLOW_PICKLE = flags.DEFINE_bool(
    "allow_pickle", False, "Let torch unpickle arbitrary Python objects in "
    "--src (only for files you trust).")
_LIST = flags.DEFINE_bool("list", False, "List the converters and exit.")


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  # Imported here so that --help is instant.
  from tfbackbones.convert import (
    common,
    registry,
  )

  if _LIST.value:
    errors = common.load_converter_modules()
    print("\n".join(registry.names()))
    for module, error in errors.items():
      print(f"(module {module} failed to import: {error})", file=sys.stderr)
    return 0
  missing = [f"--{f.name}" for f in (_ARCH, _SRC, _DST) if not f.value]
  if missing:
    print(f"error: {', '.join(missing)} required (see --help).", file=sys.stderr)
    return cli.USAGE_EXIT
  try:
    model = common.convert_file(
        _ARCH.value, _SRC.value, _DST.value, keep_head=_KEEP_HEAD.value,
        num_classes=_NUM_CLASSES.value, allow_pickle=_ALLOW_PICKLE.value)
  except (ImportError, FileNotFoundError, ValueError) as e:
    # ConversionError is a ValueError: print the message, not a traceback.
    print(f"error: {e}", file=sys.stderr)
    return cli.USAGE_EXIT
  params = common.count_params(model)
  print(f"Wrote {_DST.value}: {len(model.weights)} variables, "
        f"{params / 1e6:.2f}M trainable parameters.")
  if _KEEP_HEAD.value:
    print(f"It fits the {model.name!r} ImageNet-head model "
          "(converter with keep_head=True), not the backbone.")
  else:
    print(f"Use it with: --backbone={model.name} --weights={_DST.value}")
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
