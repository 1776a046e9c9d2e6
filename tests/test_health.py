"""Issue 19: a run that diverged, learned nothing or lost a class is never a result.

Unit tests of the rules (health, batching, class checks, config bounds) first, then the
trainer end to end on tiny models: each bad case ends in a clear error or in a recorded,
unranked status, never in a traceback or a ranked `finished` row.
"""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import shapes
from helpers import Quiet, tiny_config

from tfbackbones import protocols, results, runner
from tfbackbones.backbones import registry
from tfbackbones.config import ConfigError, TrainConfig
from tfbackbones.data import checks
from tfbackbones.report import records, tables
from tfbackbones.training import batching, health, loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ rules, no training
def test_degenerate_rule_is_the_majority_class_rate_of_the_split():
  assert health.majority_rate([6, 6, 6]) == pytest.approx(1 / 3)
  assert health.degenerate_reason(6 / 18, [6, 6, 6]) is not None      # exactly chance
  assert health.degenerate_reason(7 / 18, [6, 6, 6]) is None          # one more right
  # Imbalanced: 80% of one class; 0.8 top-1 is what "always class 0" scores.
  assert "0.8000" in health.degenerate_reason(0.8, [80, 10, 10])
  assert health.degenerate_reason(0.81, [80, 10, 10]) is None
  assert health.degenerate_reason(float("nan"), [5, 5]) is not None
  assert health.degenerate_reason(0.1, []) is None                    # nothing to judge


def test_divergence_rule_and_the_loss_scale_exception():
  common = dict(epoch=2, phase="adamw", learning_rate=1e30, steps_done=4)
  assert health.divergence_reason(nonfinite_steps=0, weights_finite=True,
                                  loss_scaled=False, **common) is None
  reason = health.divergence_reason(nonfinite_steps=1, weights_finite=True,
                                    loss_scaled=False, **common)
  assert "epoch 3" in reason and "1e+30" in reason
  # mixed_float16: an overflow step is skipped by the optimizer, not divergence ...
  assert health.divergence_reason(nonfinite_steps=3, weights_finite=True,
                                  loss_scaled=True, **common) is None
  # ... unless nothing at all could be applied, or the weights themselves broke.
  assert health.divergence_reason(nonfinite_steps=4, weights_finite=True,
                                  loss_scaled=True, **common) is not None
  assert health.divergence_reason(nonfinite_steps=0, weights_finite=False,
                                  loss_scaled=True, **common) is not None


@pytest.mark.parametrize("num_train, requested, replicas, min_steps, expected", [
    (162, 64, 1, 10, 16),       # the issue's folder: 2 steps at 64 -> 10 steps at 16
    (162, 64, 2, 10, 16),
    (150, 64, 4, 10, 12),       # a multiple of the replicas
    (30, 64, 1, 10, 8),         # never below MIN_BATCH
    (1437, 64, 1, 10, 64),      # enough data: the protocol's batch is untouched
    (162, 64, 1, 0, 64),        # the user set --batch_size: kept
    (162, 8, 1, 10, 8),         # never raised above the requested batch
])
def test_global_batch_keeps_epochs_at_min_steps(num_train, requested, replicas, min_steps,
                                                expected):
  batch = batching.global_batch(num_train, requested, replicas, min_steps)
  assert batch == expected and batch % replicas == 0


def test_few_steps_warning_names_a_batch_that_fixes_it():
  assert batching.few_steps_warning(1000, 64, 15, user_batch=True) is None
  line = batching.few_steps_warning(162, 64, 2, user_batch=True)
  assert "only 2 step(s)" in line and "--batch_size=16" in line


