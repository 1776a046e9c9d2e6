r"""Run a study, or one shard of it: `python -m experiments.run`.

  python -m experiments.run --study=paper --workdir=gs://BUCKET/runs/paper \
      --data_dir=gs://BUCKET/tensorflow_datasets --shard_index=3 --num_shards=60
  python -m experiments.run --study=adhoc --backbones=a,b --datasets=x,y --seeds=3 \
      --train_fractions=0.1,1 --workdir=runs/mine --max_epochs=20
  python -m experiments.run --study=paper --workdir=... --dry_run   # list, train nothing

Each run trains in its own sub-workdir, `<workdir>/<dataset>/<backbone>/frac<f>/seed<s>`,
through the engine (`tfbackbones.runner.train`), which resumes an interrupted run from
its last epoch; a finished run is skipped. So the same command can be rerun after a
preemption, and N machines of a job array, each with its own --shard_index, cover the
study exactly once: the runs are sorted by id and run i goes to shard i % N.

A failing run does not stop the others: its error goes to its `result.json`
("status": "failed") and to the summary at the end; the exit code is 1 if any run failed
(rerunning retries the failed runs), 2 for a bad flag or study. Then:
`python -m tfbackbones.report --workdir=DIR --out=DIR/report`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
import traceback
from typing import Callable, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from experiments import studies  # noqa: E402
from tfbackbones import cli  # noqa: E402
from tfbackbones.config import ConfigError, TrainConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("study", None, f"Study name: {', '.join(studies.names())}.")
flags.DEFINE_string("workdir", None, "Study directory (local or gs://); one sub-workdir "
                    "per run.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir for every run.")
flags.DEFINE_integer("shard_index", 0, "This machine's shard, in [0, num_shards).")
flags.DEFINE_integer("num_shards", 1, "Machines the study is split over.")
flags.DEFINE_list("backbones", None, "Backbones (adhoc), or instead of the study's.")
flags.DEFINE_list("datasets", None, "Datasets (adhoc), or instead of the study's.")
flags.DEFINE_integer("seeds", None, "Seeds per cell: 0..seeds-1.")
flags.DEFINE_list("train_fractions", None, "Training fractions (adhoc), e.g. 0.1,1.")
flags.DEFINE_integer("max_epochs", None, "Override the epoch cap of every run.")
flags.DEFINE_multi_string("override", [], "KEY=VALUE: set any TrainConfig field on every "
                          "run (repeatable), e.g. --override=batch_size=128.")
flags.DEFINE_bool("dry_run", False, "List this shard's runs and their state; train nothing.")


# ---------------------------------------------------------------------------- planning
def parse_override(text: str) -> tuple[str, object]:
  """`key=value` -> (key, value typed like the TrainConfig field)."""
  key, sep, raw = text.partition("=")
  fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
  if not sep or key not in fields:
    raise ConfigError(f"--override={text!r}: use KEY=VALUE with KEY one of "
                      f"{', '.join(sorted(fields))}")
  field = fields[key]
  kind = str(field.type)
  if "Optional" in kind and raw.lower() in ("none", ""):
    return key, None
  try:
    if "bool" in kind:
      if raw.lower() not in ("true", "false", "1", "0"):
        raise ValueError(raw)
      return key, raw.lower() in ("true", "1")
    if "int" in kind:
      return key, int(raw)
    if "float" in kind:
      return key, float(raw)
  except ValueError:
    raise ConfigError(f"--override={text!r}: {key} takes {kind} values") from None
  return key, raw


def plan_from_flags() -> list[TrainConfig]:
  """The whole study (every shard) as validated configs, from the flags."""
  if not FLAGS.study or not FLAGS.workdir:
    raise ConfigError("give --study=NAME and --workdir=DIR (studies: "
                      f"{', '.join(studies.names())})")
  overrides = dict(parse_override(o) for o in FLAGS.override)
  if FLAGS.max_epochs is not None:
    overrides["max_epochs"] = FLAGS.max_epochs
  try:
    fractions = ([float(f) for f in FLAGS.train_fractions]
                 if FLAGS.train_fractions else None)
  except ValueError:
    raise ConfigError(f"--train_fractions={FLAGS.train_fractions}: numbers, e.g. 0.1,1") \
        from None
  return studies.build(
      FLAGS.study, FLAGS.workdir, data_dir=FLAGS.data_dir, overrides=overrides,
      backbones=FLAGS.backbones, datasets=FLAGS.datasets, seeds=FLAGS.seeds,
      train_fractions=fractions)


def write_manifest(workdir: str, name: str, configs: Sequence[TrainConfig]) -> str:
  """Writes `<workdir>/studies/<name>.json`: every run the study expects.

  The report reads it to show runs that never started as missing, not silently absent.
  Every shard writes the same content, each through its own temporary file.
  """
  import json  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  directory = os.path.join(workdir, "studies")
  tf.io.gfile.makedirs(directory)
  path = os.path.join(directory, f"{name}.json")
  manifest = {"study": name, "runs": [
      {"id": studies.run_id(c), "backbone": c.backbone, "weights": c.weights,
       "dataset": c.dataset, "seed": c.seed, "train_fraction": c.train_fraction,
       "select_on": c.select_on}
      for c in configs]}
  tmp = f"{path}.tmp-{os.getpid()}-{time.time_ns()}"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(json.dumps(manifest, indent=1, sort_keys=True))
  tf.io.gfile.rename(tmp, path, overwrite=True)
  return path


# ---------------------------------------------------------------------------- running
def run_state(config: TrainConfig) -> tuple[str, Optional[dict]]:
  """('finished'|'failed'|'interrupted'|'todo', result.json or None) of a run's workdir."""
  from tfbackbones.training import workdir as wd  # pylint: disable=import-outside-toplevel
  result = wd.read_json(wd.path(config.workdir, wd.RESULT))
  if result and result.get("status") in ("finished", "failed"):
    return result["status"], result
  if wd.read_json(wd.path(config.workdir, wd.STATE)) is not None:
    return "interrupted", None
  return "todo", None


