"""The protocol's promises, each pinned by a test that fails when the rule breaks.

Issue 19, case 4: with `_restore_best` removed from `Trainer._finish`, no test failed.
Each test below was checked by breaking its rule in the code and seeing it fail (the
mutations are listed in docs/results.md).
"""

import json
import os

import pytest
import shapes
from helpers import Quiet, register_tiny, tiny_config

from tfbackbones import runner
from tfbackbones.data import pipeline
from tfbackbones.training import loop
from tfbackbones.training import workdir as wd


class TestProbe(loop.Hooks):
  """Evaluates the test split after every epoch (a test may; the trainer must not) and
  records every split the trainer itself evaluates."""

  def __init__(self):
    self.test_at, self.trainer_evals, self._in_hook = {}, [], False

  def attach(self, monkeypatch):
    real = loop.Trainer._distributed_eval
    probe = self

    def recording(trainer, dataset, count):
      if not probe._in_hook:
        which = ("test" if dataset is trainer.data.test else
                 "val" if dataset is trainer.data.val else "other")
        probe.trainer_evals.append((which, len(probe.test_at)))
      return real(trainer, dataset, count)

    monkeypatch.setattr(loop.Trainer, "_distributed_eval", recording)

  def on_epoch_end(self, trainer, record):
    self._in_hook = True
    try:
      ds, steps = trainer._distributed_eval(trainer.data.test, trainer.data.ids.counts["test"])
      self.test_at[record["epoch"]] = trainer.evaluate(ds, steps)
    finally:
      self._in_hook = False


def test_test_is_evaluated_once_after_training_on_the_best_not_the_last_weights(
    tmp_path, digits_data_dir, monkeypatch):
  probe = TestProbe()
  probe.attach(monkeypatch)
  # Best epoch 2 of 4 (0-based 1): the last weights are not the best ones.
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=4, adamw_patience=10,
                    sgd_patience=10)
  result = runner.train(cfg, hooks=probe, selection_fn=lambda e, v: [0.2, 0.9, 0.3, 0.1][e],
                        log=Quiet())
  assert result.selection["best_epoch"] == 1
  best, last = probe.test_at[1], probe.test_at[3]
  assert best["loss"] != pytest.approx(last["loss"], rel=1e-6)   # the test can tell them apart
  assert result.test["loss"] == pytest.approx(best["loss"], rel=1e-5)
  assert result.test["top1"] == pytest.approx(best["top1"])
  # The trainer evaluated test exactly once, after the last epoch; selection saw val only.
  tests = [after for which, after in probe.trainer_evals if which == "test"]
  assert tests == [4]
  assert {which for which, _ in probe.trainer_evals} == {"val", "test"}


def test_selection_sees_validation_metrics_only(tmp_path, digits_data_dir):
  seen = []

  def select(epoch, val):
    seen.append(val["count"])
    return val["top1"]

  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=2)
  result = runner.train(cfg, selection_fn=select, log=Quiet())
  assert seen == [result.split_counts["val"]] * 2
  assert result.split_counts["val"] != result.split_counts["test"]
  history = json.load(open(os.path.join(cfg.workdir, wd.STATE)))["history"]
  assert all(h["val"]["count"] == result.split_counts["val"] for h in history)


def _setup(cfg):
  trainer = loop.Trainer(cfg, log=Quiet())
  trainer._setup()
  return trainer.data


def test_val_split_is_disjoint_and_identical_across_backbones_and_seeds(tmp_path):
  folder = shapes.write_folder(tmp_path / "f", {"": {"circle": 20, "square": 20,
                                                     "triangle": 20}}, size=24)
  data_dir = str(tmp_path / "tfds")
  base = tiny_config(tmp_path / "w", data_dir, dataset=f"folder:{folder}",
                     train_fraction=1.0, batch_size=8)
  runs = [_setup(base), _setup(base.replace(seed=7)),
          _setup(base.replace(backbone="mobilenet_v3_small"))]
  first = runs[0]
  builder = pipeline.get_builder(first.spec, data_dir, download=False)
  test_ids = set(pipeline._read_index(builder, "test", first.spec)[0])
  train, val = set(first.ids.train), set(first.ids.val)
  assert val and train and test_ids
  assert not val & train and not val & test_ids and not train & test_ids
  assert len(train | val | test_ids) == 60
  for other in runs[1:]:
    assert other.ids.val == first.ids.val and other.ids.train == first.ids.train
  # The datasets hold exactly those images (the id filter is applied).
  assert len(pipeline.labels_of(first.val)) == len(val)


def test_same_seed_same_losses_whether_or_not_this_run_prepared_the_data(tmp_path):
  # Case 5: the run that prepared a folder dataset trained differently from every later
  # run with the same seed.
  folder = shapes.write_folder(tmp_path / "f", {"": {"circle": 24, "square": 24}}, size=24)
  data_dir = str(tmp_path / "tfds")
  histories = []
  for name in ("prepares", "reuses"):
    cfg = tiny_config(tmp_path / name, data_dir, dataset=f"folder:{folder}",
                      train_fraction=1.0, batch_size=8, max_epochs=2)
    result = runner.train(cfg, log=Quiet())
    history = json.load(open(os.path.join(cfg.workdir, wd.STATE)))["history"]
    histories.append(([h["train_loss"] for h in history], result.test["loss"]))
  assert histories[0][0] == pytest.approx(histories[1][0], rel=1e-6)
  assert histories[0][1] == pytest.approx(histories[1][1], rel=1e-6)


register_tiny()
