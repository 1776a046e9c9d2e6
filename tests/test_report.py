"""The study report: aggregation, ranking, CSV import, significance, files, headless render.

Results are built by hand here (fake result.json files in the engine's schema), so every
expected number below is computed on paper; tests/test_studies.py builds a report from
real engine runs.
"""

import csv
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from tfbackbones.report import generate, render, significance, tables
from tfbackbones.report import records as rec
from tfbackbones.results import RunResult

CHROMIUM = "/usr/bin/chromium"


def _record(backbone, dataset, seed, top1, *, status=rec.FINISHED, domain="A",
            fraction=1.0, source=rec.RUNS, protocol=rec.VAL_SPLIT):
  return rec.Record(backbone=backbone, dataset=dataset, domain=domain,
                    train_fraction=fraction, seed=seed, status=status, top1=top1,
                    selection_protocol=protocol, source=source,
                    error="boom" if status == rec.FAILED else None)


def _hand_records():
  """d1, d2 in domain A; d3 in domain B. Expected values are worked out in the tests."""
  return [
      _record("x", "d1", 0, 90.0), _record("x", "d1", 1, 92.0), _record("x", "d1", 2, 94.0),
      _record("y", "d1", 0, 91.0), _record("y", "d1", 1, 93.0),
      _record("y", "d1", 2, None, status=rec.FAILED),
      _record("z", "d1", 0, None, status=rec.FAILED),
      _record("x", "d2", 0, 80.0), _record("y", "d2", 0, 82.0), _record("z", "d2", 0, 70.0),
      _record("x", "d3", 0, 60.0, domain="B"), _record("y", "d3", 0, 60.0, domain="B"),
      _record("z", "d3", 0, None, status=rec.MISSING, domain="B"),
  ]


def _by(rows, **keys):
  found = [r for r in rows if all(r[k] == v for k, v in keys.items())]
  assert len(found) == 1, (keys, found)
  return found[0]


def test_dataset_cells_mean_std_best_and_failed_runs_are_kept():
  rows = tables.datasets_table(_hand_records()).rows
  x = _by(rows, dataset="d1", backbone="x")
  assert (x["n"], x["mean_top1"], x["best_top1"], x["seeds"]) == (3, 92.0, 94.0, "0 1 2")
  assert x["std_top1"] == pytest.approx(2.0)           # sample std of 90, 92, 94
  assert x["status"] == "ok" and x["failed"] == 0
  y = _by(rows, dataset="d1", backbone="y")
  assert (y["n"], y["mean_top1"], y["failed"], y["status"]) == (2, 92.0, 1, "partial")
  assert y["std_top1"] == pytest.approx(math.sqrt(2))
  z = _by(rows, dataset="d1", backbone="z")              # failed: shown, not dropped
  assert (z["n"], z["mean_top1"], z["status"], z["failed"]) == (0, None, "failed", 1)
  assert z["errors"] == "boom"
  assert _by(rows, dataset="d3", backbone="z")["status"] == "missing"
  one = _by(rows, dataset="d2", backbone="z")
  assert one["n"] == 1 and one["std_top1"] is None and one["mean_top1"] == 70.0
  # Best mean first within a dataset, failed last.
  assert [r["backbone"] for r in rows if r["dataset"] == "d1"] == ["x", "y", "z"]


