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