def _first_line(text: Optional[str]) -> str:
  """Errors such as an unknown backbone list every valid name: result.json keeps them."""
  lines = (text or "").splitlines()
  return lines[0] + (" (...; see its result.json)" if len(lines) > 1 else "") if lines else ""


def _duration(seconds: Optional[float]) -> str:
  if seconds is None:
    return "?"
  seconds = int(max(0, seconds))
  return (f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600
          else f"{seconds // 60}m{seconds % 60:02d}s")


def estimate_remaining(pending: Sequence[TrainConfig], walls: dict) -> Optional[float]:
  """Seconds left: each pending run costs the mean wall time of finished runs of the same
  (dataset, backbone), else of the same dataset, else of all; None before any finished.

  Args:
    pending: runs not yet done.
    walls: {(dataset, backbone): [wall seconds of finished runs]}.
  """
  everything = [w for ws in walls.values() for w in ws]
  if not everything:
    return None
  mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
  total = 0.0
  for cfg in pending:
    same = walls.get((cfg.dataset, cfg.backbone))
    dataset = [w for (d, _), ws in walls.items() if d == cfg.dataset for w in ws]
    total += mean(same or dataset or everything)
  return total


def _failure_record(config: TrainConfig, error: BaseException, seconds: float) -> dict:
  """A result.json for a run that failed before the engine could write one."""
  from tfbackbones.data import catalog  # pylint: disable=import-outside-toplevel
  try:
    domain = catalog.get(config.dataset).domain
  except catalog.UnknownDatasetError:
    domain = None
  return {"status": "failed", "error": f"{type(error).__name__}: {error}",
          "config": config.to_dict(), "backbone": config.backbone,
          "dataset": config.dataset, "domain": domain, "seed": config.seed,
          "train_fraction": config.train_fraction,
          "selection_protocol": ("selected-on-test" if config.selected_on_test
                                 else "val-split"),
          "wall_time_sec": seconds}


def _record_failure(config: TrainConfig, error: Exception, seconds: float) -> None:
  """Makes sure the run's result.json holds this error.

  The engine writes it for failures inside training, but not for those it raises before
  (unknown backbone or dataset, a workdir holding another experiment). A finished
  result.json is never overwritten.
  """
  from tfbackbones.training import workdir as wd  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  path = wd.path(config.workdir, wd.RESULT)
  try:
    current = wd.read_json(path)
    message = f"{type(error).__name__}: {error}"
    if current and (current.get("status") == "finished" or current.get("error") == message):
      return
    tf.io.gfile.makedirs(config.workdir)
    wd.write_json(path, _failure_record(config, error, seconds))
  except Exception:  # pylint: disable=broad-except
    logging.exception("could not write the failure of %s", config.workdir)


@dataclasses.dataclass
class Outcome:
  run_id: str
  status: str          # finished | skipped | failed
  top1: Optional[float] = None
  seconds: float = 0.0
  error: Optional[str] = None