def test_a_user_batch_is_kept_and_the_protocol_batch_is_not():
  cell = {"dataset": "sklearn_digits", "backbone": "mobilenet_v3_small", "seed": 0,
          "train_fraction": 1.0}
  assert protocols.resolve("paper", dict(cell)).min_steps_per_epoch == 10
  assert protocols.resolve("paper", dict(cell, batch_size=32)).min_steps_per_epoch == 0
  assert protocols.resolve("paper", dict(cell), ["batch_size=32"]).min_steps_per_epoch == 0
  assert protocols.resolve("paper", dict(cell, batch_size=32, min_steps_per_epoch=5)
                           ).min_steps_per_epoch == 5


@pytest.mark.parametrize("changes, message", [
    (dict(image_size=10000), "GiB"),                      # case 6: 10000 px
    (dict(image_size="5000x300"), "largest side accepted is 4096"),
    (dict(adamw_lr=float("nan")), "finite"),              # case 2
    (dict(adamw_lr=float("inf")), "finite"),
    (dict(sgd_lr=float("inf")), "finite"),
    (dict(min_images_per_class=-1), "min_images_per_class"),
    (dict(min_steps_per_epoch=-2), "min_steps_per_epoch"),
])
def test_config_rejects_unbounded_sizes_and_rates(changes, message):
  with pytest.raises(ConfigError, match=message):
    TrainConfig(**changes).validate()
  TrainConfig(image_size=4096).validate()


NAMES = ["a", "b", "c"]


def test_class_checks_list_every_starved_class_with_its_counts():
  counts = {"train": [5, 0, 0], "val": [1, 1, 0], "test": [1, 1, 1]}
  with pytest.raises(checks.DataError) as e:
    checks.plan_classes("folder:/x", NAMES, counts, needs_val=True)
  text = str(e.value)
  assert "'b': 0 train, 1 val, 1 test" in text and "'c': 0 train, 0 val, 1 test" in text
  assert "'a'" not in text and "--min_images_per_class" in text


def test_class_checks_drop_with_min_images_per_class_and_renumber():
  counts = {"train": [5, 0, 3, 1], "val": [1, 1, 1, 1], "test": None}
  plan = checks.plan_classes("x", NAMES + ["d"], counts, needs_val=True,
                             min_images_per_class=3)
  assert plan.keep == {0: 0, 2: 1} and set(plan.dropped) == {"b", "d"}
  with pytest.raises(checks.DataError, match="leaves 1 class"):
    checks.plan_classes("x", NAMES, {"train": [5, 0, 0], "val": [1, 1, 1]},
                        needs_val=True, min_images_per_class=1)


def test_class_checks_need_two_classes_and_val_only_when_selecting_on_val():
  with pytest.raises(checks.DataError, match="at least two"):
    checks.plan_classes("x", ["only"], {"train": [9], "val": [1]}, needs_val=True)
  plan = checks.plan_classes("x", NAMES, {"train": [2, 2, 2], "val": [2, 0, 2]},
                             needs_val=False)
  assert not plan.changed


def test_report_lists_diverged_and_degenerate_runs_but_never_ranks_them():
  cfg = TrainConfig(backbone="b1", dataset="sklearn_digits")
  metrics = {"loss": 0.1, "top1": 0.99, "top5": 1.0, "balanced_accuracy": 0.99,
             "macro_f1": 0.99, "count": 10}
  good = results.RunResult.for_config(cfg, status=results.FINISHED, val=metrics,
                                      test=metrics)
  # Test metrics recorded (a diverged run's best weights were tested) and higher than
  # the finished run's: they must still never be ranked.
  better = dict(metrics, top1=1.0)
  bad = [results.RunResult.for_config(cfg.replace(backbone=f"b{i + 2}"), status=status,
                                      reason="why", val=better, test=better)
         for i, status in enumerate((results.DIVERGED, results.DEGENERATE))]
  assert good.ranked and not any(r.ranked for r in bad)
  recs = [records.from_result(r, f"runs/{i}") for i, r in enumerate([good, *bad])]
  assert [r.status for r in recs] == ["finished", "diverged", "degenerate"]
  assert recs[1].top1 is None and recs[2].top1 is None and recs[1].error == "why"
  rows = {r["backbone"]: r for r in tables.datasets_table(recs).rows}
  assert rows["b1"]["mean_top1"] == pytest.approx(99.0)
  for name, status in (("b2", "diverged"), ("b3", "degenerate")):
    assert rows[name]["mean_top1"] is None and rows[name]["not_result"] == 1
    assert rows[name]["status"] == status
  ranking = [r for r in tables.domains_table(list(rows.values())).rows
             if r["domain"] == "overall"]
  assert [(r["backbone"], r["rank"]) for r in ranking] == [("b1", 1), ("b2", None),
                                                           ("b3", None)]


