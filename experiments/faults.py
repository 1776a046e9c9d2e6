r"""Kill a small study N times, damage its files, and prove nothing is lost.

  python -m experiments.faults --kills=20
  python -m experiments.faults --kills=3 --max_epochs=2 --dir=/tmp/faults --keep

Runs a small real study (`--backbone` at 32 px, weights none, on sklearn_digits) once
without interruption (the reference), then again under fire: each launch of
`experiments.run` is SIGKILLed at a random moment of one of three kinds:
  point   at the k-th write step of the workdir code (before a temporary file is
          written, before its rename, before a delete, before a checkpoint write);
  file    when the k-th new or changed file appears in the study directory;
  timer   after a random delay (start-up, data, mid-epoch, evaluation, anywhere).
Between launches it may damage the study (`--damage` probability): truncate a
state.json, config.json or result.json, garble a newest checkpoint's index, delete a
best/ directory, leave a stale temporary file. It relaunches until the study completes,
starting a new round if the kills are not all spent, then checks every round:

  kills=N resumed=R lost=0 duplicated=0 unresumable=0

lost: a run without a finished result, or an epoch missing from its history;
duplicated: an epoch twice in a history or twice in TensorBoard; unresumable: a launch
that ended in an error instead of resuming. Final status, test top-1 and test loss of every
run are compared with the reference run's (exactly: resumed training redoes the same
batches from the same state). Exit code 0 only if all three are 0 and every metric matches.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags

from tfbackbones import cli

FLAGS = flags.FLAGS
flags.DEFINE_integer("kills", 5, "SIGKILLs to deliver.")
flags.DEFINE_string("dir", None, "Where the studies go (default: a new temporary dir).")
flags.DEFINE_bool("keep", False, "Keep --dir afterwards (default: delete a temporary one).")
flags.DEFINE_integer("seed", 0, "Seed of the kill moments and damages.")
flags.DEFINE_string("backbone", "mobilenet_v3_small", "Backbone of the study's runs.")
flags.DEFINE_integer("seeds", 2, "Runs in the study (seeds 0..n-1).")
flags.DEFINE_integer("max_epochs", 3, "Epochs per run.")
flags.DEFINE_float("train_fraction", 0.3, "Share of the digits training split per run.")
flags.DEFINE_float("damage", 0.3, "Probability of damaging a file before a relaunch.")
flags.DEFINE_string("register", None, "module:function to call in each launch before the "
                    "study starts, e.g. to register a tiny test backbone (tests do).")
flags.DEFINE_integer("timeout", 900, "Seconds a launch may take before it counts as hung.")

_KILL_ENV = "TFBACKBONES_FAULTS_KILL_AT"   # read by experiments/faults_child.py
_LAUNCHED: list = []   # launches, so that stopping this tool stops them too


# ---------------------------------------------------------------------------- launching
def study_args(workdir: str, data_dir: str) -> list[str]:
  return ["--study=adhoc", f"--backbones={FLAGS.backbone}", "--datasets=sklearn_digits",
          f"--seeds={FLAGS.seeds}", f"--train_fractions={FLAGS.train_fraction}",
          f"--workdir={workdir}", f"--data_dir={data_dir}", f"--max_epochs={FLAGS.max_epochs}",
          "--set=weights=none", "--set=image_size=32", "--set=batch_size=32",
          "--set=adamw_patience=1", "--set=sgd_patience=1", "--set=steps_per_execution=4",
          "--set=augment=none", "--set=keep_checkpoints=2", "--set=fused_kernels=false"]


def launch(workdir: str, data_dir: str, kill_at: int | None = None) -> subprocess.Popen:
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  env.pop(_KILL_ENV, None)
  if FLAGS.register:
    env["TFBACKBONES_FAULTS_REGISTER"] = FLAGS.register
  if kill_at is not None:
    env[_KILL_ENV] = str(kill_at)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.Popen([sys.executable, "-m", "experiments.faults_child"]
                          + study_args(workdir, data_dir),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, cwd=root, start_new_session=True)
  _LAUNCHED.append(proc)
  return proc


def prepare_data(data_dir: str) -> None:
  """Prepares the digits once, in a process of its own, before any run.

  A run that prepares its dataset in-process ends with different numbers from one that
  finds it prepared (measured: the first reference run's test loss differed from every
  resumed copy, the second run's matched exactly), so the reference must not be the
  one to prepare it.
  """
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  code = ("import tensorflow_datasets as tfds, tfds_builders\n"
          f"tfds.builder('sklearn_digits', data_dir={data_dir!r}).download_and_prepare()")
  subprocess.run([sys.executable, "-c", code], cwd=root, check=True,
                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _snapshot(directory: str) -> dict:
  out = {}
  for dirname, _, files in os.walk(directory):
    for name in files:
      full = os.path.join(dirname, name)
      try:
        out[full] = os.stat(full).st_mtime_ns
      except FileNotFoundError:
        pass
  return out


def supervise(proc: subprocess.Popen, mode: str, rng: random.Random, workdir: str,
              budget: float) -> tuple[bool, str]:
  """Waits for `proc`, killing it as `mode` says; returns (killed, its output)."""
  deadline = time.time() + FLAGS.timeout
  kill_time = time.time() + rng.uniform(0.5, budget) if mode == "timer" else None
  skip = rng.randrange(0, 25)
  before = _snapshot(workdir) if mode == "file" else None
  killed = False
  while proc.poll() is None:
    if time.time() > deadline:
      killed = True
      break
    if kill_time is not None and time.time() >= kill_time:
      killed = True
      break
    if before is not None:
      now = _snapshot(workdir)
      changed = [p for p, t in now.items() if before.get(p) != t]
      if len(changed) > skip:
        killed = True
        break
      if changed:
        skip, before = skip - len(changed), now
    time.sleep(0.02)
  if killed:
    os.killpg(proc.pid, signal.SIGKILL)
  output = proc.communicate()[0]
  # The point hook kills the child itself: -SIGKILL either way.
  return killed or proc.returncode == -signal.SIGKILL, output


# ---------------------------------------------------------------------------- damage
def damage(workdir: str, rng: random.Random) -> str | None:
  """Damages one file of a random run; returns what was done."""
  runs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(workdir, "*", "*", "*",
                                                                     "*", "config.json"))})
  if not runs:
    return None
  run = rng.choice(runs)
  choices = []
  for name in ("state.json", "config.json", "result.json"):
    if os.path.exists(os.path.join(run, name)):
      choices.append(("truncate", os.path.join(run, name)))
  indexes = sorted(glob.glob(os.path.join(run, "checkpoints", "ckpt-*.index")),
                   key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
  if indexes:
    choices.append(("garble", indexes[-1]))
  if os.path.isdir(os.path.join(run, "best")):
    choices.append(("delete", os.path.join(run, "best")))
  choices.append(("leftover", os.path.join(run, "state.json.999.tmp")))
  what, path = rng.choice(choices)
  if what == "truncate":
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])
  elif what == "garble":
    open(path, "wb").write(b"\x00garbage\xff" * 8)
  elif what == "delete":
    shutil.rmtree(path)
  else:
    open(path, "w").write("{\"half\": ")
  return f"{what} {os.path.relpath(path, workdir)}"


# ---------------------------------------------------------------------------- checking
@dataclasses.dataclass
class Tally:
  kills: int = 0
  resumed: int = 0
  lost: int = 0
  duplicated: int = 0
  unresumable: int = 0
  damages: int = 0
  modes: dict = dataclasses.field(default_factory=dict)
  problems: list = dataclasses.field(default_factory=list)


def run_dirs(workdir: str) -> dict:
  manifest = json.load(open(os.path.join(workdir, "studies", "adhoc.json")))
  return {r["id"]: os.path.join(workdir, r["id"]) for r in manifest["runs"]}


def _final_state(path: str, result: dict) -> dict:
  """state.json, or the last checkpoint's copy of it: damage to a finished run's state
  (which nothing reads again) does not lose the run."""
  try:
    return json.load(open(os.path.join(path, "state.json")))
  except (OSError, ValueError):
    total = result["epochs"]["total"]
    (sidecar,) = glob.glob(os.path.join(path, "checkpoints", f"ckpt-*-{total}.state.json"))
    return json.load(open(sidecar))


def check_round(workdir: str, reference: dict, tally: Tally) -> dict:
  """Counts lost and duplicated epochs of a completed study; returns {run: {status,
  top1}}. A run counts as lost unless it finished (or ended as the reference did: a
  run at chance is `degenerate` in both)."""
  from tfbackbones.training import events
  tops = {}
  for rid, path in run_dirs(workdir).items():
    try:
      result = json.load(open(os.path.join(path, "result.json")))
      state = _final_state(path, result)
    except (OSError, ValueError, KeyError, TypeError) as e:
      tally.lost += 1
      tally.problems.append(f"{rid}: no finished result ({e})")
      continue
    # A degenerate run is a completed run too (not a result, but reproducible): what
    # matters is that an interrupted run ends exactly as the uninterrupted one.
    if result.get("status") not in ("finished", "degenerate"):
      tally.lost += 1
      tally.problems.append(f"{rid}: status {result.get('status')}: {result.get('error')}")
      continue
    epochs = [h["epoch"] for h in state["history"]]
    if len(set(epochs)) != len(epochs):
      tally.duplicated += 1
      tally.problems.append(f"{rid}: history epochs {epochs}")
    if sorted(set(epochs)) != list(range(result["epochs"]["total"])):
      tally.lost += 1
      tally.problems.append(f"{rid}: history epochs {epochs}")
    steps = [(v.tag, e.step) for f in events.event_files(path) for e in events.read_events(f)
             for v in e.summary.value if v.tag.startswith(("train/", "final/"))]
    if len(set(steps)) != len(steps):
      tally.duplicated += 1
      tally.problems.append(f"{rid}: TensorBoard logs an epoch twice")
    test = result.get("test") or {}
    # The loss too: a run at chance has the same top-1 whatever its weights are.
    tops[rid] = {"status": result["status"], "top1": test.get("top1"),
                 "loss": test.get("loss")}
    if rid in reference and tops[rid] != reference[rid]:
      tally.problems.append(f"{rid}: {tops[rid]} vs uninterrupted {reference[rid]}")
  return tops


# ---------------------------------------------------------------------------- main
def main(argv):
  del argv
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run `finally` on kill
  rng = random.Random(FLAGS.seed)
  base = FLAGS.dir or tempfile.mkdtemp(prefix="tfbackbones-faults-")
  os.makedirs(base, exist_ok=True)
  data_dir = os.path.join(base, "tfds")
  try:
    prepare_data(data_dir)
    t0 = time.time()
    proc = launch(os.path.join(base, "reference"), data_dir)
    out = proc.communicate()[0]
    if proc.returncode != 0:
      print(out[-3000:])
      print("error: the uninterrupted reference study failed", file=sys.stderr)
      return 2
    reference_seconds = time.time() - t0
    tally = Tally()
    reference = check_round(os.path.join(base, "reference"), {}, tally)
    print(f"reference study: {len(reference)} runs in {reference_seconds:.0f}s: "
          + ", ".join(f"{v['status']} test top1 {v['top1']} loss {v['loss']}"
                      for v in reference.values()))
    rounds, finals = 0, []
    while True:
      workdir = os.path.join(base, f"faulty{rounds}")
      after_kill = False
      while True:
        if after_kill and rng.random() < FLAGS.damage:
          done = damage(workdir, rng)
          if done:
            tally.damages += 1
            print(f"  damage: {done}")
        killing = tally.kills < FLAGS.kills
        mode = rng.choice(["point", "file", "timer"]) if killing else "none"
        proc = launch(workdir, data_dir, rng.randrange(0, 40) if mode == "point" else None)
        killed, out = supervise(proc, mode, rng, workdir, reference_seconds)
        if after_kill and ("resuming" in out or "already finished" in out):
          tally.resumed += 1
        if killed:
          tally.kills += 1
          tally.modes[mode] = tally.modes.get(mode, 0) + 1
          lines = [line for line in out.splitlines() if "epoch" in line or "resum" in line]
          print(f"kill {tally.kills}/{FLAGS.kills} ({mode}); last line: "
                f"{(lines or ['(start-up)'])[-1][:110]}")
          after_kill = True
          continue
        if proc.returncode != 0 or "Traceback" in out:
          tally.unresumable += 1
          last = out.strip().splitlines()[-1] if out.strip() else ""
          tally.problems.append(f"launch ended with code {proc.returncode}: {last}")
          print(out[-3000:])
        break
      finals.append(check_round(workdir, reference, tally))
      rounds += 1
      if tally.kills >= FLAGS.kills or tally.unresumable:
        break
    print(f"kills={tally.kills} resumed={tally.resumed} lost={tally.lost} "
          f"duplicated={tally.duplicated} unresumable={tally.unresumable}")
    print(f"kill moments: {tally.modes}; damaged files: {tally.damages}; rounds: {rounds}")
    mismatched = [p for p in tally.problems if "vs uninterrupted" in p]
    for rid, ref in reference.items():
      got = [(f[rid]["top1"], f[rid]["loss"]) for f in finals if rid in f]
      print(f"  {rid}: {ref['status']}, test (top1, loss) uninterrupted "
            f"({ref['top1']}, {ref['loss']}), after faults {got}")
    print("final metrics: " + ("equal to the uninterrupted run" if not mismatched
                               else f"{len(mismatched)} differ"))
    for problem in tally.problems:
      print(f"  problem: {problem}")
    ok = not (tally.lost or tally.duplicated or tally.unresumable or mismatched)
    return 0 if ok else 1
  finally:
    for proc in _LAUNCHED:
      if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if not FLAGS.dir and not FLAGS.keep:
      shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
