"""MultiWorkerMirroredStrategy, proven on localhost: the real CLI as 2 and 3 worker processes.

What is checked, against one process with as many replicas (`--cpu_replicas=N`, the same
global batch split the same way):
  - the first step's loss, gradients (AdamW's first moment after one step is 0.1 x the
    gradient) and weights, then every epoch's metrics and the final result;
  - the chief alone writes the workdir (same files as the 1-process run, its events file
    only), the other workers' scratch dirs are gone, one result.json;
  - every worker logs the same DualOpt decisions (switch to SGD, stop);
  - a worker SIGKILLed mid-run: the survivor ends with one clear error within a bounded
    time, no `finished` result appears, and rerunning the command on every worker resumes
    from the chief's checkpoint and finishes exactly as the uninterrupted run.

Every epoch is one step (50 training images, global batch 32), so an epoch's `train_loss`
in state.json is that step's loss and the epoch-1 checkpoint holds the state after exactly
one step. The backbone is a tiny exported SavedModel (conv-BN-conv, 1.6k parameters) so
that tracing stays short: on this 2-core machine MobileNetV3-Small took ~95 s a run. Each
process runs on one CPU with one TF thread.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import time

import multiworker_harness as harness
import numpy as np
import pytest
import tensorflow as tf

pytestmark = pytest.mark.heavy

# Learning rates high enough that val top1 moves within a few 1-step epochs, so the run
# has an AdamW->SGD switch, an improvement under SGD and an early stop.
COMMON = ["--image_size=32", "--weights=imagenet", "--dataset=sklearn_digits", "--nodownload",
          "--adamw_lr=0.01", "--sgd_lr=0.05", "--adamw_patience=1", "--sgd_patience=2",
          "--max_epochs=7", "--keep_checkpoints=10"]
TWO = ["--batch_size=32", "--train_fraction=0.04"]      # 50 images: 1 step an epoch
THREE = ["--batch_size=48", "--train_fraction=0.06", "--max_epochs=2"]

# The same math in another process layout: only summation order may differ.
RTOL, ATOL = 1e-4, 1e-6
PROGRESS = re.compile(r"epoch +(\d+) \[(\w+)\] loss (\S+) val top1 (\S+) best (\S+) "
                      r"patience left (\d+).*?(?:  -> (.*))?$", re.M)


@pytest.fixture(scope="module", autouse=True)
def prebuilt_kernels():
  """Compiles the fused CPU kernels once, here, so N workers do not each run g++ at once."""
  from tfbackbones import kernels
  try:
    kernels.build()       # into $TFBACKBONES_CACHE, which the workers inherit
  except kernels.KernelBuildError:
    pass                  # no g++: the workers fall back to TF's ops, as users' would


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
  """`savedmodel:PATH` of a tiny exported conv net (weights=imagenet: its own)."""
  import keras
  keras.utils.set_random_seed(0)
  inputs = keras.Input((32, 32, 3))
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
  x = keras.layers.BatchNormalization()(x)
  x = keras.layers.ReLU()(x)
  x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  path = str(tmp_path_factory.mktemp("backbone") / "tiny")
  keras.Model(inputs, x).export(path, verbose=False)
  return f"savedmodel:{path}"


def _args(workdir, data_dir, backbone, *extra):
  return [*COMMON, f"--backbone={backbone}", f"--data_dir={data_dir}",
          f"--workdir={workdir}", *extra]


def _state(workdir):
  with open(os.path.join(workdir, "state.json")) as f:
    return json.load(f)


def _result(workdir):
  with open(os.path.join(workdir, "result.json")) as f:
    return json.load(f)


def _files(workdir):
  """The workdir's files, relative, without TensorBoard events (named by pid and time)."""
  out = []
  for root, _, names in os.walk(workdir):
    for name in names:
      if not name.startswith("events.out.tfevents"):
        out.append(os.path.relpath(os.path.join(root, name), workdir))
  return sorted(out)


def _event_pids(workdir):
  return sorted(int(os.path.basename(f).split(".")[-3])
                for f in glob.glob(os.path.join(workdir, "events.out.tfevents.*")))


def _decisions(log: str):
  """(epoch, phase, val top1, best, patience left, decision) of each progress line."""
  return [(m[0], m[1], m[3], m[4], m[5], m[6]) for m in PROGRESS.findall(log)]