def run_shard(configs: Sequence[TrainConfig], *, shard_index: int = 0, num_shards: int = 1,
              log: Callable[[str], None] = print,
              train_fn: Optional[Callable[..., dict]] = None,
              **trainer_kwargs) -> list[Outcome]:
  """Trains this shard's runs one after another; returns one Outcome per run.

  Args:
    configs: the whole study (every shard), e.g. from `studies.build`.
    shard_index, num_shards: which part of the id-sorted study is ours.
    log: where study-level and engine progress lines go.
    train_fn: `runner.train` unless a test passes another.
    **trainer_kwargs: passed to the engine's Trainer (tests pass hooks).

  Exceptions other than `Exception` (KeyboardInterrupt, SystemExit) stop the shard, as a
  kill would; the interrupted run resumes on the next invocation.
  """
  from tfbackbones import runner  # pylint: disable=import-outside-toplevel
  train_fn = train_fn or runner.train
  mine = studies.shard(configs, shard_index, num_shards)
  tag = f"[study shard {shard_index + 1}/{num_shards}]"
  states = {studies.run_id(c): run_state(c) for c in mine}
  counts = {}
  for status, _ in states.values():
    counts[status] = counts.get(status, 0) + 1
  log(f"{tag} {len(mine)} of {len(configs)} runs: {counts.get('finished', 0)} finished, "
      f"{counts.get('failed', 0)} failed (retrying), {counts.get('interrupted', 0)} "
      f"interrupted (resuming), {counts.get('todo', 0)} to do")
  walls: dict = {}   # (dataset, backbone) -> wall seconds of finished runs, for the ETA
  for cfg in mine:
    status, result = states[studies.run_id(cfg)]
    if status == "finished":
      walls.setdefault((cfg.dataset, cfg.backbone), []).append(result["wall_time_sec"])
  outcomes: list[Outcome] = []
  started = time.time()
  for i, cfg in enumerate(mine):
    rid = studies.run_id(cfg)
    status, result = states[rid]
    if status == "finished":
      try:
        diff = cfg.experiment_diff(TrainConfig.from_dict(result.get("config") or {}))
      except ConfigError:  # written by another version of TrainConfig: cannot compare
        diff = {}
      if not diff:
        outcomes.append(Outcome(rid, "skipped", result["test"]["top1"]))
        log(f"{tag} {rid}: already finished (test top1 {result['test']['top1']:.4f}); "
            "not training again")
        continue
      changes = ", ".join(f"{k}: now {a!r}, workdir has {b!r}" for k, (a, b) in diff.items())
      outcomes.append(Outcome(rid, "failed", error=f"ConfigError: {cfg.workdir} finished "
                              f"with another configuration ({changes}); use a new --workdir"))
      log(f"{tag} {rid}: FAILED: {outcomes[-1].error}")
      continue
    done = len(outcomes)
    eta = estimate_remaining(
        [c for c in mine[i:] if states[studies.run_id(c)][0] != "finished"], walls)
    log(f"{tag} {done}/{len(mine)} done ({sum(o.status == 'failed' for o in outcomes)} "
        f"failed) | now: {rid} | elapsed {_duration(time.time() - started)} | "
        f"ETA {_duration(eta)}")
    t0 = time.time()
    try:
      result = train_fn(cfg, log=log, **trainer_kwargs)
    except Exception as e:  # pylint: disable=broad-except
      seconds = time.time() - t0
      _record_failure(cfg, e, seconds)
      outcomes.append(Outcome(rid, "failed", seconds=seconds,
                              error=f"{type(e).__name__}: {e}"))
      if not isinstance(e, runner.USER_ERRORS):
        log(traceback.format_exc())
      log(f"{tag} {rid}: FAILED: {_first_line(outcomes[-1].error)}")
      continue
    seconds = time.time() - t0
    walls.setdefault((cfg.dataset, cfg.backbone), []).append(result["wall_time_sec"])
    outcomes.append(Outcome(rid, "finished", result["test"]["top1"], seconds))
  log(f"{tag} {len(mine)}/{len(mine)} done in {_duration(time.time() - started)}")
  return outcomes


def summary(outcomes: Sequence[Outcome]) -> str:
  """The end-of-shard table: every run, then the failures with their errors."""
  lines = [f"{'run':48s} {'status':9s} {'test top1':>9s} {'time':>8s}"]
  for o in outcomes:
    top1 = f"{o.top1:.4f}" if o.top1 is not None else "-"
    lines.append(f"{o.run_id:48s} {o.status:9s} {top1:>9s} {_duration(o.seconds):>8s}")
  failed = [o for o in outcomes if o.status == "failed"]
  counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}
  lines.append(f"\n{counts['finished']} trained, {counts['skipped']} already finished, "
               f"{counts['failed']} failed")
  for o in failed:
    lines.append(f"FAILED {o.run_id}: {_first_line(o.error)}")
  if failed:
    lines.append("Rerun the same command to retry the failed runs.")
  return "\n".join(lines)


def main(argv):
  del argv
  cli.quiet_logs()
  try:
    configs = plan_from_flags()
    mine = studies.shard(configs, FLAGS.shard_index, FLAGS.num_shards)
  except (ConfigError, studies.UnknownStudyError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if FLAGS.dry_run:
    for cfg in mine:
      print(f"{studies.run_id(cfg):48s} {run_state(cfg)[0]}")
    print(f"shard {FLAGS.shard_index + 1}/{FLAGS.num_shards}: {len(mine)} of "
          f"{len(configs)} runs")
    return 0
  if mine:  # --override=cpu_replicas=N: the CPU is split before TensorFlow starts
    from tfbackbones.training import distribute  # pylint: disable=import-outside-toplevel
    distribute.configure_cpu_replicas(max(c.cpu_replicas for c in mine))
  write_manifest(FLAGS.workdir, FLAGS.study, configs)
  outcomes = run_shard(configs, shard_index=FLAGS.shard_index, num_shards=FLAGS.num_shards)
  print("\n" + summary(outcomes))
  print(f"\nReport: python -m tfbackbones.report --workdir={FLAGS.workdir} "
        f"--out={os.path.join(FLAGS.workdir, 'report')}")
  return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
  app.run(main)
