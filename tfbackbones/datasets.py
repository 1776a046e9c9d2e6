r"""The dataset catalog as a table, with data presence; and preparing datasets.

  python -m tfbackbones.datasets [--data_dir=DIR]
  python -m tfbackbones.datasets --prepare=sklearn_digits,cifar10 [--data_dir=DIR]

`--prepare` runs TFDS's download_and_prepare through the Python API (the `tfds` command
line tool of tensorflow-datasets 4.9.10 needs apache_beam to start). Run it where the
network works, then copy `DIR` to offline machines and pass `--data_dir`.
"""

from __future__ import annotations

import sys

from absl import app, flags

from tfbackbones import cli, imagesize
from tfbackbones.data import catalog

FLAGS = flags.FLAGS


def _define_flags():
  """Flags of the script only: importing `table` (tests, tools) defines none."""
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default ~/tensorflow_datasets).")
  flags.DEFINE_list("prepare", [], "Datasets to download and prepare now.")
  flags.DEFINE_string("manual_dir", None, "Manually downloaded files (default "
                      "<data_dir>/downloads/manual).")


def presence(spec: catalog.DatasetSpec, data_dir: str | None) -> str:
  """'yes' if prepared under data_dir, else a short reason."""
  from tfbackbones.data import pipeline
  try:
    builder = pipeline.tfds_builder(spec, data_dir)
  except Exception as e:
    return f"no ({type(e).__name__})"
  return "yes" if builder.is_prepared() else "no"


def table(data_dir: str | None) -> str:
  header = ("name", "tfds", "domain", "classes", "train split", "test split", "size",
            "augment", "prepared")
  rows = []
  for s in catalog.specs():
    test = s.test_split or f"{s.test_fraction:.0%} of train (stratified, seed {s.test_split_seed})"
    rows.append((s.name, s.tfds_name, s.domain, str(s.num_classes), s.train_split, test,
                 imagesize.text(s.image_size), s.augment, presence(s, data_dir)))
  rows.append(("folder:/path", "image_folder", "your own", "subfolders",
               "train/ or 80%", "test/ or 20% (stratified)", "256", "none",
               "prepared on first use"))
  widths = [max(len(x) for x in col) for col in zip(header, *rows)]
  fmt = lambda row: "  ".join(x.ljust(w) for x, w in zip(row, widths))  # noqa: E731
  return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def main(argv):
  del argv
  cli.quiet_logs()  # before TensorFlow is imported
  from tfbackbones.data import pipeline
  for name in FLAGS.prepare:
    try:
      builder = pipeline.get_builder(catalog.get(name), FLAGS.data_dir, download=True,
                                     manual_dir=FLAGS.manual_dir)
    except (catalog.UnknownDatasetError, pipeline.DataNotAvailableError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    print(f"{name}: prepared in {builder.data_dir}")
  print(table(FLAGS.data_dir))
  print("\nvalidation split: --val_fraction of train, stratified and seeded (--split_seed); "
        "prepare missing data with --prepare=NAME on a machine with network access.")
  return 0


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=cli.parse_flags)
