"""Batch-1 latency of an artifact with its own runtime, in a fresh process per setting.

Why a process per (artifact, threads): TensorFlow fixes its thread pools when it starts,
so "1 thread" and "all cores" cannot both be measured in one TF process; and a fresh
process gives every artifact the same cold allocator and caches. Warm-up calls (the
first ones trace, allocate and pick kernels) are excluded; the rest are timed one by one
and summarised as median and 90th percentile.

  python -m tfbackbones.deploy.latency PATH THREADS [RUNS] [WARMUP]   # prints one JSON line
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np


def measure(predictor, runs: int = 50, warmup: int = 5, seed: int = 0) -> dict:
  """Times `predictor.predict` on one random uint8 image: median and p90 in ms."""
  image = np.random.default_rng(seed).integers(
      0, 256, (1, predictor.height, predictor.width, 3), dtype=np.uint8)
  for _ in range(warmup):
    predictor.predict(image)
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    predictor.predict(image)
    times.append((time.perf_counter() - start) * 1000.0)
  return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
          "runs": runs, "warmup": warmup}


def interleaved(predictors: dict, rounds: int = 15, calls: int = 10, warmup: int = 5,
                seed: int = 0) -> dict:
  """Batch-1 latency of several artifacts in turns, for a ratio that load cannot skew.

  On a machine shared with other jobs, timing A for a minute and then B for a minute
  compares two different machines. Here every round times `calls` calls of each artifact
  back to back (in a rotating order), so a load spike hits all of them; the ratio of two
  artifacts is taken within each round and its median reported.

  Args:
    predictors: {name: Predictor} of the same input size.
    rounds, calls, warmup: rounds of timed turns, calls per turn, untimed calls each first.

  Returns:
    {"median_ms": {name: ms}, "rounds_ms": {name: [ms per call, each round]}}; use
    `round_ratios` for per-round ratios.
  """
  names = list(predictors)
  first = predictors[names[0]]
  image = np.random.default_rng(seed).integers(
      0, 256, (1, first.height, first.width, 3), dtype=np.uint8)
  for name in names:
    for _ in range(warmup):
      predictors[name].predict(image)
  per_round = {name: [] for name in names}
  for r in range(rounds):
    for name in names[r % len(names):] + names[:r % len(names)]:
      start = time.perf_counter()
      for _ in range(calls):
        predictors[name].predict(image)
      per_round[name].append((time.perf_counter() - start) * 1000.0 / calls)
  return {"median_ms": {n: float(np.median(v)) for n, v in per_round.items()},
          "rounds_ms": per_round}


def round_ratios(timing: dict, numerator: str, denominator: str) -> list:
  """numerator ms / denominator ms in each round of an `interleaved` timing."""
  rounds = timing["rounds_ms"]
  return [a / b for a, b in zip(rounds[numerator], rounds[denominator], strict=True)]


def in_subprocess(path: str, threads: int, runs: int = 50, warmup: int = 5,
                  timeout: float = 1800) -> dict:
  """`measure` in a fresh process with `threads` intra-op threads; {"error": ...} if it fails."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
  proc = subprocess.run(
      [sys.executable, "-m", "tfbackbones.deploy.latency", path, str(threads), str(runs),
       str(warmup)], capture_output=True, text=True, timeout=timeout, env=env, check=False)
  lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
  if proc.returncode or not lines:
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail}"}
  return json.loads(lines[-1])


def _main(argv: list) -> None:
  path, threads = argv[1], int(argv[2])
  runs = int(argv[3]) if len(argv) > 3 else 50
  warmup = int(argv[4]) if len(argv) > 4 else 5
  from tfbackbones.deploy import runtimes
  if runtimes.detect_format(path) in ("keras", "saved_model"):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
  predictor = runtimes.open_model(path, threads=threads)
  print(json.dumps({"threads": threads, **measure(predictor, runs, warmup)}), flush=True)


if __name__ == "__main__":
  _main(sys.argv)
