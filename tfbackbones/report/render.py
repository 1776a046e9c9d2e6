"""Tables as CSV (every column, full precision), Markdown and HTML (readable columns).

CSV is for machines and keeps every column. Markdown (the `.md` files and the TensorBoard
text summaries) and HTML show a readable selection. In every rendering a row selected on
test carries `‡` and the footnote says what that means; in CSV the `selection_protocol`
column says it.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable

from tfbackbones.report import records as rec
from tfbackbones.report.tables import NOT_IN_MEAN, Table, finite

ON_TEST_MARK = "‡"
ON_TEST_NOTE = (f"{ON_TEST_MARK} selected on test (the paper's protocol: early stopping and "
                "the best epoch were chosen on the test set, which inflates accuracy); not "
                "comparable with val-split rows.")


def _csv_value(value) -> str:
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{value:.6g}" if finite(value) else ""
  return str(value)


def to_csv(table: Table) -> str:
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(table.columns)
  for row in table.rows:
    writer.writerow([_csv_value(row.get(c)) for c in table.columns])
  return buf.getvalue()


# ---------------------------------------------------------------- readable columns
def _pct(v, digits=2) -> str:
  return f"{v:.{digits}f}" if finite(v) else "–"


def frac(v) -> str:
  return f"{v:.0%}" if v >= 0.01 else f"{v:.1%}"


def mark_text(row: dict, text: str) -> str:
  """`text`, with the selected-on-test mark if the row was selected on test."""
  return f"{text} {ON_TEST_MARK}" if row.get("selection_protocol") == rec.ON_TEST else text


def _mean_std(row: dict) -> str:
  if row["mean_top1"] is None:
    return row.get("status", "–")
  std = f" ± {row['std_top1']:.2f}" if finite(row.get("std_top1")) else ""
  return f"{row['mean_top1']:.2f}{std}"


# How the `n` column names the runs of a cell that are not in its mean
# (NOT_IN_MEAN): a mean over 1 of 3 seeds must not read as a mean over 1.
_NOT_IN_MEAN_WORDS = {"not_result": "not results"}


def _runs(row: dict) -> str:
  extra = [f"{row[k]} {_NOT_IN_MEAN_WORDS.get(k, k)}" for k in NOT_IN_MEAN
           if row.get(k)]
  if row.get("repeated_seeds"):
    extra.append(f"seed {row['repeated_seeds']} repeated")
  return f"{row['n']}" + (f" (+{', '.join(extra)})" if extra else "")


def _delta(v) -> str:
  return f"{v:+.2f}" if finite(v) else "–"


def _p(v) -> str:
  return f"{v:.3g}" if finite(v) else "–"


def _yes(v) -> str:
  return "–" if v is None else "yes" if v else "no"


Column = tuple[str, Callable[[dict], str]]
DISPLAY: dict[str, list[Column]] = {
    "datasets": [
        ("dataset", lambda r: r["dataset"]),
        ("backbone", lambda r: mark_text(r, r["backbone"])),
        ("data", lambda r: frac(r["train_fraction"])),
        ("top-1 mean ± std", _mean_std),
        ("best-of-n", lambda r: _pct(r["best_top1"])),
        ("n", _runs),
        ("source", lambda r: r["source"]),
    ],
    "domains": [
        ("domain", lambda r: r["domain"]),
        ("rank", lambda r: str(r["rank"]) if r["rank"] is not None else "–"),
        ("", lambda r: r["label"]),
        ("backbone", lambda r: mark_text(r, r["backbone"])),
        ("mean top-1", lambda r: _pct(r["mean_top1"])),
        ("datasets", lambda r: f"{r['n_datasets']}/{r['of_datasets']}"),
        ("runs", lambda r: f"{r['runs_in_mean']}/{r['of_runs']}"),
        ("data", lambda r: frac(r["train_fraction"])),
        ("source", lambda r: r["source"]),
    ],
    "fractions": [
        ("dataset", lambda r: r["dataset"]),
        ("backbone", lambda r: mark_text(r, r["backbone"])),
        ("data", lambda r: frac(r["train_fraction"])),
        ("top-1 mean ± std", _mean_std),
        ("n", lambda r: str(r["n"])),
        ("of 100%", lambda r: f"{r['relative_to_full']:.1%}"
         if finite(r["relative_to_full"]) else "–"),
        ("source", lambda r: r["source"]),
    ],
    "resources": [
        ("backbone", lambda r: r["backbone"]),
        ("image size", lambda r: str(r["image_size"] or "–")),
        ("runs", lambda r: str(r["runs"])),
        ("params (M)", lambda r: _p(r["params_m"])),
        ("size (MB)", lambda r: _p(r["model_size_mb"])),
        ("train img/s", lambda r: _pct(r["train_images_per_sec"], 0)),
        ("latency (ms)", lambda r: _pct(r["inference_latency_ms"])),
        ("peak host MB", lambda r: _pct(r["peak_host_memory_mb"], 0)),
        (f"on test {ON_TEST_MARK}", lambda r: str(r["selected_on_test_runs"])),
    ],
    "significance": [
        ("dataset", lambda r: mark_text(r, r["dataset"])),
        ("data", lambda r: frac(r["train_fraction"])),
        ("a (better)", lambda r: r["backbone_a"]),
        ("b", lambda r: r["backbone_b"]),
        ("n", lambda r: str(r["n_pairs"])),
        ("a − b (pp)", lambda r: _delta(r["mean_diff"])),
        ("t-test p", lambda r: _p(r["p_value"])),
        ("Holm p", lambda r: _p(r["p_holm"])),
        ("p<0.05", lambda r: _yes(r["significant"])),
        ("Wilcoxon p", lambda r: _p(r["wilcoxon_p"])),
        ("sign test", lambda r: r["sign_test"] or "–"),
        ("note", lambda r: r["note"]),
        ("source", lambda r: r["source"]),
    ],
}
_REFERENCE_COLUMNS: list[Column] = [
    ("ref", lambda r: _pct(r.get("ref_top1"))),
    ("Δ best", lambda r: _delta(r.get("delta_best"))),
    ("Δ mean", lambda r: _delta(r.get("delta_mean"))),
]


def display_columns(table: Table) -> list[Column]:
  columns = list(DISPLAY[table.name])
  if "ref_top1" in table.columns:
    columns += _REFERENCE_COLUMNS
  return columns


def _notes(table: Table) -> list[str]:
  notes = list(table.notes)
  if any(r.get("selection_protocol") == rec.ON_TEST or r.get("selected_on_test_runs")
         for r in table.rows):
    notes.append(ON_TEST_NOTE)
  return notes


def to_markdown(table: Table, max_rows: int = 0) -> str:
  """A Markdown table (GitHub / TensorBoard flavour) with its notes."""
  columns = display_columns(table)
  rows = table.rows[:max_rows] if max_rows else table.rows
  cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
  lines = [f"## {table.title}", "",
           "| " + " | ".join(h or " " for h, _ in columns) + " |",
           "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(cell(fn(r)) for _, fn in columns) + " |" for r in rows]
  if not table.rows:
    lines.append("| " + " | ".join(["(no rows)"] + [""] * (len(columns) - 1)) + " |")
  if len(rows) < len(table.rows):
    lines.append(f"\n({len(table.rows) - len(rows)} more rows in {table.name}.csv)")
  lines += [""] + [f"* {n}" for n in _notes(table)]
  return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
  """An HTML <table>; rows selected on test and failed cells get their own classes."""
  columns = display_columns(table)
  out = [f'<table class="data" id="table-{table.name}"><thead><tr>']
  out += [f"<th>{html.escape(h)}</th>" for h, _ in columns]
  out.append("</tr></thead><tbody>")
  for r in table.rows:
    classes = []
    if r.get("selection_protocol") == rec.ON_TEST:
      classes.append("on-test")
    if r.get("status") in rec.NOT_RESULTS + ("partial",):
      classes.append(r["status"])
    if r.get("label") in ("Best", "Better", "Good"):
      classes.append(r["label"].lower())
    title = f' title="{html.escape(r["errors"])}"' if r.get("errors") else ""
    out.append(f'<tr class="{" ".join(classes)}"{title}>')
    out += [f"<td>{html.escape(fn(r))}</td>" for _, fn in columns]
    out.append("</tr>")
  if not table.rows:
    out.append(f'<tr><td colspan="{len(columns)}">(no rows)</td></tr>')
  out.append("</tbody></table>")
  out += [f'<p class="note">{html.escape(n)}</p>' for n in _notes(table)]
  return "".join(out)
