"""Workdirs that heal (docs/workdir.md): kills at every write, damaged files, the lock.

Most cases run the real Trainer's resume and epoch-end code on a data-free 2x3 model
(tests/workdir_harness.py), so each costs well under a second; a few run the engine.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import tensorflow as tf
import workdir_harness as h
from helpers import Quiet, tiny_config

from tfbackbones import runner
from tfbackbones.config import ConfigError, TrainConfig
from tfbackbones.training import events, resume
from tfbackbones.training import lock as lock_lib
from tfbackbones.training import workdir as wd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _no_fault_hook():
  yield
  wd.FAULT_HOOK = None


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """An uninterrupted bare run: its final weights, best weights and history."""
  root = tmp_path_factory.mktemp("straight")
  results = {}
  for keep in (1, 2):
    t = h.run(root / f"keep{keep}", keep=keep)
    results[keep] = (h.weights(t), h.best_weights(t), h.history_epochs(t.workdir),
                     t.schedule.to_dict())
  return results


def _assert_like_straight(trainer, straight, keep):
  final, best, epochs, schedule = straight[keep]
  assert trainer.schedule.to_dict() == schedule
  assert h.history_epochs(trainer.workdir) == epochs          # lost=0, duplicated=0
  assert h.same(h.weights(trainer), final)
  assert h.same(h.best_weights(trainer), best)


# ---------------------------------------------------------------- kills at every write
# Every point of the epoch ends that matter: the first epoch, the AdamW->SGD switch
# (epoch 4 restores best weights) and the first SGD improvement (a new best replaces one
# a kept state still needs). Later epoch ends repeat the same sequence.
KILL_EPOCHS = (0, 3, 4)


@pytest.mark.parametrize("keep", [1, 2])
@pytest.mark.parametrize("kind", [
    "checkpoint", pytest.param("write", marks=pytest.mark.heavy),
    pytest.param("rename", marks=pytest.mark.heavy),
    pytest.param("delete", marks=pytest.mark.heavy)])
def test_a_kill_at_any_write_resumes_to_the_same_result(tmp_path, straight, keep, kind):
  """Kill at the n-th `kind` point of a run's epoch ends, for every n; resume; compare."""
  counter = h.KillAt(10**9, kind)
  wd.FAULT_HOOK = counter
  h.run(tmp_path / "count", keep=keep)
  points = [n for n, (epoch, _, _) in enumerate(counter.seen) if epoch in KILL_EPOCHS]
  assert len(points) >= len(KILL_EPOCHS)
  for n in points:
    workdir = tmp_path / f"kill{n}"
    wd.FAULT_HOOK = h.KillAt(n, kind)
    with pytest.raises(h.Kill):
      h.run(workdir, keep=keep)
    wd.FAULT_HOOK = None
    # Killed before any state (state.json or a checkpoint's copy) was in place: there is
    # nothing to resume, and starting again is the right answer; otherwise it must resume.
    nothing_durable = not (glob.glob(str(workdir / "checkpoints" / "*.state.json"))
                           or os.path.exists(workdir / wd.STATE))
    log = Quiet()
    trainer = h.run(workdir, keep=keep, log=log)
    _assert_like_straight(trainer, straight, keep)
    started_again = any("starting again" in line for line in log.lines)
    assert nothing_durable or not started_again, (n, log.lines)
    assert not [name for name in os.listdir(workdir) if name.endswith(".tmp")]


def test_keep_one_never_deletes_the_checkpoint_state_json_points_at(tmp_path):
  """Kill right after each delete with --keep_checkpoints=1: state.json's checkpoint lives."""
  for n in range(6):
    workdir = tmp_path / f"k{n}"
    wd.FAULT_HOOK = h.KillAt(n, "delete")
    with pytest.raises(h.Kill):
      h.run(workdir, keep=1)
    wd.FAULT_HOOK = None
    state = wd.read_json(str(workdir / wd.STATE))
    assert os.path.exists(str(workdir / state["checkpoint"]) + ".index")
    assert not os.path.isabs(state["checkpoint"]) and not os.path.isabs(state["best_path"])