def _assert_same_history(got, want):
  assert len(got) == len(want)
  for g, w in zip(got, want, strict=True):
    assert (g["epoch"], g["phase"], g["improved"], g["patience_left"]) == \
        (w["epoch"], w["phase"], w["improved"], w["patience_left"])
    np.testing.assert_allclose(g["train_loss"], w["train_loss"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g["val"]["loss"], w["val"]["loss"], rtol=RTOL, atol=ATOL)
    assert g["val"]["top1"] == w["val"]["top1"]


def _assert_same_result(got, want):
  # Tiny runs may be degenerate (at chance); either way both layouts must agree.
  assert got["status"] == want["status"] and got["status"] in ("finished", "degenerate")
  for key in ("epochs", "switch_epoch", "stop_reason", "selection", "val"):
    if key == "val":
      np.testing.assert_allclose(got["val"]["loss"], want["val"]["loss"], rtol=RTOL)
      assert got["val"]["top1"] == want["val"]["top1"]
    else:
      assert got[key] == want[key], key
  assert got["test"]["top1"] == want["test"]["top1"]
  np.testing.assert_allclose(got["test"]["loss"], want["test"]["loss"], rtol=RTOL)


def _checkpoint(workdir, name):
  return tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", name))


def _run_pair(tmp, data_dir, backbone, workers, extra):
  """Runs an N-worker job and, at the same time, 1 process with N replicas; both finish."""
  multi, single = str(tmp / "multi"), str(tmp / "single")
  with harness.Cluster(workers, str(tmp / "logs")) as cluster:
    cluster.start(_args(multi, data_dir, backbone, "--strategy=multi_worker", *extra))
    code = harness.run_single(
        _args(single, data_dir, backbone, f"--cpu_replicas={workers}", *extra),
        str(tmp / "logs" / "single.log"), timeout=240)
    codes = cluster.wait(timeout=240)
    logs = [cluster.output(i) for i in range(workers)]
  assert not cluster.leftovers()
  with open(tmp / "logs" / "single.log") as f:
    single_log = f.read()
  # Exit 1 is a completed run that is not a result (degenerate at this size).
  assert code in (0, 1) and "Traceback" not in single_log, single_log[-3000:]
  # Exit 1 is a completed run that is not a result (degenerate); every worker agrees.
  assert len(set(codes)) == 1 and codes[0] in (0, 1), "\n".join(log[-3000:] for log in logs)
  assert not any("Traceback" in log for log in logs), "\n".join(logs)
  return multi, single, logs, single_log, cluster


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, digits_data_dir, backbone):
  return _run_pair(tmp_path_factory.mktemp("mw2"), digits_data_dir, backbone, 2, TWO)


def test_two_workers_match_one_process_with_two_replicas(two_workers):
  multi, single, logs, single_log, _ = two_workers
  assert "MultiWorkerMirroredStrategy over 2 replicas (CPU)" in logs[0]
  assert "MirroredStrategy over 2 CPUs" in single_log
  got, want = _state(multi)["history"], _state(single)["history"]
  # First step: loss, then gradients via AdamW's first moment (m = 0.1 g after one step),
  # second moment and the updated weights.
  assert got[0]["train_loss"] > 1.0      # a real loss, not a zero from an empty batch
  np.testing.assert_allclose(got[0]["train_loss"], want[0]["train_loss"], rtol=RTOL)
  a, b = _checkpoint(multi, "ckpt-adamw-1"), _checkpoint(single, "ckpt-adamw-1")
  names = [n for n, _ in tf.train.list_variables(os.path.join(single, "checkpoints",
                                                              "ckpt-adamw-1"))]
  assert len(names) == len(tf.train.list_variables(
      os.path.join(multi, "checkpoints", "ckpt-adamw-1")))
  # Keras' Adam keeps (first moment, second moment) per variable in optimizer/_variables.
  slots = [n for n in names if n.startswith("optimizer/_variables/")]
  assert len(slots) >= 4 and all(np.abs(b.get_tensor(n)).max() > 0 for n in slots)
  for n in names:
    if n.endswith(".ATTRIBUTES/VARIABLE_VALUE"):
      want_v = b.get_tensor(n)
      scale = max(1.0, float(np.abs(want_v).max())) if want_v.size else 1.0
      np.testing.assert_allclose(a.get_tensor(n), want_v, rtol=RTOL, atol=ATOL * scale,
                                 err_msg=n)
  # Every later epoch, and the result.
  _assert_same_history(got, want)
  _assert_same_result(_result(multi), _result(single))


def test_only_the_chief_writes_the_workdir(two_workers, tmp_path_factory):
  multi, single, _, _, cluster = two_workers
  assert _files(multi) == _files(single)                  # no tmp_worker_1/, nothing extra
  assert _event_pids(multi) == [cluster.pids[0]]          # one events file, the chief's
  assert len(glob.glob(os.path.join(multi, "**", "result.json"), recursive=True)) == 1


def test_every_worker_takes_the_same_dualopt_decisions(two_workers):
  _, _, logs, single_log, _ = two_workers
  decisions = [_decisions(log) for log in logs]
  assert decisions[0] == decisions[1] == _decisions(single_log)
  reasons = [d[-1] for d in decisions[0] if d[-1]]
  assert any("switching to SGD" in r or "AdamW stalled" in r for r in reasons), decisions[0]
  assert reasons[-1].startswith(("SGD stalled", "reached max_epochs")), reasons