def test_domain_ranking_by_hand_with_ties_and_incomplete_backbones():
  rows = tables.domains_table(tables.datasets_table(_hand_records()).rows).rows
  # Domain A: x = mean(92, 80) = 86, y = mean(92, 82) = 87; z finished only d2 (70).
  assert _by(rows, domain="A", backbone="y")["mean_top1"] == 87.0
  assert (_by(rows, domain="A", backbone="y")["rank"],
          _by(rows, domain="A", backbone="y")["label"]) == (1, "Best")
  assert (_by(rows, domain="A", backbone="x")["rank"],
          _by(rows, domain="A", backbone="x")["label"]) == (2, "Better")
  z = _by(rows, domain="A", backbone="z")
  assert z["rank"] is None and z["mean_top1"] == 70.0
  assert z["label"] == "incomplete (1 of 2 datasets)"
  assert (z["n_datasets"], z["of_datasets"]) == (1, 2)
  # y is ranked Best on 3 of its 4 runs (its seed 2 on d1 failed): the runs column says so
  assert [(_by(rows, domain="A", backbone=b)["runs_in_mean"],
           _by(rows, domain="A", backbone=b)["of_runs"]) for b in "xyz"] == [
               (4, 4), (3, 4), (1, 2)]
  assert "3/4" in render.to_markdown(tables.domains_table(
      tables.datasets_table(_hand_records()).rows))
  # Domain B: x and y tie at 60 -> both rank 1; z never ran there.
  assert {_by(rows, domain="B", backbone=b)["rank"] for b in "xy"} == {1}
  assert {_by(rows, domain="B", backbone=b)["label"] for b in "xy"} == {"Best"}
  assert "missing" in _by(rows, domain="B", backbone="z")["label"]
  # Overall: x = mean(92, 80, 60) = 77.33, y = mean(92, 82, 60) = 78.
  assert _by(rows, domain="overall", backbone="x")["mean_top1"] == pytest.approx(232 / 3)
  assert _by(rows, domain="overall", backbone="y")["rank"] == 1
  assert _by(rows, domain="overall", backbone="x")["rank"] == 2
  assert _by(rows, domain="overall", backbone="z")["rank"] is None
  assert list(tables.domains_table([]).rows) == []


def test_competition_ranks_share_the_smaller_rank_and_ignore_float_noise():
  assert tables.competition_ranks({"a": 0.3, "b": 0.1 + 0.2, "c": 0.2, "d": 0.5}) == {
      "d": 1, "a": 2, "b": 2, "c": 4}
  assert tables.competition_ranks({"a": 1.0, "b": 1.0, "c": 1.0}) == {"a": 1, "b": 1, "c": 1}


def test_sources_and_protocols_are_never_mixed_and_on_test_is_marked():
  records = [_record("x", "d1", 0, 90.0), _record("x", "d1", 1, 80.0, protocol=rec.ON_TEST),
             _record("x", "d1", None, 99.0, source="paper", protocol=rec.ON_TEST)]
  table = tables.datasets_table(records)
  assert len(table.rows) == 3 and {r["n"] for r in table.rows} == {1}
  first = table.rows[0]                                   # this project's val-split rows first
  assert (first["source"], first["selection_protocol"]) == (rec.RUNS, rec.VAL_SPLIT)
  md, page = render.to_markdown(table), render.to_html(table)
  assert md.count(render.ON_TEST_MARK) == 2 + 1            # two rows + the footnote
  assert "selected on test" in md and page.count('class="on-test"') == 2
  assert "selected-on-test" in render.to_csv(table)
  domains = tables.domains_table(table.rows)
  assert len({(r["source"], r["selection_protocol"]) for r in domains.rows}) == 3


def test_csv_import_with_comments_optional_columns_and_errors(tmp_path):
  path = tmp_path / "mine.csv"
  path.write_text("# published elsewhere\n"
                  "backbone,dataset,top1,domain,train_fraction,seed\n"
                  "convnext_tiny,dtd,73.7,texture,,\n"
                  "resnet50,dtd,68.21,,0.1,2\n"
                  "# trailing comment\n")
  got = rec.read_csv(str(path))
  assert [(r.backbone, r.dataset, r.top1, r.domain, r.train_fraction, r.seed, r.source)
          for r in got] == [
              ("convnext_tiny", "dtd", 73.7, "texture", 1.0, None, "mine"),
              ("resnet50", "dtd", 68.21, "texture", 0.1, 2, "mine")]  # domain from catalog
  bad = tmp_path / "bad.csv"
  bad.write_text("backbone,top1\nx,1\n")
  with pytest.raises(ValueError, match="missing dataset"):
    rec.read_csv(str(bad))
  bad.write_text("backbone,dataset,top1\nx,d,1\ny,d,high\n")
  with pytest.raises(ValueError, match=r"bad\.csv:3"):
    rec.read_csv(str(bad))