# ---------------------------------------------------------------- damaged files
@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
  """A bare run stopped after 5 of 8 epochs (in SGD since epoch 5), keep=2."""
  workdir = tmp_path_factory.mktemp("interrupted") / "run"
  h.run(workdir, stop_after=5)
  return workdir


def _ckpt(workdir, epoch):
  return [str(workdir / wd.CHECKPOINTS / n)[:-len(".index")]
          for n in os.listdir(workdir / wd.CHECKPOINTS)
          if n.endswith(f"-{epoch}.index")][0]


def _truncate(path):
  data = open(path, "rb").read()
  open(path, "wb").write(data[:len(data) // 2])


def _garbage(path):
  open(path, "wb").write(b"\x00\xff garbage \x89PNG" * 7)


def _delete_best(workdir):
  shutil.rmtree(workdir / wd.BEST)


def _delete_best_and_its_checkpoint(workdir):
  # Best weights gone, and the states left (epoch 4) need epoch 2's, whose checkpoint
  # was pruned long ago: nothing is resumable.
  shutil.rmtree(workdir / wd.BEST)
  wd.remove_checkpoint(_ckpt(workdir, 5))


DAMAGE = {
    # name: (how, epoch resumed from, restarts)
    "state_truncated": (lambda w: _truncate(w / wd.STATE), 5, False),
    "state_garbage": (lambda w: _garbage(w / wd.STATE), 5, False),
    "state_empty": (lambda w: open(w / wd.STATE, "w").close(), 5, False),
    "state_list": (lambda w: open(w / wd.STATE, "w").write("[]"), 5, False),
    "state_wrong_history": (lambda w: wd.write_json(str(w / wd.STATE), {
        **wd.read_json(str(w / wd.STATE)), "history": []}), 5, False),
    "state_deleted": (lambda w: os.remove(w / wd.STATE), 5, False),
    "ckpt_index_garbage": (lambda w: _garbage(_ckpt(w, 5) + ".index"), 4, False),
    "ckpt_index_deleted": (lambda w: os.remove(_ckpt(w, 5) + ".index"), 4, False),
    "ckpt_data_truncated": (lambda w: _truncate(_ckpt(w, 5) + ".data-00000-of-00001"),
                            4, False),
    "ckpt_data_deleted": (lambda w: os.remove(_ckpt(w, 5) + ".data-00000-of-00001"),
                          4, False),
    "ckpt_latest_deleted": (lambda w: wd.remove_checkpoint(_ckpt(w, 5)), 4, False),
    "best_deleted": (_delete_best, 5, False),                 # recovered from ckpt 5
    "best_index_garbage": (lambda w: [_garbage(str(w / wd.BEST / n)) for n in
                                      os.listdir(w / wd.BEST) if n.endswith(".index")],
                           5, False),
    "state_and_latest_ckpt": (lambda w: (_garbage(w / wd.STATE),
                                         wd.remove_checkpoint(_ckpt(w, 5))), 4, False),
    "best_and_its_checkpoints": (_delete_best_and_its_checkpoint, 0, True),
    "every_state_deleted": (lambda w: [os.remove(p) for p in [w / wd.STATE] + list(
        (w / wd.CHECKPOINTS).glob("*.state.json"))], 0, True),
    "all_checkpoints_deleted": (lambda w: shutil.rmtree(w / wd.CHECKPOINTS), 0, True),
    "every_state_garbage": (lambda w: [_garbage(str(p)) for p in
                                       [w / wd.STATE] + list((w / wd.CHECKPOINTS).glob(
                                           "*.state.json"))], 0, True),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_damage_falls_back_to_the_newest_intact_checkpoint(tmp_path, interrupted, straight,
                                                           name):
  damage, expected_epoch, restarts = DAMAGE[name]
  workdir = tmp_path / "run"
  shutil.copytree(interrupted, workdir)
  damage(workdir)
  log = Quiet()
  trainer = h.bare_trainer(workdir, log=log)
  assert trainer._start_or_resume() is (not restarts)
  assert trainer.schedule.epoch == expected_epoch
  warnings = [line for line in log.lines if line.startswith("warning:")]
  if restarts:
    assert len(warnings) == 1 and "starting again from epoch 1" in warnings[0]
  elif expected_epoch < 5:
    assert len(warnings) == 1, log.lines
    assert f"after epoch {expected_epoch}); epoch 5 is trained again" in warnings[0]
  elif name.startswith(("state", "best")):
    assert len(warnings) == 1 and "nothing is lost" in warnings[0], log.lines
  # Trained on to the end, the run is the uninterrupted one, epoch for epoch.
  finished = h.run(workdir)
  _assert_like_straight(finished, straight, 2)


def test_a_kill_while_healing_heals_on_the_next_resume(tmp_path, interrupted, straight):
  """Healing writes too (state.json, pruning, the events purge): kill at each of them."""
  def damaged(name):
    workdir = tmp_path / name
    shutil.copytree(interrupted, workdir)
    _garbage(workdir / wd.STATE)
    wd.remove_checkpoint(_ckpt(workdir, 5))
    return workdir
  counter = h.KillAt(10**9)
  workdir = damaged("count")
  wd.FAULT_HOOK = counter
  h.bare_trainer(workdir)._start_or_resume()
  assert {p for _, p, _ in counter.seen} >= {"move", "write", "rename", "delete"}
  for n in range(len(counter.seen)):
    workdir = damaged(f"kill{n}")
    wd.FAULT_HOOK = h.KillAt(n)
    with pytest.raises(h.Kill):
      h.bare_trainer(workdir)._start_or_resume()
    wd.FAULT_HOOK = None
    trainer = h.bare_trainer(workdir)
    assert trainer._start_or_resume() and trainer.schedule.epoch == 4
  _assert_like_straight(h.run(workdir), straight, 2)


def test_leftovers_of_killed_writers_are_removed_on_resume(tmp_path, interrupted):
  workdir = tmp_path / "run"
  shutil.copytree(interrupted, workdir)
  leftovers = [workdir / "state.json.123.tmp", workdir / wd.CHECKPOINTS / "checkpoint.tmp9f",
               workdir / wd.BEST / "weights-7_temp" / "part-00000-of-00001.index",
               workdir / wd.CHECKPOINTS / "ckpt-sgd-6_temp" / "x.tempstate123",
               workdir / wd.BEST / "weights-7.index.tempstate55", workdir / "purge-9.tmp"]
  for path in leftovers:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
  h.bare_trainer(workdir)._start_or_resume()
  assert not any(path.exists() for path in leftovers)
  assert not (workdir / wd.BEST / "weights-7_temp").exists()


def test_a_moved_workdir_resumes(tmp_path, interrupted, straight):
  moved = tmp_path / "elsewhere" / "run"
  shutil.copytree(interrupted, moved)
  state = wd.read_json(str(moved / wd.STATE))
  assert (state["checkpoint"], state["best_path"]) == ("checkpoints/ckpt-sgd-5",
                                                       "best/weights-5")  # epoch 5 (1-based)
  trainer = h.run(moved)
  _assert_like_straight(trainer, straight, 2)


def test_an_old_state_with_absolute_paths_resumes_even_moved(tmp_path, interrupted, straight):
  """Older versions stored absolute paths and no sidecar states."""
  workdir = tmp_path / "old"
  shutil.copytree(interrupted, workdir)
  state = wd.read_json(str(workdir / wd.STATE))
  gone = "/nonexistent/old/place"
  for key in ("checkpoint", "best_path"):
    state[key] = f"{gone}/{state[key]}"
  del state["version"], state["config"]
  wd.write_json(str(workdir / wd.STATE), state)
  for sidecar in (workdir / wd.CHECKPOINTS).glob("*.state.json"):
    sidecar.unlink()
  trainer = h.run(workdir)
  _assert_like_straight(trainer, straight, 2)


# ---------------------------------------------------------------- config.json / result.json
@pytest.mark.parametrize("content", ["", "{\"backbone\": \"bare\", \"data", "[]", "\x00\xff"])
def test_damaged_config_json_heals_from_the_copy_in_state(tmp_path, interrupted, content):
  workdir = tmp_path / "run"
  shutil.copytree(interrupted, workdir)
  (workdir / wd.CONFIG).write_bytes(content.encode("latin-1"))
  log = Quiet()
  trainer = h.bare_trainer(workdir, log=log)
  assert trainer._check_workdir() is None
  assert any("config.json" in line and "copy in state.json" in line for line in log.lines)
  assert (workdir / (wd.CONFIG + wd.DAMAGED)).exists()
  # ...and the copy still refuses another experiment.
  (workdir / wd.CONFIG).write_text("{")
  other = h.bare_trainer(workdir)
  other.config = other.config.replace(seed=3)
  with pytest.raises(ConfigError, match="seed: now 3"):
    other._check_workdir()


@pytest.mark.parametrize("content", ["", "{\"status\": \"fin", "[]", "{}",
                                     "{\"status\": \"finished\", \"backbone\": \"b\", "
                                     "\"dataset\": \"d\", \"val\": {\"top1\": 1}}",
                                     "{\"status\": \"exploded\", \"backbone\": \"b\", "
                                     "\"dataset\": \"d\"}"])
def test_damaged_result_json_is_moved_aside_and_the_run_resumed(tmp_path, interrupted,
                                                               content):
  workdir = tmp_path / "run"
  shutil.copytree(interrupted, workdir)
  (workdir / wd.RESULT).write_text(content)
  log = Quiet()
  assert h.bare_trainer(workdir, log=log)._check_workdir() is None
  assert len(log.lines) == 1 and "result.json" in log.lines[0] and "resuming" in log.lines[0]
  assert not (workdir / wd.RESULT).exists() and (workdir / (wd.RESULT + wd.DAMAGED)).exists()


def test_a_config_json_of_unknown_keys_is_one_clear_error(tmp_path, interrupted):
  workdir = tmp_path / "run"
  shutil.copytree(interrupted, workdir)
  (workdir / wd.CONFIG).write_text(json.dumps({"backbone": "bare", "colour": "red"}))
  with pytest.raises(wd.WorkdirError, match="config.json does not hold a TrainConfig"):
    h.bare_trainer(workdir)._check_workdir()


@pytest.mark.heavy
def test_engine_reevaluates_a_finished_run_whose_result_is_damaged(tmp_path, digits_data_dir):
  cfg = tiny_config(tmp_path / "run", digits_data_dir, max_epochs=1)
  first = runner.train(cfg, log=Quiet())
  _truncate(os.path.join(cfg.workdir, wd.RESULT))
  log = Quiet()
  again = runner.train(cfg, log=log)
  assert not any(line.startswith("epoch") for line in log.lines)   # not retrained
  # The same verdict on the same weights (one tiny epoch may be `degenerate`: its test
  # top-1 is not significantly above chance).
  assert again.status == first.status != "failed" and again.test == first.test
  assert again.significance == first.significance
  assert any("result.json" in line and "moved it to" in line for line in log.lines)


# ---------------------------------------------------------------- TensorBoard
def _scalar_steps(workdir):
  seen = []
  for filename in events.event_files(str(workdir)):
    for event in events.read_events(filename):
      seen += [(v.tag, event.step) for v in event.summary.value]
  return seen


def test_a_resumed_run_logs_each_epoch_once_in_tensorboard(tmp_path):
  workdir = tmp_path / "run"
  # Killed after writing epoch 4's summaries, before its checkpoint: the resumed run
  # redoes epoch 4 and must not show it twice.
  wd.FAULT_HOOK = h.KillAt(3, "checkpoint")
  with pytest.raises(h.Kill):
    h.run(workdir)
  wd.FAULT_HOOK = None
  assert ("train/loss", 4) in _scalar_steps(workdir)
  trainer = h.run(workdir)
  trainer.writer = None
  seen = [s for s in _scalar_steps(workdir) if s[0] == "train/loss"]
  assert sorted(seen) == [("train/loss", e) for e in range(1, trainer.schedule.epoch + 1)]
  assert len(events.event_files(str(workdir))) == 2


def test_purge_drops_final_summaries_and_a_record_cut_short(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path))
  with writer.as_default():
    for step in (1, 2, 3):
      tf.summary.scalar("train/loss", 1.0, step=step)
    tf.summary.scalar("final/test_top1", 0.5, step=3)
  writer.close()
  (name,) = events.event_files(str(tmp_path))
  with open(name, "ab") as f:
    f.write(b"\x10\x00\x00")                               # a kill mid-record
  assert events.purge(str(tmp_path), keep_through_step=2) == 2
  assert sorted(_scalar_steps(tmp_path)) == [("train/loss", 1), ("train/loss", 2)]
  assert events.purge(str(tmp_path), keep_through_step=2) == 0     # idempotent


# ---------------------------------------------------------------- the lock
def test_a_second_live_run_is_refused(tmp_path):
  cfg = TrainConfig(workdir=str(tmp_path / "run"), weights="none")
  with lock_lib.WorkdirLock(cfg.workdir):
    from tfbackbones.training.loop import Trainer
    with pytest.raises(lock_lib.LockError, match=f"in use by pid {os.getpid()}"):
      Trainer(cfg, log=Quiet()).run()
  assert not os.path.exists(os.path.join(cfg.workdir, wd.LOCK))   # released


def _dead_pid() -> int:
  child = subprocess.Popen(["true"])
  child.wait()
  return child.pid


def _write_lock(workdir, info, age=0.0):
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, wd.LOCK)
  with open(path, "w") as f:
    f.write(info if isinstance(info, str) else json.dumps(info))
  stamp = time.time() - age
  os.utime(path, (stamp, stamp))


@pytest.mark.parametrize("info,age,taken", [
    ({"host": "HOST", "pid": "DEAD"}, 0, True),       # kill -9 on this host
    ({"host": "other-host", "pid": 1}, 10, False),    # live elsewhere: fresh heartbeat
    ({"host": "other-host", "pid": 1}, 3600, True),   # heartbeat stopped an hour ago
    ("{\"host\": ", 0, True),                         # killed while writing the lock
])
def test_a_stale_lock_is_taken_over_and_a_live_one_refused(tmp_path, info, age, taken):
  import socket
  if isinstance(info, dict):
    info = {k: {"HOST": socket.gethostname(), "DEAD": _dead_pid()}.get(v, v)
            for k, v in info.items()}
  _write_lock(str(tmp_path), info, age)
  log = Quiet()
  lock = lock_lib.WorkdirLock(str(tmp_path), log=log)
  if not taken:
    with pytest.raises(lock_lib.LockError, match="other-host"):
      lock.acquire()
    return
  with lock:
    held = json.load(open(tmp_path / wd.LOCK))
    assert held["pid"] == os.getpid()
    if isinstance(info, dict):
      assert "taking over" in log.lines[0]


def test_the_heartbeat_moves(tmp_path):
  with lock_lib.WorkdirLock(str(tmp_path), heartbeat_seconds=0.05):
    first = os.stat(tmp_path / wd.LOCK).st_mtime_ns
    time.sleep(0.5)
    assert os.stat(tmp_path / wd.LOCK).st_mtime_ns > first


def test_a_killed_holder_process_is_taken_over(tmp_path):
  """A real kill -9 of a process holding the lock (flock released by the kernel)."""
  code = (f"import sys, time; sys.path.insert(0, {ROOT!r})\n"
          "from tfbackbones.training import lock\n"
          f"lock.WorkdirLock({str(tmp_path)!r}).acquire()\n"
          "print('held', flush=True); time.sleep(600)")
  child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  try:
    assert child.stdout.readline().strip() == "held"
    with pytest.raises(lock_lib.LockError, match=f"pid {child.pid}"):
      lock_lib.WorkdirLock(str(tmp_path)).acquire()
    child.kill()
    child.wait()
    log = Quiet()
    with lock_lib.WorkdirLock(str(tmp_path), log=log):
      assert "taking over the lock of pid" in log.lines[0]
  finally:
    if child.poll() is None:
      child.kill()


# ---------------------------------------------------------------- bad settings, fast
def test_keep_checkpoints_zero_and_a_file_workdir_fail_before_any_data(tmp_path):
  with pytest.raises(ConfigError, match="--keep_checkpoints=0"):
    TrainConfig(keep_checkpoints=0).validate()
  a_file = tmp_path / "notes.txt"
  a_file.write_text("x")
  with pytest.raises(wd.WorkdirError, match="is a file"):
    runner.check(TrainConfig(workdir=str(a_file), weights="none"))


@pytest.mark.parametrize("flag", ["--keep_checkpoints=0", "--workdir={file}"])
def test_train_cli_bad_workdir_settings_are_one_line_exit_2(tmp_path, flag):
  a_file = tmp_path / "notes.txt"
  a_file.write_text("x")
  proc = subprocess.run(
      [sys.executable, "-m", "tfbackbones.train", "--backbone=mobilenet_v3_small",
       "--weights=none", f"--workdir={tmp_path / 'run'}", flag.format(file=a_file),
       "--data_dir=/nonexistent"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in proc.stderr
  assert ("keep_checkpoints" in errors[0]) or ("is a file" in errors[0])


def test_resume_points_reports_damage_without_raising(tmp_path, interrupted):
  workdir = tmp_path / "run"
  shutil.copytree(interrupted, workdir)
  _garbage(workdir / wd.STATE)
  points, notes, newest = resume.resume_points(str(workdir))
  assert [p.epoch for p in points] == [5, 4] and newest == 5
  assert len(notes) == 1 and "state.json" in notes[0]


# ---------------------------------------------------------------- studies and the report
def _study_configs(root):
  return [TrainConfig(backbone="bare", dataset="sklearn_digits", seed=s, weights="none",
                      workdir=str(root / f"sklearn_digits/bare/frac1/seed{s}"))
          for s in range(4)]


def test_a_study_names_unreadable_runs_and_never_stops(tmp_path):
  from experiments import run
  configs = _study_configs(tmp_path)
  for cfg, (name, text) in zip(configs, [(wd.RESULT, "{\"status\": \"fin"),
                                         (wd.RESULT, "[]"), (wd.CONFIG, "\x00"),
                                         (wd.STATE, "{")]):
    os.makedirs(cfg.workdir)
    with open(os.path.join(cfg.workdir, name), "w") as f:
      f.write(text)
  assert [run.run_state(c)[0] for c in configs] == ["unreadable"] * 3 + ["interrupted"]
  trained, log = [], Quiet()

  def train_fn(cfg, log):
    trained.append(cfg.seed)
    if cfg.seed == 3:
      raise lock_lib.LockError(f"{cfg.workdir} is in use by pid 7 on host h")
    raise RuntimeError("no data here")
  outcomes = run.run_shard(configs, log=log, train_fn=train_fn)
  assert trained == [0, 1, 2, 3]                               # nothing stopped the shard
  assert "3 unreadable (healing)" in log.lines[0]
  assert sum("UNREADABLE" in line and "seed" in line for line in log.lines) == 3
  assert [o.status for o in outcomes] == ["failed"] * 3 + [run.IN_USE]
  assert not os.path.exists(os.path.join(configs[3].workdir, wd.RESULT))   # not recorded
  assert "1 in use by another live process" in run.summary(outcomes)


def test_the_report_counts_every_run_directory(tmp_path):
  from tfbackbones.report import records
  cases = {"seed0": {wd.RESULT: "{\"status\": \"fin"}, "seed1": {wd.RESULT: "[]"},
           "seed2": {wd.CONFIG: "\x00\xff"}, "seed3": {wd.STATE: "{}"},
           "seed4": {wd.CONFIG: json.dumps(TrainConfig(backbone="bare").to_dict())},
           "seed5": {wd.STATE: json.dumps({"config": TrainConfig(backbone="bare").to_dict()})}}
  for seed, files in cases.items():
    directory = tmp_path / "sklearn_digits" / "bare" / "frac1" / seed
    directory.mkdir(parents=True)
    for name, text in files.items():
      (directory / name).write_bytes(text.encode("latin-1"))
  found = records.read_workdir(str(tmp_path))
  assert len(found) == len(cases)
  assert sorted(r.status for r in found) == sorted(
      ["unreadable"] * 4 + ["incomplete"] * 2)


def test_the_shard_summary_keeps_its_columns_for_long_run_ids():
  from experiments import run as run_lib
  long_id = "lfw_subset/" + "folder_tmp_a_rather_long_photo_folder_name/" * 2 + "seed0"
  table = run_lib.summary([run_lib.Outcome("short/seed0", "finished", 0.9, 12.0),
                           run_lib.Outcome(long_id, "finished", 0.8, 30.0)])
  rows = table.splitlines()[:3]
  assert len({row.index("finished") if "finished" in row else row.index("status")
              for row in rows}) == 1, table