@pytest.fixture(scope="module")
def killed(tmp_path_factory, digits_data_dir, backbone):
  """A 2-worker run whose worker 1 is SIGKILLed after the chief's epoch 2."""
  tmp = tmp_path_factory.mktemp("mwkill")
  workdir = str(tmp / "run")
  cluster = harness.Cluster(2, str(tmp / "logs"))
  try:
    cluster.start(_args(workdir, digits_data_dir, backbone, "--strategy=multi_worker",
                        *TWO))
    assert cluster.wait_for(0, "epoch   2 ", timeout=180), cluster.output(0)[-3000:]
    cluster.kill(1)
    killed_at = time.monotonic()
    codes = cluster.wait(timeout=90)
    ended_after = time.monotonic() - killed_at
    logs = [cluster.output(0), cluster.output(1)]
  finally:
    cluster.close()
  return dict(cluster=cluster, workdir=workdir, codes=codes, ended_after=ended_after,
              logs=logs, data_dir=digits_data_dir, backbone=backbone)


def test_a_killed_worker_ends_the_job_with_one_clear_error(killed):
  assert not killed["cluster"].leftovers()
  assert killed["codes"][1] == -signal.SIGKILL
  assert killed["codes"][0] == 75, killed["logs"][0][-3000:]   # ended, did not hang
  assert killed["ended_after"] < 60
  errors = [line for line in killed["logs"][0].splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in killed["logs"][0], killed["logs"][0][-3000:]
  assert "lost /job:worker/replica:0/task:1" in errors[0]
  assert "Rerun the same command on every worker" in errors[0]
  result = _result(killed["workdir"])
  assert result["status"] == "failed" and "lost" in result["error"]


def test_rerun_after_a_killed_worker_finishes_like_an_uninterrupted_run(killed, two_workers):
  epochs_done = _state(killed["workdir"])["schedule"]["epoch"]
  assert 2 <= epochs_done < 5
  with harness.Cluster(2, os.path.join(killed["workdir"], os.pardir, "logs2")) as cluster:
    cluster.start(_args(killed["workdir"], killed["data_dir"], killed["backbone"],
                        "--strategy=multi_worker", *TWO))
    codes = cluster.wait(timeout=240)
    logs = [cluster.output(0), cluster.output(1)]
  assert not cluster.leftovers()
  assert len(set(codes)) == 1 and codes[0] in (0, 1), "\n".join(log[-3000:] for log in logs)
  assert not any("Traceback" in log for log in logs), "\n".join(logs)
  for log in logs:
    assert f"resuming {killed['workdir']} after epoch {epochs_done}" in log
  # One events file per launch, each written by that launch's chief.
  assert _event_pids(killed["workdir"]) == sorted([killed["cluster"].pids[0],
                                                   cluster.pids[0]])
  uninterrupted = two_workers[0]
  _assert_same_history(_state(killed["workdir"])["history"], _state(uninterrupted)["history"])
  _assert_same_result(_result(killed["workdir"]), _result(uninterrupted))
  assert _files(killed["workdir"]) == _files(uninterrupted)


def test_a_killed_chief_ends_the_other_worker_with_one_clear_error(tmp_path, digits_data_dir,
                                                                   backbone):
  workdir = str(tmp_path / "run")
  with harness.Cluster(2, str(tmp_path / "logs")) as cluster:
    cluster.start(_args(workdir, digits_data_dir, backbone, "--strategy=multi_worker", *TWO))
    assert cluster.wait_for(1, "epoch   1 ", timeout=180), cluster.output(1)[-3000:]
    cluster.kill(0)
    killed_at = time.monotonic()
    codes = cluster.wait(timeout=90)
    ended_after = time.monotonic() - killed_at
    log = cluster.output(1)
  assert not cluster.leftovers()
  assert codes == [-signal.SIGKILL, 75], log[-3000:]
  assert ended_after < 60
  errors = [line for line in log.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in log, log[-3000:]
  assert "lost /job:worker/replica:0/task:0" in errors[0]
  # The worker wrote nothing of its own: no failure row over the chief's, no scratch left.
  assert not os.path.exists(os.path.join(workdir, "result.json"))
  assert not os.path.exists(os.path.join(workdir, "tmp_worker_1"))


def test_three_workers_match_one_process_with_three_replicas(tmp_path, digits_data_dir,
                                                            backbone):
  multi, single, logs, _, cluster = _run_pair(tmp_path, digits_data_dir, backbone, 3, THREE)
  assert "MultiWorkerMirroredStrategy over 3 replicas (CPU)" in logs[0]
  _assert_same_history(_state(multi)["history"], _state(single)["history"])
  _assert_same_result(_result(multi), _result(single))
  assert _files(multi) == _files(single)
  assert _event_pids(multi) == [cluster.pids[0]]
  assert _decisions(logs[0]) == _decisions(logs[1]) == _decisions(logs[2])