def test_bundled_paper_numbers_reproduce_part_of_its_table_1():
  paper = rec.read_csv(rec.PAPER)
  assert len(paper) == 11 * 19 + 11 * 9 and {r.selection_protocol for r in paper} == {rec.ON_TEST}
  rows = tables.domains_table(tables.datasets_table(paper).rows).rows
  top = lambda domain: [r["backbone"] for r in rows  # noqa: E731
                        if r["domain"] == domain and r["train_fraction"] == 1.0][:3]
  # Table 1 of the paper, where the mean of per-dataset accuracies agrees with it.
  assert top("natural") == ["convnext_tiny", "efficientnetv2_s", "regnety_032"]
  assert top("texture") == ["convnext_tiny", "resnext50_32x4d", "regnety_032"]
  assert top("plant") == ["regnety_032", "convnext_tiny", "shufflenet_v2_x2_0"]
  assert top("astronomy") == ["wavemix_192_16", "convnext_tiny", "densenet161"]
  ref = tables.reference_index(paper)
  assert ref[("cifar10", "wavemix_192_16", 0.01)] == 80.98


def test_reference_delta_columns():
  ref = {("d1", "x", 1.0): 95.0}
  rows = tables.datasets_table(_hand_records(), ref).rows
  x = _by(rows, dataset="d1", backbone="x")
  assert (x["ref_top1"], x["delta_best"], x["delta_mean"]) == (95.0, -1.0, -3.0)
  assert _by(rows, dataset="d2", backbone="x")["delta_best"] is None


def test_paired_significance_on_a_constructed_example():
  from scipy import stats
  a = [90.0, 91.0, 92.0, 93.0, 94.0, 95.0]
  gaps = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0]
  noise = [0.3, -0.2, 0.1, -0.4, 0.2, -0.1]
  records = ([_record("a", "d", s, v) for s, v in enumerate(a)]
             + [_record("b", "d", s, v - g) for s, (v, g) in enumerate(zip(a, gaps))]
             + [_record("c", "d", s, v - n) for s, (v, n) in enumerate(zip(a, noise))])
  rows = significance.significance_table(records).rows
  ab = _by(rows, backbone_a="a", backbone_b="b")
  t = 1.0 / (stats.tstd(gaps) / math.sqrt(6))            # mean gap 1.0, by hand
  assert ab["mean_diff"] == pytest.approx(1.0) and ab["t_stat"] == pytest.approx(t)
  assert ab["p_value"] == pytest.approx(2 * stats.t.sf(t, df=5))
  assert ab["significant"] is True and ab["n_pairs"] == 6
  assert ab["wilcoxon_p"] == pytest.approx(2 / 2 ** 6) and "6/6" in ab["sign_test"]
  ac = _by(rows, backbone_a="c", backbone_b="a")          # c better by 0.0167: not real
  assert ac["mean_diff"] == pytest.approx(0.1 / 6)
  assert ac["significant"] is False and ac["p_value"] > 0.5
  assert ac["p_holm"] >= ac["p_value"]
  # Three seeds: the t-test runs, and the note says rank tests cannot reach 0.05.
  few = significance.paired([1.0, 2.0, 3.5], [0.0, 1.5, 2.0])
  assert few["p_value"] is not None and "cannot reach p<0.05" in few["note"]
  same = significance.paired([1.0, 2.0], [0.0, 1.0])       # identical gaps: no t-test
  assert same["p_value"] is None and "zero variance" in same["note"]
  assert significance.paired([1.0], [0.0])["note"].startswith("one shared seed")


def test_holm_adjustment_by_hand():
  assert significance.holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])


