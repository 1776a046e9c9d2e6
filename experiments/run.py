r"""Run a study, or one shard of it: `python -m experiments.run`.

  python -m experiments.run --study=paper --workdir=gs://BUCKET/runs/paper \
      --data_dir=gs://BUCKET/tensorflow_datasets --shard_index=3 --num_shards=60
  python -m experiments.run --study=adhoc --backbones=a,b --datasets=x,y --seeds=3 \
      --train_fractions=0.1,1 --workdir=runs/mine --max_epochs=20
  python -m experiments.run --study=adhoc --backbones=a --datasets=breakhis_40x \
      --set image_size=672x448 --workdir=runs/bh --dry_run   # list, train nothing

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
from collections.abc import Callable, Sequence

from absl import app, flags

from experiments import studies
from tfbackbones import cli, nextsteps, results
from tfbackbones.config import ConfigError, TrainConfig, parse_assignments
from tfbackbones.deploy import exporters

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
flags.DEFINE_multi_string("set", [], "KEY=VALUE: set any TrainConfig field on every run "
                          "(repeatable), e.g. --set image_size=672x448; the same language "
                          "as tfbackbones.train --set.")
flags.DEFINE_multi_string("override", [], "Old spelling of --set (same language).")
flags.DEFINE_list("export", [], "After training, export each finished run of this shard "
                  "to these formats and measure them (export.json; see tfbackbones.export), "
                  "e.g. litert,litert_int8.")
flags.DEFINE_bool("dry_run", False, "List this shard's runs and their state; train nothing.")


# ---------------------------------------------------------------------------- planning
def plan_from_flags() -> list[TrainConfig]:
  """The whole study (every shard) as validated configs, from the flags."""
  if not FLAGS.study or not FLAGS.workdir:
    raise ConfigError("give --study=NAME and --workdir=DIR (studies: "
                      f"{', '.join(studies.names())})")
  overrides = parse_assignments(FLAGS.override + FLAGS.set)
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
  import json

  import tensorflow as tf
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
def run_state(config: TrainConfig) -> tuple[str, results.RunResult | None]:
  """(state, result) of a run's workdir; state is a result status (`results.STATUSES`),
  'unreadable' (a damaged result.json, or config.json without a result), 'interrupted'
  (state.json, even a damaged one: the engine falls back past it) or 'todo'."""
  return _state_and_problem(config)[:2]


def _state_and_problem(config: TrainConfig) -> tuple[str, results.RunResult | None, str]:
  """run_state, and for an unreadable run the one line that says which file and why."""
  from tfbackbones.training import workdir as wd
  try:
    result = results.read(wd.path(config.workdir, wd.RESULT))
  except results.ResultError as e:
    return "unreadable", None, str(e)
  if result is not None:
    return result.status, result, ""
  try:
    saved = wd.read_json(wd.path(config.workdir, wd.CONFIG))
    if saved is not None and not isinstance(saved, dict):
      raise wd.DamagedFileError(f"{wd.path(config.workdir, wd.CONFIG)}: not a JSON object")
  except wd.DamagedFileError as e:
    return "unreadable", None, str(e)
  try:
    state = wd.read_json(wd.path(config.workdir, wd.STATE))
  except wd.DamagedFileError:
    state = "damaged"
  return ("interrupted" if state is not None else "todo"), None, ""


def _first_line(text: str | None) -> str:
  """Errors such as an unknown backbone list every valid name: result.json keeps them."""
  lines = (text or "").splitlines()
  return lines[0] + (" (...; see its result.json)" if len(lines) > 1 else "") if lines else ""


def _duration(seconds: float | None) -> str:
  if seconds is None:
    return "?"
  seconds = int(max(0, seconds))
  return (f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600
          else f"{seconds // 60}m{seconds % 60:02d}s")


def estimate_remaining(pending: Sequence[TrainConfig], walls: dict) -> float | None:
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


def _record_failure(config: TrainConfig, error: Exception, seconds: float) -> None:
  """Makes sure the run's result.json holds this error.

  The engine writes it for failures inside training, but not for those it raises before
  (unknown backbone or dataset, a workdir holding another experiment). A result that is
  not a failure is never overwritten.
  """
  import tensorflow as tf

  from tfbackbones.data import catalog
  from tfbackbones.training import workdir as wd
  path = wd.path(config.workdir, wd.RESULT)
  try:
    domain = catalog.get(config.dataset).domain
  except catalog.UnknownDatasetError:
    domain = None
  failure = results.RunResult.failure(config, error, seconds=seconds, domain=domain)
  try:
    try:
      current = results.read(path)
    except results.ResultError:
      current = None  # a damaged file is replaced by the error that is now known
    if current and (current.status != results.FAILED or current.error == failure.error):
      return
    tf.io.gfile.makedirs(config.workdir)
    results.write(path, failure)
  except Exception:
    logging.exception("could not write the failure of %s", config.workdir)


IN_USE = "in use"


@dataclasses.dataclass
class Outcome:
  run_id: str
  status: str          # finished | skipped | failed | in use (another process trains it)
  top1: float | None = None
  seconds: float = 0.0
  error: str | None = None


def run_shard(configs: Sequence[TrainConfig], *, shard_index: int = 0, num_shards: int = 1,
              log: Callable[[str], None] = print,
              train_fn: Callable[..., dict] | None = None,
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
  from tfbackbones import runner
  from tfbackbones.training import lock
  train_fn = train_fn or runner.train
  mine = studies.shard(configs, shard_index, num_shards)
  tag = f"[study shard {shard_index + 1}/{num_shards}]"
  probed = {studies.run_id(c): _state_and_problem(c) for c in mine}
  states = {rid: (status, result) for rid, (status, result, _) in probed.items()}
  counts = {}
  for status, _ in states.values():
    counts[status] = counts.get(status, 0) + 1
  log(f"{tag} {len(mine)} of {len(configs)} runs: {counts.get('finished', 0)} finished, "
      f"{counts.get('failed', 0)} failed (retrying), {counts.get('interrupted', 0)} "
      f"interrupted (resuming), "
      + (f"{counts['unreadable']} unreadable (healing), " if counts.get("unreadable") else "")
      + f"{counts.get('todo', 0)} to do")
  for rid, (status, _, problem) in probed.items():
    if status == "unreadable":  # the engine moves the damaged file aside and resumes
      log(f"{tag} {rid}: UNREADABLE: {_first_line(problem)}")
  walls: dict = {}   # (dataset, backbone) -> wall seconds of finished runs, for the ETA
  for cfg in mine:
    status, result = states[studies.run_id(cfg)]
    if status == "finished":
      walls.setdefault((cfg.dataset, cfg.backbone), []).append(result.wall_time_sec)
  outcomes: list[Outcome] = []
  started = time.time()
  for i, cfg in enumerate(mine):
    rid = studies.run_id(cfg)
    status, result = states[rid]
    if result is not None and status != results.FAILED:
      try:
        diff = cfg.experiment_diff(TrainConfig.from_dict(result.config or {}))
      except ConfigError:  # written by another version of TrainConfig: cannot compare
        diff = {}
      if not diff:
        outcomes.append(Outcome(rid, "skipped", result.test_top1 if result.ranked else None))
        what = (f"test top1 {result.test_top1:.4f}" if result.ranked
                else f"{status}, not a result: {result.reason}")
        log(f"{tag} {rid}: already finished ({what}); not training again")
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
    except lock.LockError as e:  # another live process trains it: not ours, not a failure
      outcomes.append(Outcome(rid, IN_USE, seconds=time.time() - t0, error=str(e)))
      log(f"{tag} {rid}: skipped: {_first_line(str(e))}")
      continue
    except Exception as e:
      seconds = time.time() - t0
      _record_failure(cfg, e, seconds)
      outcomes.append(Outcome(rid, "failed", seconds=seconds,
                              error=f"{type(e).__name__}: {e}"))
      if not isinstance(e, runner.USER_ERRORS):
        log(traceback.format_exc())
      log(f"{tag} {rid}: FAILED: {_first_line(outcomes[-1].error)}")
      continue
    seconds = time.time() - t0
    walls.setdefault((cfg.dataset, cfg.backbone), []).append(result.wall_time_sec)
    if result.ranked:
      outcomes.append(Outcome(rid, "finished", result.test_top1, seconds))
    else:
      outcomes.append(Outcome(rid, result.status, seconds=seconds, error=result.reason))
  log(f"{tag} {len(mine)}/{len(mine)} done in {_duration(time.time() - started)}")
  return outcomes


def _id_width(run_ids) -> int:
  """The run-id column's width: 48, or the longest id (folder datasets and --set
  overrides make ids longer, and a fixed 48 pushed their columns out of line)."""
  return max([48, *(len(i) for i in run_ids)])


def summary(outcomes: Sequence[Outcome]) -> str:
  """The end-of-shard table: every run, then the failures with their errors."""
  width = _id_width(o.run_id for o in outcomes)
  lines = [f"{'run':{width}s} {'status':9s} {'test top1':>9s} {'time':>8s}"]
  for o in outcomes:
    top1 = f"{o.top1:.4f}" if o.top1 is not None else "-"
    lines.append(f"{o.run_id:{width}s} {o.status:9s} {top1:>9s} {_duration(o.seconds):>8s}")
  failed = [o for o in outcomes if o.status == "failed"]
  counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}
  lines.append(f"\n{counts['finished']} trained, {counts['skipped']} already finished, "
               f"{counts['failed']} failed")
  unhealthy = [o for o in outcomes if o.status in (results.DIVERGED, results.DEGENERATE)]
  busy = [o for o in outcomes if o.status == IN_USE]
  if busy:
    lines.append(f"{len(busy)} in use by another live process (not trained here):")
    lines += [f"  {o.run_id}: {_first_line(o.error)}" for o in busy]
  if unhealthy:
    lines.append(f"{len(unhealthy)} trained but are not results (never ranked):")
    lines += [f"  {o.status.upper()} {o.run_id}: {o.error}" for o in unhealthy]
  for o in failed:
    lines.append(f"FAILED {o.run_id}: {_first_line(o.error)}")
  if failed:
    lines.append("Rerun the same command to retry the failed runs.")
  return "\n".join(lines)


def dry_run(configs: Sequence[TrainConfig], mine: Sequence[TrainConfig]) -> int:
  """Lists this shard's runs and their state; names are checked as a real run would.

  Returns 2 if any run names an unknown backbone or dataset (each is listed), else 0.
  """
  from tfbackbones import runner
  invalid = unreadable = 0
  width = _id_width(studies.run_id(cfg) for cfg in mine)
  for cfg in mine:
    try:
      runner.check(cfg)
      state, _, problem = _state_and_problem(cfg)
      if state == "unreadable":
        unreadable += 1
        state = f"unreadable: {_first_line(problem)}"
    except runner.USER_ERRORS as e:
      invalid += 1
      state = f"INVALID: {_first_line(str(e))}"
    print(f"{studies.run_id(cfg):{width}s} {state}")
  print(f"shard {FLAGS.shard_index + 1}/{FLAGS.num_shards}: {len(mine)} of "
        f"{len(configs)} runs" + (f", {invalid} invalid" if invalid else "")
        + (f", {unreadable} unreadable (a real run heals them)" if unreadable else ""))
  return 2 if invalid else 0


def main(argv):
  del argv
  cli.quiet_logs()
  try:
    configs = plan_from_flags()
    mine = studies.shard(configs, FLAGS.shard_index, FLAGS.num_shards)
    if FLAGS.export:
      exporters.check_formats(FLAGS.export)  # a typo fails now, not after training
    from tfbackbones.training import workdir
    workdir.check_usable(FLAGS.workdir)  # before the manifest is written, not a traceback
  except (ConfigError, studies.UnknownStudyError, exporters.ExportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if FLAGS.dry_run:
    return dry_run(configs, mine)
  if mine:  # --set cpu_replicas=N: the CPU is split before TensorFlow starts
    from tfbackbones.training import distribute
    distribute.configure_cpu_replicas(max(c.cpu_replicas for c in mine))
  write_manifest(FLAGS.workdir, FLAGS.study, configs)
  try:
    outcomes = run_shard(configs, shard_index=FLAGS.shard_index,
                         num_shards=FLAGS.num_shards)
  except KeyboardInterrupt:
    cli.interrupted(FLAGS.workdir)
  print("\n" + summary(outcomes))
  if FLAGS.export:  # deployment artifacts and their accuracy/latency (tfbackbones/deploy)
    from tfbackbones.deploy import evaluation
    evaluation.export_finished([c.workdir for c in mine], FLAGS.export)
  print("\n" + nextsteps.text(FLAGS.workdir))  # TensorBoard and the report, runnable as printed
  return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
