"""report.html: one self-contained page (inline CSS, plots as base64 PNG, no network)."""

from __future__ import annotations

import base64
import datetime
import html
from collections.abc import Sequence

from tfbackbones.report import records as rec
from tfbackbones.report import render
from tfbackbones.report.tables import Table

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1400px}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:4px}
table.data{border-collapse:collapse;font-size:13px;margin:8px 0}
table.data th,table.data td{border:1px solid #ddd;padding:3px 8px;text-align:left}
table.data th{background:#f3f3f3;position:sticky;top:0}
tr.on-test td{background:#fff0f0}
tr.failed td,tr.missing td,tr.incomplete td{color:#a00}
tr.partial td{color:#a60}
tr.best td{font-weight:bold;background:#d8f0d8}tr.better td{background:#e6f5e6}
tr.good td{background:#f1faf1}
p.note{font-size:12px;color:#555;margin:2px 0}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:8px 12px;margin:12px 0}
img.plot{max-width:100%;border:1px solid #eee;margin:8px 0;display:block}
.missing-plot{color:#777;font-style:italic}
details summary{cursor:pointer;font-weight:bold}
"""

# Marks each image as loaded or not, so a headless browser's --dump-dom can tell.
_SCRIPT = """
window.addEventListener('load', function () {
  document.querySelectorAll('img.plot').forEach(function (img) {
    img.setAttribute('data-loaded', img.complete && img.naturalWidth > 0 ? 'yes' : 'no');
  });
  document.body.setAttribute('data-ready', 'yes');
});
"""


def image(png: bytes | None, alt: str, missing: str) -> str:
  if png is None:
    return f'<p class="missing-plot">{html.escape(missing)}</p>'
  data = base64.b64encode(png).decode("ascii")
  return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _summary(records: Sequence[rec.Record], workdir: str | None,
             sources: Sequence[str]) -> str:
  runs = [r for r in records if r.source == rec.RUNS]
  counts = {s: sum(r.status == s for r in runs) for s in (rec.FINISHED,) + rec.NOT_RESULTS}
  counts = {s: n for s, n in counts.items() if n or s in (rec.FINISHED, rec.FAILED)}
  parts = [f"<b>{len(runs)}</b> runs in <code>{html.escape(workdir or '-')}</code>: "
           + ", ".join(f"{n} {s}" for s, n in counts.items())]
  imported = sorted({r.source for r in records if r.source != rec.RUNS})
  if imported:
    parts.append("imported: " + ", ".join(html.escape(s) for s in imported))
  if sources:
    parts.append("reference: " + ", ".join(html.escape(s) for s in sources))
  return "<p>" + "; ".join(parts) + "</p>"


def _failures(records: Sequence[rec.Record]) -> str:
  failed = [r for r in records
            if r.status in (rec.FAILED, rec.DIVERGED, rec.DEGENERATE, rec.UNREADABLE)]
  if not failed:
    return "<p>No failed runs.</p>"
  items = "".join(f"<li><code>{html.escape(r.path)}</code> ({r.status}): "
                  f"{html.escape(r.error or '')}</li>" for r in failed)
  return f"<ul>{items}</ul>"


def top_three(domain_rows: Sequence[dict]) -> str:
  """The paper's Table 1: Best / Better / Good per domain (ties share a label)."""
  from tfbackbones.report.tables import LABELS, OVERALL
  domains = sorted({r["domain"] for r in domain_rows}, key=lambda d: (d == OVERALL, d))
  if not domains:
    return ""
  out = ['<table class="data" id="table-top3"><thead><tr><th></th>']
  out += [f"<th>{html.escape(d)}</th>" for d in domains]
  out.append("</tr></thead><tbody>")
  for rank, label in sorted(LABELS.items()):
    out.append(f'<tr class="{label.lower()}"><td>{label}</td>')
    for d in domains:
      names = [render.mark_text(r, r["backbone"]) for r in domain_rows
               if r["domain"] == d and r["rank"] == rank]
      out.append(f"<td>{html.escape(' = '.join(names)) or '–'}</td>")
    out.append("</tr>")
  out.append("</tbody></table>")
  return "".join(out)


def build_page(*, tables: dict, plots: dict, records: Sequence[rec.Record],
               workdir: str | None, reference: str | None,
               primary: tuple | None, ranking: Sequence[dict] = (),
               extra_html: str = "") -> str:
  """The whole page.

  Args:
    tables: {name: Table}.
    plots: {name: PNG bytes or None}.
    records: every record (for the summary and the failures).
    workdir, reference: shown in the summary.
    primary: the (source, protocol) the plots show.
    ranking: the domain rows of the primary series at the plotted fraction (Table 1).
    extra_html: further sections, placed before Failures (e.g. the recommender's).
  """
  def section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{body}"

  def table(name: str) -> str:
    t: Table = tables[name]
    return render.to_html(t)

  warn = ""
  if any(r.selected_on_test for r in records):
    warn = f'<div class="warn">{html.escape(render.ON_TEST_NOTE)}</div>'
  primary_text = ("" if primary is None else
                  f"<p>Plots show <b>{html.escape(primary[0])}</b> "
                  f"({html.escape(primary[1])}).</p>")
  body = [
      "<h1>Which backbone to use? — tfbackbones report</h1>",
      _summary(records, workdir, [reference] if reference else []), warn, primary_text,
      section("Domain ranking", top_three(ranking)
              + image(plots.get("domains"), "per-domain bars", "No domain scores yet.")
              + "<details><summary>Every backbone in every domain</summary>"
              + table("domains") + "</details>"),
      section("Per dataset", image(plots.get("heatmap"), "heat map backbone x dataset",
                                   "No finished runs yet.") + table("datasets")),
      section("Training data", image(plots.get("fractions"), "accuracy vs training fraction",
                                     "No run below 100% of the training data.")
              + table("fractions")),
      section("Cost", image(plots.get("params"), "accuracy vs parameters",
                            "No parameter counts yet.")
              + image(plots.get("latency"), "accuracy vs latency", "No latency or speed yet.")
              + table("resources")),
      section("Deployment", "".join(
          image(png, name, "") for name, png in sorted(plots.items())
          if name.startswith("deployment_")) + table("deployment")),
      section("Significance",
              "<details><summary>Paired comparisons over seeds "
              f"({len(tables['significance'].rows)} pairs)</summary>"
              + table("significance") + "</details>"),
      extra_html,
      section("Failures", _failures(records)),
      f'<p class="note">Generated {datetime.datetime.now().isoformat(timespec="seconds")} '
      "by python -m tfbackbones.report.</p>",
  ]
  return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<title>tfbackbones report</title>"
          f"<style>{_CSS}</style></head><body>{''.join(body)}"
          f"<script>{_SCRIPT}</script></body></html>")