# ---------------------------------------------------------------- files and rendering
def _write_run(root, rid, *, backbone, dataset, seed, top1=None, fraction=1.0,
               status="finished", select_on="val", params=1_000_000):
  path = os.path.join(root, rid)
  os.makedirs(path, exist_ok=True)
  config = {"backbone": backbone, "dataset": dataset, "seed": seed,
            "train_fraction": fraction, "select_on": select_on}
  if status == "incomplete":
    json.dump(config, open(os.path.join(path, "config.json"), "w"))
    return
  result = RunResult(status=status, backbone=backbone, dataset=dataset, seed=seed,
                     train_fraction=fraction, config=config)
  if status == "finished":
    metrics = {"top1": top1, "top5": 1.0, "loss": 0.1, "balanced_accuracy": top1,
               "macro_f1": top1}
    result = dataclasses.replace(
        result, domain="handwriting", image_size=32, params=params,
        model_size_mb=params * 4 / 2**20, train_images_per_sec=1000.0 + params / 1e4,
        peak_host_memory_mb=900.0, wall_time_sec=10.0, val=metrics, test=metrics,
        selection_protocol="selected-on-test" if select_on == "test" else "val-split")
  else:
    result.error = "ValueError: out of memory"
  with open(os.path.join(path, "result.json"), "w") as f:
    f.write(result.to_json())


@pytest.fixture(scope="module")
def fake_study(tmp_path_factory):
  """A workdir in the study layout: finished, failed, incomplete, missing, on-test runs."""
  root = str(tmp_path_factory.mktemp("study"))
  # Binary fractions, so the hand-computed means below are exact in floating point.
  for b, base, params in (("alpha", 0.875, 2_000_000), ("beta", 0.75, 500_000)):
    for frac, drop in ((1.0, 0.0), (0.1, 0.25)):
      for seed in (0, 1, 2):
        _write_run(root, f"sklearn_digits/{b}/frac{frac:g}/seed{seed}", backbone=b,
                   dataset="sklearn_digits", seed=seed, fraction=frac, params=params,
                   top1=base - drop + seed / 64)
  _write_run(root, "sklearn_digits/gamma/frac1/seed0", backbone="gamma",
             dataset="sklearn_digits", seed=0, status="failed")
  _write_run(root, "sklearn_digits/gamma/frac1/seed1", backbone="gamma",
             dataset="sklearn_digits", seed=1, status="incomplete")
  _write_run(root, "sklearn_digits/alpha_t/frac1/seed0", backbone="alpha_t",
             dataset="sklearn_digits", seed=0, top1=0.97, select_on="test")
  os.makedirs(os.path.join(root, "studies"))
  json.dump({"study": "adhoc", "runs": [
      {"id": "sklearn_digits/gamma/frac1/seed2", "backbone": "gamma",
       "dataset": "sklearn_digits", "seed": 2, "train_fraction": 1.0, "select_on": "val"}]},
      open(os.path.join(root, "studies", "adhoc.json"), "w"))
  # A checkpoint folder must not be walked into (nor a stray result.json inside it).
  os.makedirs(os.path.join(root, "sklearn_digits/alpha/frac1/seed0/checkpoints"))
  out = os.path.join(root, "report")
  paths = generate.build(root, out, reference=rec.PAPER, log=lambda line: None)
  return root, out, paths


