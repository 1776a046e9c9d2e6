"""Issue 19: a lucky small split is not a result. The one-sided exact binomial test of the
test top-1 against the majority-class rate (tfbackbones/significance.py), and how
result.json records it, new files and old ones alike."""

import json
from fractions import Fraction
from math import comb

import pytest

from tfbackbones import results, significance
from tfbackbones.config import TrainConfig
from tfbackbones.report import records


def _exact_tail(k, n, p):
  """P(X >= k), X ~ Binomial(n, p), in exact rational arithmetic (an independent check)."""
  p = Fraction(p)
  return float(sum(comb(n, i) * p**i * (1 - p)**(n - i) for i in range(k, n + 1)))


@pytest.mark.parametrize("k, n, p", [
    (21, 60, Fraction(1, 3)), (30, 60, Fraction(1, 3)), (8, 18, Fraction(1, 3)),
    (3, 3, Fraction(1, 3)), (0, 5, Fraction(1, 2)), (400, 1000, Fraction(37, 100)),
    (9, 10, Fraction(9, 10))])
def test_binomial_tail_is_exact(k, n, p):
  assert significance.binomial_tail(k, n, float(p)) == pytest.approx(_exact_tail(k, n, p),
                                                                     rel=1e-9)


def test_binomial_tail_stays_finite_on_large_test_splits():
  # Food-101's 25,250 test images: a sum of tens of thousands of terms in log space.
  tiny = significance.binomial_tail(3000, 25250, 0.01)
  assert tiny == 0.0 or tiny < 1e-300
  assert significance.binomial_tail(255, 25250, 0.01) == pytest.approx(0.45, abs=0.05)


def test_the_issues_lucky_runs_are_not_significant_and_real_ones_are():
  # The batch-16 shapes run: 8/18 best-of-epochs validation (above 1/3 by luck), test
  # 21/60. Its test is nowhere near significant.
  lucky = significance.against_majority(21 / 60, 60, [20, 20, 20])
  assert lucky.p_value == pytest.approx(0.4397, abs=1e-4) and not lucky.significant
  assert "21/60" in lucky.reason() and "p = 0.44" in lucky.reason()
  # The photo folder's 0.88 on the same 60 images, and a large imbalanced test split
  # (RSNA-like: 77.5% one class, 6,046 images) two points above the majority rate.
  assert significance.against_majority(53 / 60, 60, [20, 20, 20]).p_value < 1e-15
  large = significance.against_majority(0.795, 6046, [4686, 1360])
  assert large.significant and large.p_value < 1e-3
  # The threshold: 30/60 passes at 1%, 29/60 does not.
  assert significance.against_majority(30 / 60, 60, [20, 20, 20]).significant
  assert not significance.against_majority(29 / 60, 60, [20, 20, 20]).significant


def test_a_test_split_too_small_to_tell_says_so():
  result = significance.against_majority(1.0, 2, [1, 1])
  assert not result.significant and result.too_small
  assert result.best_p_value == pytest.approx(0.25)
  assert "only 2 image(s)" in result.reason() and "more test images" in result.reason()
  # Six images of three classes are enough for a perfect score: (1/3)^6 = 0.0014.
  assert significance.against_majority(1.0, 6, [2, 2, 2]).significant


def test_selection_on_test_multiplies_the_p_value_by_the_epochs_it_looked():
  once = significance.against_majority(27 / 60, 60, [20, 20, 20])
  twenty = significance.against_majority(27 / 60, 60, [20, 20, 20], comparisons=20)
  assert twenty.p_value == pytest.approx(min(1.0, 20 * once.p_value))
  assert twenty.comparisons == 20 and "20 epochs" in twenty.reason()
  strong = significance.against_majority(50 / 60, 60, [20, 20, 20], comparisons=300)
  assert strong.significant


def test_nothing_to_test_gives_none():
  assert significance.against_majority(0.5, 0, [1, 1]) is None
  assert significance.against_majority(0.5, 10, []) is None
  assert significance.against_majority(float("nan"), 10, [5, 5]) is None


# ------------------------------------------------------------------ result.json
METRICS = {"loss": 1.0, "top1": 0.35, "top5": 1.0, "balanced_accuracy": 0.35,
           "macro_f1": 0.3, "count": 60}


def _old_file(top1, per_class_test=None, version=2, **fields):
  """A finished result.json as schema 2 wrote it (no `significance`)."""
  cfg = TrainConfig(backbone="b", dataset="folder:/x")
  values = results.RunResult.for_config(
      cfg, status="finished", val=dict(METRICS, top1=0.444, count=18),
      test=dict(METRICS, top1=top1)).to_dict()
  values.pop("significance")
  values.update(schema_version=version, **fields)
  if per_class_test is not None:
    values["data"] = {"images_per_class": {"test": per_class_test}}
  return json.dumps(values)


def test_a_new_result_round_trips_its_significance_at_schema_3():
  cfg = TrainConfig(backbone="b", dataset="folder:/x")
  sig = significance.against_majority(0.9, 60, [20, 20, 20])
  result = results.RunResult.for_config(cfg, status="finished", val=METRICS,
                                        test=dict(METRICS, top1=0.9),
                                        significance=sig.to_dict())
  again = results.RunResult.from_json(result.to_json())
  assert again.schema_version == results.SCHEMA_VERSION == 3
  assert again.significance["p_value"] == pytest.approx(sig.p_value)
  assert again.significance["significant"] and again.ranked and again.status == "finished"


def test_an_old_lucky_finished_run_is_read_as_degenerate_and_not_ranked():
  old = results.RunResult.from_json(_old_file(0.35, {"a": 20, "b": 20, "c": 20}))
  assert old.status == "degenerate" and not old.ranked
  assert "predates the significance test" in old.reason and "21/60" in old.reason
  assert old.schema_version == 2 and old.significance["n"] == 60
  record = records.from_result(old, "runs/x")
  assert record.top1 is None and record.status == "degenerate"


def test_old_files_keep_their_verdict_when_it_holds_or_cannot_be_checked():
  good = results.RunResult.from_json(_old_file(0.9, {"a": 20, "b": 20, "c": 20}))
  assert good.status == "finished" and good.ranked and good.significance["significant"]
  unknown = results.RunResult.from_json(_old_file(0.35))   # no per-class test counts
  assert unknown.status == "finished" and unknown.significance is None
  # A schema-3 file is trusted as written: the trainer already judged it.
  written = results.RunResult.from_json(_old_file(0.35, {"a": 20, "b": 20, "c": 20},
                                                  version=3))
  assert written.status == "finished"
