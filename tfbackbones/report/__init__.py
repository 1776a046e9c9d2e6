r"""The answer to "which backbone?" as tables, plots and TensorBoard text: a study report.

  python -m tfbackbones.report --workdir=runs/paper --out=runs/paper/report \
      [--import_csv=FILE ...] [--reference=paper|FILE]

Reads every `result.json` under the workdir (and the study manifests, to show runs that
never started), plus CSV rows `backbone,dataset,top1[,domain,train_fraction,seed]`, and
writes to OUT: `datasets`, `domains`, `fractions`, `resources` and `significance` as
`.csv` and `.md`, `report.html` (one self-contained page with every table and plot) and
the tables as TensorBoard text summaries. Modules: `records` (reading), `tables` and
`significance` (statistics), `plots`, `render` (CSV / Markdown / HTML), `page`, and
`generate`, which puts them together.
"""


def build(*args, **kwargs):
  """`generate.build`: imported on use, so `--help` does not wait for TensorFlow."""
  from tfbackbones.report import generate
  return generate.build(*args, **kwargs)
