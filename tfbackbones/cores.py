"""How many CPU cores this process may use: the one answer for every thread pool.

`os.cpu_count()` counts the machine's cores, not the ones a process may run on. In a
container or a batch job pinned to 2 of a host's 64 cores (`taskset`, Docker `--cpuset`,
Slurm, Kubernetes CPU limits), sizing a pool by it starts 64 threads on 2 cores: LiteRT's
latency "all cores" would measure 64 threads contending for 2, and dataset preparation
would hold 64 decoded images in flight for no speed. Two limits are read:

* CPU affinity (`os.sched_getaffinity`, Linux): the cores the scheduler may use at all.
* A cgroup v2 CPU quota (`/sys/fs/cgroup/cpu.max`, e.g. `200000 100000` = 2 cores), which
  Docker `--cpus` and Kubernetes limits set without touching affinity; rounded up, since
  a quota of 1.5 cores still runs 2 threads in parallel part of the time.

The smaller one wins; where neither exists (macOS, Windows) it is `os.cpu_count()`.
"""

from __future__ import annotations

import math
import os

CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def _quota(path: str = CGROUP_CPU_MAX) -> int | None:
  """Cores allowed by a cgroup v2 CPU quota, or None without one ("max" or no file)."""
  try:
    with open(path) as f:
      fields = f.read().split()
  except OSError:
    return None
  if len(fields) != 2 or fields[0] == "max":
    return None
  try:
    quota, period = int(fields[0]), int(fields[1])
  except ValueError:
    return None
  return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def usable(cgroup_cpu_max: str = CGROUP_CPU_MAX) -> int:
  """The number of cores this process may run threads on (at least 1)."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    cores = os.cpu_count() or 1
  quota = _quota(cgroup_cpu_max)
  return max(1, min(cores, quota) if quota else cores)