# ------------------------------------------------------------------ the trainer's verdicts
def test_exploding_learning_rate_stops_at_once_as_diverged(tmp_path, digits_data_dir):
  # Case 2: --adamw_lr=1e30 used to train NaN for every epoch and finish "finished".
  cfg = tiny_config(tmp_path / "run", digits_data_dir, adamw_lr=1e30, max_epochs=5)
  log = Quiet()
  result = runner.train(cfg, log=log)
  assert result.status == "diverged" and not result.ranked
  assert "learning rate 1e+30" in result.reason and "epoch 1" in result.reason
  assert result.test is None and result.epochs["total"] == 0   # no epoch ever finished
  assert any("DIVERGED" in line for line in log.lines)
  assert results.read(os.path.join(cfg.workdir, "result.json")).status == "diverged"
  again = Quiet()                                # a diverged run is done, not retried
  assert runner.train(cfg, log=again).status == "diverged"
  assert "already finished" in again.lines[0]


class ExplodeAfter(loop.Hooks):
  """Sets a learning rate that makes the next epoch's weights NaN."""

  def __init__(self, epoch):
    self.epoch = epoch

  def on_epoch_end(self, trainer, record):
    if record["epoch"] == self.epoch:
      trainer.optimizer.learning_rate.assign(1e30)


def test_divergence_after_good_epochs_keeps_and_tests_the_best_weights(tmp_path,
                                                                       digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=6)
  result = runner.train(cfg, hooks=ExplodeAfter(1), selection_fn=lambda e, v: [0.5, 0.4][e],
                        log=Quiet())
  assert result.status == "diverged" and "epoch 3" in result.reason
  assert result.selection["best_epoch"] == 0 and result.epochs["total"] == 2
  # The test split was evaluated once, on the (finite) best weights of epoch 1.
  assert "best weights (epoch 1)" in result.reason
  assert math.isfinite(result.test["loss"]) and result.test["count"] == 359
  assert not records.from_result(result, "x").top1


def test_mixed_float16_overflow_steps_are_not_divergence(tmp_path, digits_data_dir):
  # A loss scale of 2**40 overflows float16 gradients at once: the optimizer skips those
  # steps and halves the scale until steps apply. That is not divergence.
  seen = {}

  class Scale(loop.Hooks):
    def on_epoch_end(self, trainer, record):
      seen[record["epoch"]] = float(trainer.optimizer.dynamic_scale.numpy())

  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=1,
                    precision="mixed_float16")
  real_make = loop.Trainer._make_optimizer

  def huge_scale(self, phase):
    opt = real_make(self, phase)
    opt.dynamic_scale.assign(2.0**40)
    return opt

  loop.Trainer._make_optimizer = huge_scale
  try:
    result = runner.train(cfg, hooks=Scale(), log=Quiet())
  finally:
    loop.Trainer._make_optimizer = real_make
  assert result.status != "diverged", result.reason
  assert seen[0] < 2.0**40          # overflow steps happened and were skipped


