"""Runs the real training CLI as an N-worker MultiWorkerMirroredStrategy job on localhost.

Why a harness of its own: a multi-worker job is N processes that must all be started with
their own `TF_CONFIG`, may hang on each other (a collective waits for a peer that died),
and must never outlive the test. `Cluster` starts every worker on 127.0.0.1 only (never
another address), pins each to one CPU with one TF thread (the machine is small and
shared), keeps each worker's output in a file, and in `close()` (also on any exception)
stops every process it started, by pid, within a bounded time. Each worker leads its own
process group (pgid = its pid), so anything it spawned (g++ building the fused kernels) is
stopped with it and `leftovers()` finds it.

  with Cluster(workers=2, logdir=tmp) as cluster:
    cluster.start(["--workdir=...", "--strategy=multi_worker", ...])
    codes = cluster.wait(timeout=90)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list:
  """`count` distinct TCP ports free on the loopback interface right now."""
  socks, ports = [], []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      s.bind((LOOPBACK, 0))
      socks.append(s)
      ports.append(s.getsockname()[1])
  finally:
    for s in socks:
      s.close()
  return ports


def tf_config(ports: Sequence[int], index: int) -> str:
  """The TF_CONFIG of worker `index` of a loopback cluster (worker 0 is the chief)."""
  return json.dumps({"cluster": {"worker": [f"{LOOPBACK}:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}})


def single_thread_env(**extra) -> dict:
  """Environment for one training process that uses one CPU thread for TF's pools."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1",
             TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
  env.pop("TF_CONFIG", None)
  env.update(extra)
  return env


def _pin_to(cpu: int | None):
  """A preexec_fn that pins the child to one CPU (no-op where affinity is unsupported)."""
  def pin():
    if cpu is not None and hasattr(os, "sched_setaffinity"):
      try:
        os.sched_setaffinity(0, {cpu})
      except OSError:   # a container may forbid it; the one-thread pools still apply
        pass
  return pin


def _cpus() -> list:
  if hasattr(os, "sched_getaffinity"):
    return sorted(os.sched_getaffinity(0))
  return [None]


class Cluster:
  """N CLI worker processes on loopback; a context manager that always cleans up."""

  def __init__(self, workers: int, logdir: str, module: str = "tfbackbones.train"):
    self.workers = workers
    self.logdir = logdir
    self.module = module
    self.procs: list = []
    self.pids: list = []        # every pid ever started, for the leak check
    self._logs: list = []
    self.ports: list = []
    self.launches = 0
    os.makedirs(logdir, exist_ok=True)

  def __enter__(self) -> Cluster:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def start(self, args: Sequence[str]) -> None:
    """Starts every worker with the same CLI args (as a user runs one command per host)."""
    self.close()
    self.launches += 1
    self.ports = free_ports(self.workers)
    cpus = _cpus()
    self.procs, self._logs = [], []
    for i in range(self.workers):
      out = open(self.log_path(i), "w")
      self._logs.append(out)
      env = single_thread_env(TF_CONFIG=tf_config(self.ports, i))
      proc = subprocess.Popen(
          [sys.executable, "-m", self.module, *args], cwd=ROOT, env=env, stdout=out,
          stderr=subprocess.STDOUT, preexec_fn=_pin_to(cpus[i % len(cpus)]),
          start_new_session=True)
      self.procs.append(proc)
      self.pids.append(proc.pid)

  def log_path(self, index: int, launch: int | None = None) -> str:
    return os.path.join(self.logdir, f"launch{launch or self.launches}_worker{index}.log")

  def output(self, index: int) -> str:
    with open(self.log_path(index)) as f:
      return f.read()

  def wait(self, timeout: float) -> list:
    """Waits until every worker exits or `timeout` s pass; returns codes (None = running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.poll() is None for p in self.procs):
      time.sleep(0.2)
    return [p.poll() for p in self.procs]

  def wait_for(self, index: int, text: str, timeout: float) -> bool:
    """Waits until worker `index` has printed `text` (or exited, or timed out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if text in self.output(index):
        return True
      if self.procs[index].poll() is not None:
        return text in self.output(index)
      time.sleep(0.1)
    return False

  def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
    """Sends `sig` to worker `index` (by pid) and, for SIGKILL, reaps it."""
    proc = self.procs[index]
    if proc.poll() is None:
      _signal_group(proc.pid, sig)
      if sig == signal.SIGKILL:
        proc.wait(timeout=10)

  def close(self, grace: float = 5.0) -> None:
    """Stops every running worker: SIGTERM, then SIGKILL after `grace` s; reaps them all."""
    alive = [p for p in self.procs if p.poll() is None]
    for p in alive:
      _signal_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in alive:
      try:
        p.wait(timeout=max(0.1, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        pass
    for p in self.procs:  # the workers' own children too, even if the worker has exited
      _signal_group(p.pid, signal.SIGKILL)
      if p.poll() is None:
        p.wait(timeout=10)
    for f in self._logs:
      f.close()
    self._logs = []

  def leftovers(self) -> list:
    """Pids this harness started, or their children, that still exist: must be empty."""
    return [pid for pid in self.pids if os.path.exists(f"/proc/{pid}")] + \
        _group_members(set(self.pids))


def _signal_group(pgid: int, sig: int) -> None:
  """Signals the process group a worker leads (its pgid is its own pid)."""
  try:
    os.killpg(pgid, sig)
  except ProcessLookupError:
    pass


def _group_members(pgids: set) -> list:
  """Live pids whose process group is one of `pgids` (Linux /proc; [] elsewhere)."""
  found = []
  for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
      continue
    if int(fields[2]) in pgids and fields[0] != "Z":   # fields: state, ppid, pgrp, ...
      found.append(int(entry))
  return found


def run_single(args: Sequence[str], log: str, timeout: float = 120) -> int:
  """Runs the CLI once in one process pinned to one CPU; returns its exit code."""
  with open(log, "w") as out:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfbackbones.train", *args], cwd=ROOT,
        env=single_thread_env(), stdout=out, stderr=subprocess.STDOUT,
        preexec_fn=_pin_to(_cpus()[-1]), start_new_session=True)
    try:
      return proc.wait(timeout=timeout)
    finally:
      if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