def test_report_writes_every_file_with_failed_incomplete_and_missing_runs(fake_study):
  _, out, paths = fake_study
  expected = {f"{n}.{e}" for n in generate.TABLE_FILES for e in ("csv", "md")} | {"report.html"}
  assert expected <= set(paths) and expected <= set(os.listdir(out))
  rows = list(csv.DictReader(open(os.path.join(out, "datasets.csv"))))
  gamma = _by(rows, backbone="gamma")
  assert (gamma["status"], gamma["failed"], gamma["incomplete"], gamma["missing"], gamma["n"]) == (
      "failed", "1", "1", "1", "0")
  alpha = _by(rows, backbone="alpha", train_fraction="1")
  # 87.5, 89.0625, 90.625
  assert (alpha["n"], alpha["mean_top1"], alpha["best_top1"]) == ("3", "89.0625", "90.625")
  assert _by(rows, backbone="alpha_t")["selection_protocol"] == "selected-on-test"
  domains = list(csv.DictReader(open(os.path.join(out, "domains.csv"))))
  assert list(domains[0])[:4] == ["domain", "backbone", "mean_top1", "rank"]
  top = [r for r in domains if r["domain"] == "overall" and r["train_fraction"] == "1"
         and r["selection_protocol"] == "val-split"]
  assert [(r["backbone"], r["rank"], r["label"]) for r in top][:2] == [
      ("alpha", "1", "Best"), ("beta", "2", "Better")]
  fractions = list(csv.DictReader(open(os.path.join(out, "fractions.csv"))))
  assert float(_by(fractions, backbone="beta", train_fraction="0.1")["relative_to_full"]) == \
      pytest.approx(51.5625 / 76.5625, rel=1e-5)
  resources = list(csv.DictReader(open(os.path.join(out, "resources.csv"))))
  assert float(_by(resources, backbone="alpha")["params_m"]) == 2.0
  sig = list(csv.DictReader(open(os.path.join(out, "significance.csv"))))
  pair = _by(sig, train_fraction="1", backbone_a="alpha", backbone_b="beta")
  assert float(pair["mean_diff"]) == 12.5                  # constant gap: zero variance
  assert "zero variance" in pair["note"]
  md = open(os.path.join(out, "datasets.md")).read()
  assert "alpha_t ‡" in md and "failed" in md


def test_report_tables_are_tensorboard_text_summaries(fake_study):
  _, out, _ = fake_study
  events = tf.io.gfile.glob(os.path.join(out, "events.out.tfevents.*"))
  assert len(events) == 1
  tags = {}
  for event in tf.compat.v1.train.summary_iterator(events[0]):
    for value in event.summary.value:
      tags[value.tag] = tf.make_ndarray(value.tensor).item().decode()
  assert set(tags) == {f"report/{n}" for n in generate.TABLE_FILES}
  assert "| sklearn_digits | alpha |" in tags["report/datasets"]


def test_report_cli_without_out_fails_fast_with_usage():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  bad = subprocess.run([sys.executable, "-m", "tfbackbones.report", "--workdir=runs"],
                       cwd=root, capture_output=True, text=True, timeout=60)
  assert bad.returncode == 2 and "--out" in bad.stderr


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"{CHROMIUM} is missing: apt-get update && apt-get install -y "
                           "chromium (CI installs it)")
def test_report_html_renders_in_headless_chromium(tmp_path, fake_study):
  from PIL import Image
  _, out, paths = fake_study
  page = open(paths["report.html"]).read()
  for name in generate.TABLE_FILES:
    assert f'id="table-{name}"' in page
  images = re.findall(r'<img class="plot"[^>]*src="data:image/png;base64,', page)
  assert len(images) == 5                                  # domains, heat map, fractions, 2 costs
  assert "http://" not in page and "https://" not in page  # self-contained
  flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}"]
  url = "file://" + os.path.abspath(paths["report.html"])
  shot = tmp_path / "report.png"
  subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1280,2000", url],
                 check=True, capture_output=True, timeout=60)
  image = Image.open(shot).convert("RGB")
  assert image.size == (1280, 2000)
  colors = image.getcolors(maxcolors=1 << 20)
  assert len(colors) > 500                                 # text, tables and plots, not blank
  white = max(count for count, color in colors if color == (255, 255, 255))
  assert white < 0.95 * 1280 * 2000
  dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", "--virtual-time-budget=5000", url],
                       check=True, capture_output=True, text=True, timeout=60).stdout
  assert 'data-ready="yes"' in dom
  assert dom.count('data-loaded="yes"') == 5 and 'data-loaded="no"' not in dom
  shutil.copy(shot, os.path.join(out, "screenshot.png"))  # kept beside the report to look at