def _zero_backbone():
  """A frozen backbone whose features are all zero: the head can only learn a prior."""
  name = "test_zero_features"
  if name not in registry.names():
    def build(spec, image_size, weights):
      inputs = keras.Input((*image_size, 3))
      x = keras.layers.Conv2D(4, 3, strides=4, kernel_initializer="zeros",
                              bias_initializer="zeros")(inputs)
      return keras.Model(inputs, x, name=name)
    registry.register(registry.BackboneSpec(
        name=name, source="keras.applications", default_size=32, preprocessing="unit",
        params_m=None, imagenet_top1=None, feature_dim=4, weights_file=None,
        description="test-only: learns nothing", builder=build))
  return name


def test_a_model_that_learns_nothing_is_degenerate_not_finished(tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, backbone=_zero_backbone(),
                    freeze_backbone=True, max_epochs=2)
  log = Quiet()
  result = runner.train(cfg, log=log)
  assert result.status == "degenerate" and not result.ranked
  assert "majority class" in result.reason
  assert result.test is not None                   # evaluated once, recorded, not ranked
  assert any("DEGENERATE" in line for line in log.lines)


def test_a_real_run_is_finished_and_records_its_data_facts(tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=2)
  result = runner.train(cfg, log=Quiet())
  assert result.status == "finished" and result.ranked
  per_class = result.data["images_per_class"]
  assert sum(per_class["train"].values()) == result.split_counts["train"]
  assert sum(per_class["val"].values()) == result.split_counts["val"]
  assert result.data["skipped_files"] == 0 and result.data["steps_per_epoch"] >= 10
  assert len(result.class_names) == 10


def _cli(*args, timeout=240):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", "tfbackbones.train", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout, env=env)


def test_cli_diverged_run_says_so_and_exits_non_zero(tmp_path, digits_data_dir):
  proc = _cli(f"--workdir={tmp_path}/w", f"--data_dir={digits_data_dir}", "--weights=none",
              "--backbone=mobilenet_v3_small", "--image_size=32", "--max_epochs=2",
              "--train_fraction=0.2", "--adamw_lr=1e30", "--protocol=quickstart")
  out = proc.stdout + proc.stderr
  assert proc.returncode == 1, out[-3000:]
  assert "run DIVERGED (not a result" in out and "Traceback" not in out
  saved = json.load(open(tmp_path / "w" / "result.json"))
  assert saved["status"] == "diverged"


@pytest.mark.parametrize("args, message", [
    (["--image_size=10000"], "GiB before any activation"),        # case 6
    (["--sgd_lr=inf"], "--sgd_lr=inf is invalid"),                  # case 2
    (["--adamw_lr=nan"], "--adamw_lr=nan is invalid"),
    (["--min_images_per_class=-1"], "--min_images_per_class=-1 is invalid"),
    (["--dataset=folder:{folder}"], "one class folder"),            # case 6, before prep
])
def test_cli_bad_inputs_are_one_clear_line_and_exit_2(tmp_path, args, message):
  folder = shapes.write_folder(tmp_path / "one", {"": {"circle": 6}}, size=24)
  args = [a.format(folder=folder) for a in args]
  proc = _cli(f"--workdir={tmp_path}/w", f"--data_dir={tmp_path}/tfds", "--weights=none",
              "--image_size=32", *args)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert message in proc.stderr and "Traceback" not in proc.stderr
  assert not os.path.exists(tmp_path / "tfds" / "image_folder")   # nothing prepared


