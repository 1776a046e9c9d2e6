"""The training engine end to end on tiny models and the bundled digits."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import Quiet, register_tiny, tiny_config

from tfbackbones import results, runner
from tfbackbones.config import ConfigError
from tfbackbones.training import distribute, loop
from tfbackbones.training import steps as steps_lib
from tfbackbones.training import workdir as wd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _scripted(values):
  """selection_fn returning a scripted metric per epoch."""
  return lambda epoch, val: values[epoch]


class Snapshots(loop.Hooks):
  def __init__(self):
    self.weights, self.switched = {}, None

  def on_epoch_end(self, trainer, record):
    self.weights[record["epoch"]] = [w.numpy().copy() for w in trainer.model.weights]

  def on_switch(self, trainer, best_epoch):
    self.switched = (best_epoch, [w.numpy().copy() for w in trainer.model.weights],
                     type(trainer.optimizer).__name__, trainer.schedule.patience_left)


def _same(a, b):
  return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_run_writes_workdir_and_a_finished_run_is_not_retrained(tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=2)
  log = Quiet()
  result = runner.train(cfg, log=log)
  assert result.status == "finished" and result.selection_protocol == "val-split"
  assert result.epochs == {"adamw": 2, "sgd": 0, "total": 2}
  for split in ("val", "test"):
    assert set(getattr(result, split)) >= {"loss", "top1", "top5", "balanced_accuracy", "macro_f1"}
  assert result.test["count"] == 359 and result.params > 0
  assert result.train_images_per_sec > 0 and result.peak_host_memory_mb > 0
  files = os.listdir(cfg.workdir)
  assert {"config.json", "state.json", "result.json", "checkpoints", "best"} <= set(files)
  assert any(f.startswith("events.out.tfevents") for f in files)
  assert any(line.startswith("epoch   2 [adamw]") and "img/s" in line and "eta" in line
             for line in log.lines)
  tags, plugins = set(), set()
  for name in files:
    if name.startswith("events.out.tfevents"):
      for event in tf.compat.v1.train.summary_iterator(os.path.join(cfg.workdir, name)):
        for value in event.summary.value:
          tags.add(value.tag)
          plugins.add(value.metadata.plugin_data.plugin_name)
  assert {"train/loss", "val/top1", "val/macro_f1", "optimizer/learning_rate",
          "optimizer/phase", "speed/images_per_sec", "final/test_top1",
          "final/best_val_top1"} <= tags
  assert "hparams" in plugins and "_hparams_/session_end_info" in tags
  # The best weights are named by the epoch as printed (1-based).
  best = result.selection["best_epoch"] + 1
  best_dir = os.path.join(cfg.workdir, "best")
  assert any(f.startswith(f"weights-{best}.") for f in os.listdir(best_dir))
  log2 = Quiet()
  again = runner.train(cfg, log=log2)
  assert again == result and "already finished" in log2.lines[0]


def test_dualopt_switch_restores_best_weights_and_resets_patience(tmp_path, digits_data_dir):
  # epochs:  0    1    2    3   | SGD: 4    5    6
  metric = [0.1, 0.5, 0.2, 0.3, 0.4, 0.6, 0.2, 0.2, 0.9]
  hooks = Snapshots()
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=20)
  result = runner.train(cfg, hooks=hooks, selection_fn=_scripted(metric), log=Quiet())
  best_epoch, restored, optimizer, patience_left = hooks.switched
  assert best_epoch == 1 and optimizer.endswith("SGD") and patience_left == 2
  assert _same(restored, hooks.weights[1])                 # best AdamW weights restored
  assert result.switch_epoch == 4
  assert result.epochs == {"adamw": 4, "sgd": 4, "total": 8}
  assert result.selection["best_epoch"] == 5 and result.selection["best_value"] == 0.6
  assert result.stop_reason == "SGD stalled for 2 epochs"


def test_early_stopping_stops_when_nothing_improves(tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=50, adamw_patience=1,
                    sgd_patience=1)
  result = runner.train(cfg, selection_fn=lambda e, v: 0.5, log=Quiet())
  assert result.epochs == {"adamw": 2, "sgd": 1, "total": 3}


class Kill(BaseException):
  """Stands for SIGKILL: not an Exception, so nothing is written on the way out."""


class KillAfter(loop.Hooks):
  def __init__(self, epoch):
    self.epoch = epoch

  def on_epoch_end(self, trainer, record):
    if record["epoch"] == self.epoch:
      raise Kill()


def test_killed_run_resumes_from_its_last_epoch_exactly(tmp_path, digits_data_dir):
  metric = [0.1, 0.5, 0.2, 0.3, 0.4, 0.6, 0.2, 0.2]
  common = dict(max_epochs=8, adamw_patience=2, sgd_patience=2)
  straight = runner.train(tiny_config(tmp_path / "a", digits_data_dir, **common),
                          selection_fn=_scripted(metric), log=Quiet())
  cfg = tiny_config(tmp_path / "b", digits_data_dir, **common)
  with pytest.raises(Kill):     # killed after epoch 5 (index 4): in the SGD phase
    runner.train(cfg, hooks=KillAfter(4), selection_fn=_scripted(metric), log=Quiet())
  state = json.load(open(os.path.join(cfg.workdir, wd.STATE)))
  assert state["schedule"]["epoch"] == 5 and state["schedule"]["phase"] == "sgd"
  log = Quiet()
  resumed = runner.train(cfg, selection_fn=_scripted(metric), log=log)
  assert any("resuming" in l and "after epoch 5" in l and "phase sgd" in l for l in log.lines)
  assert sum(l.startswith("epoch") for l in log.lines) == 3   # epochs 6-8 only
  assert resumed.epochs == straight.epochs
  # Same batches, same optimizer state, same weights: the same numbers.
  assert resumed.test["loss"] == pytest.approx(straight.test["loss"], rel=1e-4)
  hist_a = json.load(open(os.path.join(straight.config["workdir"], wd.STATE)))["history"]
  hist_b = json.load(open(os.path.join(cfg.workdir, wd.STATE)))["history"]
  assert [h["train_loss"] for h in hist_b] == pytest.approx(
      [h["train_loss"] for h in hist_a], rel=1e-4)


def test_workdir_with_another_experiment_is_refused(tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=1)
  runner.train(cfg, log=Quiet())
  os.remove(os.path.join(cfg.workdir, wd.RESULT))
  with pytest.raises(ConfigError, match="seed: now 5"):
    runner.train(cfg.replace(seed=5), log=Quiet())


def test_select_on_test_is_marked_everywhere(tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=1, select_on="test")
  log = Quiet()
  result = runner.train(cfg, log=log)
  assert result.selection_protocol == "selected-on-test"
  assert result.selection["selected_on_test"] is True
  assert any("SELECTED ON TEST" in line for line in log.lines)


def test_failed_run_leaves_its_error_in_result_json(tmp_path, digits_data_dir):
  # A batch the user fixed (min_steps_per_epoch=0) is not lowered to fit the data.
  cfg = tiny_config(tmp_path / "run", digits_data_dir, batch_size=4096, min_steps_per_epoch=0)
  with pytest.raises(ValueError, match="fewer than one global batch"):
    runner.train(cfg, log=Quiet())
  result = results.read(os.path.join(cfg.workdir, wd.RESULT))
  assert result.status == "failed" and "global batch" in result.error


def test_mixed_float16_run_keeps_a_float32_head(tmp_path, digits_data_dir):
  seen = {}

  class Look(loop.Hooks):
    def on_epoch_end(self, trainer, record):
      seen["head"] = trainer.model.get_layer("head_logits").compute_dtype
      seen["body"] = trainer.model.get_layer(register_tiny()).layers[1].compute_dtype
      seen["optimizer"] = type(trainer.optimizer).__name__

  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=1,
                    precision="mixed_float16")
  result = runner.train(cfg, hooks=Look(), log=Quiet())
  # One epoch of the tiny pooled CNN is near chance on digits: a complete run, but not
  # always a significant result (tfbackbones/significance.py).
  assert result.status in ("finished", "degenerate") and result.test is not None
  assert result.precision == "mixed_float16"
  assert seen == {"head": "float32", "body": "float16", "optimizer": "LossScaleOptimizer"}
  assert np.isfinite(result.test["loss"])
  assert keras.mixed_precision.global_policy().name == "float32"   # reset after the run


def _no_bn_model():
  inputs = keras.Input((16, 16, 3))
  x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
  x = keras.layers.GlobalAveragePooling2D()(x)
  return keras.Model(inputs, keras.layers.Dense(5)(x))


def _one_step(strategy, init_weights, images, labels):
  with strategy.scope():
    model = _no_bn_model()
    model.set_weights(init_weights)
    opt = keras.optimizers.SGD(learning_rate=1.0)
    opt.build(model.trainable_variables)
  fn = steps_lib.make_train_fn(model, opt, strategy, len(labels), steps_lib.cross_entropy(5))
  ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(len(labels))
  it = iter(strategy.experimental_distribute_dataset(ds))
  loss_sum = fn(it, tf.constant(1))[0]
  grads = [w0 - w for w0, w in zip(init_weights, model.get_weights())]  # lr = 1
  return float(loss_sum.numpy()), grads


def test_two_replicas_match_one_replica_on_the_first_step():
  devices = tf.config.list_logical_devices("CPU")
  assert len(devices) >= 2, "conftest splits the CPU into two logical devices"
  keras.utils.set_random_seed(1)
  init = _no_bn_model().get_weights()
  rng = np.random.default_rng(0)
  images = rng.random((8, 16, 16, 3), dtype=np.float32)
  labels = rng.integers(0, 5, 8).astype(np.int32)
  loss_1, grads_1 = _one_step(tf.distribute.get_strategy(), init, images, labels)
  mirrored = distribute.make_strategy("mirrored")
  assert mirrored.num_replicas_in_sync == 2
  loss_2, grads_2 = _one_step(mirrored, init, images, labels)
  assert loss_2 == pytest.approx(loss_1, rel=1e-5)
  for g1, g2 in zip(grads_1, grads_2):
    np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-6)
  assert any(np.abs(g).max() > 0 for g in grads_1)


def test_full_run_under_two_replica_mirrored_strategy(tmp_path, digits_data_dir):
  # One strategy per process, as make_strategy guarantees: two MirroredStrategy objects
  # over the same devices issue colliding collective keys.
  strategy = distribute.make_strategy("mirrored")
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=3, adamw_patience=1,
                    sgd_patience=1)
  result = runner.train(cfg, strategy=strategy, selection_fn=_scripted([0.5, 0.4, 0.6]),
                        log=Quiet())
  assert result.replicas == 2 and result.epochs["sgd"] == 1   # switched under 2 replicas
  assert result.test["count"] == 359


def test_cpu_replicas_train_one_replica_per_logical_cpu(tmp_path, digits_data_dir):
  # conftest split the CPU in two before TF started, as the CLI does for --cpu_replicas=2.
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=1, cpu_replicas=2)
  result = runner.train(cfg, log=Quiet())
  assert result.replicas == 2 and result.strategy == "MirroredStrategy"
  assert distribute.make_strategy("auto", None, 2) is distribute.make_strategy("mirrored")
  with pytest.raises(distribute.CpuReplicasError, match="--cpu_replicas=3 must be set "
                                                        "before TensorFlow starts"):
    distribute.configure_cpu_replicas(3)


def test_cli_cpu_replicas_splits_the_cpu_before_tensorflow_starts(tmp_path, digits_data_dir):
  proc = _cli(f"--workdir={tmp_path}/w", f"--data_dir={digits_data_dir}", "--weights=none",
              "--backbone=mobilenet_v3_small", "--image_size=32", "--max_epochs=1",
              "--train_fraction=0.2", "--batch_size=32", "--cpu_replicas=2")
  # One epoch of 8 steps from random init may stay at chance: exit 1, "degenerate".
  assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert "MirroredStrategy over 2 CPUs" in proc.stdout + proc.stderr


def _cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", "tfbackbones.train", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=400, env=env)


@pytest.mark.parametrize("args, message", [
    (["--backbone=resnet_51"], "Unknown backbone 'resnet_51'"),
    (["--train_fraction=0"], "--train_fraction=0.0 is invalid"),
    (["--patience=0"], "--adamw_patience=0 is invalid"),
    (["--dataset=nope"], "unknown dataset 'nope'"),
])
def test_cli_bad_flags_fail_with_a_clear_message(tmp_path, args, message):
  proc = _cli(f"--workdir={tmp_path}/w", *args)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert message in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not os.path.exists(f"{tmp_path}/w")             # nothing touched


def test_exported_savedmodel_fine_tunes_and_resumes_in_the_engine(tmp_path, digits_data_dir):
  inputs = keras.Input((32, 32, 3))
  x = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(inputs)
  x = keras.layers.GlobalAveragePooling2D()(x)
  keras.Model(inputs, x).export(str(tmp_path / "sm"), verbose=False)
  original = tf.saved_model.load(str(tmp_path / "sm"))
  before = sorted((v.numpy() for v in original.trainable_variables), key=lambda a: a.shape)
  seen = {}

  class Look(loop.Hooks):
    def on_epoch_end(self, trainer, record):
      layer = trainer.model.layers[1]
      seen["vars"] = sorted((v.numpy() for v in layer.trainable_weights),
                            key=lambda a: a.shape)

  cfg = tiny_config(tmp_path / "run", digits_data_dir, backbone=f"savedmodel:{tmp_path}/sm",
                    weights="imagenet", max_epochs=2)   # "imagenet" = the SavedModel's own
  with pytest.raises(Kill):
    runner.train(cfg, hooks=KillAfter(0), log=Quiet())
  log = Quiet()
  result = runner.train(cfg, hooks=Look(), log=log)
  # 2 epochs of a 6-filter SavedModel may not beat the majority class on digits: then
  # the run is rightly "degenerate" (tested once, not ranked). Either way it trained.
  assert any("resuming" in l for l in log.lines)
  assert result.status in ("finished", "degenerate") and result.test is not None
  assert seen["vars"] and len(seen["vars"]) == len(before)
  assert [a.shape for a in seen["vars"]] == [b.shape for b in before]
  assert all(not np.allclose(a, b) for a, b in zip(seen["vars"], before))  # they trained


def test_cli_imagenet_weights_offline_fail_fast_naming_the_file(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_HOME=str(tmp_path / "keras"),
             TFBACKBONES_OFFLINE="1")
  proc = subprocess.run(
      [sys.executable, "-m", "tfbackbones.train", "--backbone=mobilenet_v3_small",
       "--weights=imagenet", f"--data_dir={tmp_path}/no_data", "--nodownload",
       f"--workdir={tmp_path}/w"], cwd=ROOT, capture_output=True, text=True, timeout=120,
      env=env)
  assert proc.returncode == 2, proc.stderr[-2000:]
  # The weights are checked before the (absent) data: the error is about the weights.
  assert "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5" in proc.stderr
  assert str(tmp_path / "keras") in proc.stderr and "Traceback" not in proc.stderr


def test_finished_workdir_with_another_experiment_is_refused(tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=1)
  runner.train(cfg, log=Quiet())
  with pytest.raises(ConfigError, match="max_epochs: now 2"):
    runner.train(cfg.replace(max_epochs=2), log=Quiet())


def test_sparse_checkpoints_resume_to_the_same_result(tmp_path, digits_data_dir):
  """checkpoint_min_steps: fewer checkpoints, and a kill between them only redoes epochs."""
  metric = [0.1, 0.5, 0.2, 0.3, 0.4, 0.6, 0.2, 0.2]
  common = dict(max_epochs=8, adamw_patience=2, sgd_patience=2)
  log = Quiet()
  straight = runner.train(tiny_config(tmp_path / "a", digits_data_dir, **common),
                          selection_fn=_scripted(metric), log=log)
  steps = next(int(m.group(1)) for m in (re.search(r"(\d+) steps/epoch", l)
                                          for l in log.lines) if m)
  cfg = tiny_config(tmp_path / "b", digits_data_dir, checkpoint_min_steps=3 * steps,
                    **common)
  with pytest.raises(Kill):     # killed after epoch 5: the newest checkpoint is epoch 3's
    runner.train(cfg, hooks=KillAfter(4), selection_fn=_scripted(metric), log=Quiet())
  state = json.load(open(os.path.join(cfg.workdir, wd.STATE)))
  assert state["schedule"]["epoch"] == 3
  log = Quiet()
  resumed = runner.train(cfg, selection_fn=_scripted(metric), log=log)
  assert any("resuming" in l and "after epoch 3" in l for l in log.lines)
  total = len(json.load(open(os.path.join(straight.config["workdir"], wd.STATE)))["history"])
  assert sum(l.startswith("epoch") for l in log.lines) == total - 3
  assert resumed.epochs == straight.epochs
  assert resumed.test["loss"] == pytest.approx(straight.test["loss"], rel=1e-4)
  hist_b = json.load(open(os.path.join(cfg.workdir, wd.STATE)))["history"]
  assert len(hist_b) == total   # the stopping epoch is always saved
