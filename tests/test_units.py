"""Unit tests of the pure pieces: config validation, DualOpt, metrics, splits."""

import math

import numpy as np
import pytest

from tfbackbones.config import ConfigError, TrainConfig
from tfbackbones.data import splits
from tfbackbones.training import dualopt, metrics


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, flag", [
    ({"train_fraction": 0.0}, "train_fraction"),
    ({"train_fraction": 1.5}, "train_fraction"),
    ({"adamw_patience": 0}, "adamw_patience"),
    ({"sgd_patience": -1}, "sgd_patience"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"select_on": "train"}, "select_on"),
    ({"strategy": "tpu"}, "tpu"),
    ({"image_size": 8}, "image_size"),
    ({"precision": "fp8"}, "precision"),
])
def test_config_rejects_bad_values_naming_the_flag(changes, flag):
  with pytest.raises(ConfigError, match=f"--{flag}="):
    TrainConfig(**changes).validate()


def test_config_accepts_defaults_and_test_selection():
  TrainConfig().validate()
  assert TrainConfig(select_on="test", val_fraction=0.0).validate().selected_on_test


def test_experiment_diff_ignores_operational_fields():
  a = TrainConfig()
  assert a.experiment_diff(a.replace(strategy="mirrored", steps_per_execution=7)) == {}
  assert set(a.experiment_diff(a.replace(seed=3, backbone="x"))) == {"seed", "backbone"}


# ----------------------------------------------------------------------------- DualOpt
def _run(seq, adamw=2, sgd=2, max_epochs=100):
  state = dualopt.DualOptState(adamw, sgd, max_epochs)
  decisions = []
  for m in seq:
    decisions.append(state.update(m))
    if state.done:
      break
  return state, decisions


def test_dualopt_switches_after_adamw_patience_and_resets_counter():
  state, d = _run([0.1, 0.5, 0.4, 0.3, 0.45, 0.6, 0.55, 0.5])
  assert [x.switch_to_sgd for x in d].index(True) == 3     # 2 bad epochs after epoch 2
  assert state.switch_epoch == 4
  # After the switch the counter restarted: 0.45 (bad), 0.6 (improves), 0.55, 0.5 -> stop.
  assert state.done and state.stop_reason.startswith("SGD stalled")
  assert state.best == 0.6 and state.best_epoch == 5
  assert state.epochs_per_phase == {"adamw": 4, "sgd": 4}


def test_dualopt_stops_at_max_epochs_and_never_switches_on_improvement():
  state, d = _run([0.1, 0.2, 0.3, 0.4], max_epochs=4)
  assert state.done and state.stop_reason == "reached max_epochs=4"
  assert not any(x.switch_to_sgd for x in d) and all(x.improved for x in d)


def test_dualopt_ties_are_not_improvements_and_nan_is_an_error():
  state, d = _run([0.5, 0.5, 0.5])
  assert [x.improved for x in d] == [True, False, False] and state.phase == "sgd"
  with pytest.raises(ValueError, match="diverged"):
    dualopt.DualOptState(2, 2, 5).update(math.nan)


def test_dualopt_state_round_trips():
  state, _ = _run([0.1, 0.5, 0.4])
  again = dualopt.DualOptState.from_dict(state.to_dict())
  assert again == state
  fresh = dualopt.DualOptState(1, 1, 3)
  assert dualopt.DualOptState.from_dict(fresh.to_dict()).best == -math.inf


# ----------------------------------------------------------------------------- metrics
def test_metrics_match_sklearn_per_sample():
  from sklearn import metrics as skm
  rng = np.random.default_rng(0)
  y = rng.integers(0, 7, 500)
  p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 7, 500))
  p[p == 6] = 5  # class 6 is never predicted: precision 0/0 must not crash
  confusion = skm.confusion_matrix(y, p, labels=range(7))
  out = metrics.from_sums(loss_sum=250.0, top5_hits=400.0, confusion=confusion)
  assert out["top1"] == pytest.approx(skm.accuracy_score(y, p))
  assert out["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
  assert out["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro"))
  assert out["loss"] == pytest.approx(0.5) and out["top5"] == pytest.approx(0.8)
  assert out["count"] == 500


def test_metrics_omit_top5_for_few_classes():
  assert "top5" not in metrics.from_sums(1.0, 2.0, np.eye(3) * 2)


# ----------------------------------------------------------------------------- splits
def test_stratified_split_is_deterministic_keyed_on_ids_and_stratified():
  ids = [f"img{i:04d}" for i in range(1000)]
  labels = [i % 4 for i in range(1000)]
  a = splits.stratified_split(ids, labels, 0.1, seed=42)
  shuffled = list(zip(ids, labels))[::-1]
  b = splits.stratified_split([i for i, _ in shuffled], [l for _, l in shuffled], 0.1, seed=42)
  assert a == b                                # read order does not matter
  assert a != splits.stratified_split(ids, labels, 0.1, seed=43)
  sel = set(a[0])
  assert len(sel) == 100 and not sel & set(a[1])
  per_class = splits.class_counts(labels[int(i[3:])] for i in sel)
  assert per_class == {0: 25, 1: 25, 2: 25, 3: 25}


def test_stratified_split_keeps_one_per_class_and_never_empties_a_class():
  ids = ["a", "b", "c", "d", "e"]
  labels = [0, 0, 0, 1, 1]
  sel, rest = splits.stratified_split(ids, labels, 0.01, seed=0, min_per_class=1)
  assert sorted(splits.class_counts(l for i, l in zip(ids, labels) if i in sel)) == [0, 1]
  sel, rest = splits.stratified_split(ids, labels, 0.99, seed=0)
  assert {l for i, l in zip(ids, labels) if i in rest} == {0, 1}
  with pytest.raises(ValueError, match="duplicate"):
    splits.stratified_split(["x", "x"], [0, 1], 0.5, seed=0)


def test_group_split_keeps_every_group_on_one_side_and_is_stratified():
  ids, labels, groups = [], [], []
  for g in range(40):
    for k in range(1 + g % 5):
      ids.append(f"g{g}-{k}")
      labels.append(g % 2)
      groups.append(f"patient{g}")
  sel, rest = splits.group_stratified_split(ids, labels, groups, 0.25, seed=1)
  group_of = dict(zip(ids, groups))
  assert not {group_of[i] for i in sel} & {group_of[i] for i in rest}
  assert set(sel) | set(rest) == set(ids) and not set(sel) & set(rest)
  label_of = dict(zip(ids, labels))
  for label in (0, 1):
    share = sum(label_of[i] == label for i in sel) / labels.count(label)
    assert 0.15 < share < 0.4
  assert (sel, rest) == splits.group_stratified_split(ids[::-1], labels[::-1], groups[::-1],
                                                      0.25, seed=1)


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}', True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}', False),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", '
     '"index": 0}}', True),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", '
     '"index": 0}}', False),
])
def test_only_the_chief_by_tf_config_writes_before_the_strategy_exists(monkeypatch, tf_config,
                                                                       chief):
  from tfbackbones.training import distribute
  if tf_config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", tf_config)
  assert distribute.tf_config_is_chief() is chief


def test_a_lost_peer_is_only_diagnosed_in_a_multi_worker_job():
  import tensorflow as tf

  from tfbackbones.training import distribute
  error = tf.errors.UnavailableError(None, None, "Collective ops is aborted by: x")
  assert distribute.worker_lost(error, tf.distribute.get_strategy(), 2, "w") is None
  assert distribute.worker_lost(error, None, 2, "w") is None