def test_small_folder_gets_a_smaller_batch_and_a_warning_unless_the_user_set_one(tmp_path):
  # Case 1: 162 images at batch 64 were 2 steps an epoch, and nothing warned.
  folder = shapes.write_folder(tmp_path / "f", {"train": {"circle": 54, "square": 54,
                                                          "triangle": 54},
                                                "test": {"circle": 4, "square": 4,
                                                         "triangle": 4}}, size=24)
  base = tiny_config(tmp_path / "w", str(tmp_path / "tfds"), dataset=f"folder:{folder}",
                     train_fraction=1.0, batch_size=64)
  trainer = loop.Trainer(base, log=Quiet())
  trainer._setup()
  # 162 train images, 15 held out for validation: 147 // 10 steps -> batch 14.
  assert trainer.data.num_train == 147 and trainer.global_batch == 14
  assert trainer.steps_per_epoch == 10 and not trainer.few_steps
  assert trainer.data.facts["global_batch_requested"] == 64
  fixed = loop.Trainer(base.replace(min_steps_per_epoch=0, workdir=str(tmp_path / "w2")),
                       log=Quiet())
  fixed._setup()
  assert fixed.global_batch == 64 and fixed.steps_per_epoch == 2
  assert "only 2 step(s)" in fixed.few_steps and "--batch_size=14" in fixed.few_steps
  assert "only 2 step(s)" in fixed.data.facts["warning"]
  # Precise BN comes on by itself exactly where epochs are that short.
  assert fixed.use_precise_bn and not trainer.use_precise_bn


def test_precise_bn_sets_the_average_of_the_batch_statistics_and_keeps_momentum():
  import tensorflow as tf

  from tfbackbones.training import precise_bn
  inputs = keras.Input((4, 4, 3))
  bn = keras.layers.BatchNormalization(momentum=0.99)
  model = keras.Model(inputs, bn(keras.layers.Conv2D(3, 1, use_bias=False,
                                                      kernel_initializer="ones")(inputs)))
  rng = np.random.default_rng(0)
  batches = [rng.normal(i, 1 + i, (8, 4, 4, 3)).astype("float32") for i in range(3)]
  strategy = tf.distribute.get_strategy()
  ds = tf.data.Dataset.from_tensor_slices((np.concatenate(batches),
                                           np.zeros(24, np.int32))).batch(8)
  precise_bn.PreciseBN(model, strategy)(iter(ds), 3)
  features = [b.sum(-1, keepdims=True).repeat(3, -1) for b in batches]   # the 1x1 conv
  np.testing.assert_allclose(bn.moving_mean.numpy(),
                             np.mean([f.mean((0, 1, 2)) for f in features], 0), rtol=1e-4)
  np.testing.assert_allclose(bn.moving_variance.numpy(),
                             np.mean([f.var((0, 1, 2)) for f in features], 0), rtol=1e-3)
  assert bn.momentum == 0.99


def _colour_folder(root, test_per_class, train_per_class=24, size=24):
  """Two classes told apart by colour alone (red vs blue, noisy): a tiny CNN learns them
  in an epoch or two, so validation passes and only the test split decides."""
  from PIL import Image
  rng = np.random.default_rng(0)
  for split, n in (("train", train_per_class), ("test", test_per_class)):
    for name, colour in (("blue", (40, 60, 200)), ("red", (200, 50, 40))):
      os.makedirs(root / split / name)
      for i in range(n):
        pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i}.png")
  return str(root)


def test_a_test_split_too_small_to_tell_from_chance_is_degenerate_not_finished(tmp_path):
  # Issue 19: a run that validation calls good but whose test split cannot tell it apart
  # from always answering one class must not be ranked. 2 test images: even 2/2 has
  # p = 0.25 under "no better than the majority class".
  folder = _colour_folder(tmp_path / "f", test_per_class=1)
  cfg = tiny_config(tmp_path / "run", str(tmp_path / "tfds"), dataset=f"folder:{folder}",
                    train_fraction=1.0, batch_size=8, max_epochs=3)
  result = runner.train(cfg, log=Quiet())
  assert result.val["top1"] > 0.5                      # validation alone would rank it
  assert result.status == "degenerate" and not result.ranked
  assert "only 2 image(s)" in result.reason
  sig = json.load(open(os.path.join(cfg.workdir, "result.json")))["significance"]
  assert sig["n"] == 2 and sig["majority_rate"] == 0.5 and not sig["significant"]
  assert sig["best_p_value"] == pytest.approx(0.25) and sig["test"].startswith("one-sided")


def test_a_real_result_records_its_significance_and_skipped_files(tmp_path):
  folder = _colour_folder(tmp_path / "f", test_per_class=10)
  # Case 6: a dangling link, a corrupt image and a text file are skipped, and counted in
  # result.json and in the run's start line, not only in the log of the preparation.
  os.symlink(tmp_path / "gone.png", tmp_path / "f" / "train" / "red" / "link.png")
  (tmp_path / "f" / "train" / "blue" / "broken.png").write_bytes(b"\x89PNG truncated")
  (tmp_path / "f" / "train" / "blue" / "notes.txt").write_text("not an image")
  cfg = tiny_config(tmp_path / "run", str(tmp_path / "tfds"), dataset=f"folder:{folder}",
                    train_fraction=1.0, batch_size=8, max_epochs=3)
  log = Quiet()
  result = runner.train(cfg, log=log)
  assert result.status == "finished" and result.ranked, result.reason
  sig = result.significance
  assert sig["n"] == 20 and sig["majority_rate"] == 0.5 and sig["comparisons"] == 1
  assert sig["correct"] == round(result.test["top1"] * 20) and sig["p_value"] < 0.01
  saved = json.load(open(os.path.join(cfg.workdir, "result.json")))
  assert saved["schema_version"] == 3 and saved["significance"]["significant"]
  assert {k: saved["data"][k] for k in ("skipped_files", "ignored_files", "broken_links")} \
      == {"skipped_files": 1, "ignored_files": 1, "broken_links": 1}
  start = next(line for line in log.lines if line.startswith("training "))
  assert ("1 unreadable files skipped" in start and "1 non-image files ignored" in start
          and "1 broken links skipped" in start)


def test_precise_bn_in_the_loop_fixes_evaluation_and_leaves_training_alone(tmp_path,
                                                                          digits_data_dir):
  # Case 1 at tiny scale: Keras's BatchNorm momentum (0.99) and 5 steps an epoch. Without
  # precise BN the moving statistics lag the weights and evaluation is at chance (the
  # issue's "train loss falls, val stays at chance"); with it, evaluation uses statistics
  # of the current weights. Training itself must not change: the same train losses.
  runs = {}
  for on in (False, True):
    cfg = tiny_config(tmp_path / str(on), digits_data_dir, bn_momentum=None, batch_size=128,
                      min_steps_per_epoch=0, max_epochs=3, precise_bn=on)
    result = runner.train(cfg, log=Quiet())
    history = json.load(open(os.path.join(cfg.workdir, "state.json")))["history"]
    runs[on] = result, [h["train_loss"] for h in history], [h["val"]["loss"] for h in history]
  (off, off_train, off_val), (on, on_train, on_val) = runs[False], runs[True]
  assert off.data["steps_per_epoch"] == 5 and on.data["precise_bn"] and not off.data["precise_bn"]
  assert on_train == pytest.approx(off_train, rel=1e-6)
  assert off.status == "degenerate" and off.val["top1"] < 0.12
  assert on.val["top1"] > off.val["top1"] + 0.05 and on_val[-1] < off_val[-1]


def test_cli_class_without_training_images_is_one_clear_line_and_exit_2(tmp_path):
  # Case 3 through the command line: a 1-image class would go to test only and be scored
  # but never trained. One line names the class and its counts; nothing trains.
  folder = shapes.write_folder(tmp_path / "f", {"": {"circle": 10, "square": 10,
                                                     "triangle": 1}}, size=24)
  proc = _cli(f"--workdir={tmp_path}/w", f"--data_dir={tmp_path}/tfds", "--weights=none",
              "--image_size=32", "--backbone=mobilenet_v3_small", "--max_epochs=1",
              f"--dataset=folder:{folder}")
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "'triangle': 0 train, 0 val, 1 test" in proc.stderr
  assert "Traceback" not in proc.stderr and "epoch" not in proc.stdout
