"""One live run per workdir: a lock file naming its holder, with a heartbeat.

Two processes training in one workdir would overwrite each other's checkpoints and both
report the run finished. The first to start holds `<workdir>/lock` (JSON: host, pid,
start time); its modification time is a heartbeat, touched every `HEARTBEAT_SECONDS`.

A second run is refused (`LockError`, exit 2) while the holder lives. A holder killed
with -9 leaves the file behind; it is stale, and taken over with a warning, when
  - on a local disk, the kernel's `flock` on it is free (the kernel drops the lock of a
    dead process, whatever its pid is now used for), or
  - the holder is on this host and its pid is not running, or
  - the heartbeat is older than `STALE_SECONDS` (a holder on another host).
gs:// workdirs have no flock and no atomic create: the check there is best-effort.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

import tensorflow as tf

from tfbackbones.training import workdir as wd

try:
  import fcntl
except ImportError:  # not POSIX: heartbeat and pid checks only
  fcntl = None

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0


class LockError(wd.WorkdirError):
  """Another live process trains in this workdir."""


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, owned by someone else
    return True
  return True


def is_chief_task() -> bool:
  """False on a non-chief worker of a multi-worker job (TF_CONFIG), which must not lock:
  every worker of one job shares the workdir; the chief holds its lock."""
  try:
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
  except json.JSONDecodeError:
    return True
  task = config.get("task") or {}
  cluster = config.get("cluster") or {}
  kind, index = task.get("type"), task.get("index", 0)
  if kind is None or kind == "chief":
    return True
  return kind == "worker" and index == 0 and "chief" not in cluster


def describe(info: dict, age: float | None) -> str:
  beat = f", heartbeat {age:.0f} s ago" if age is not None else ""
  return f"pid {info.get('pid', '?')} on host {info.get('host', '?')}{beat}"


class WorkdirLock:
  """`with WorkdirLock(workdir): ...` holds the workdir's lock; `acquire` may raise LockError."""

  def __init__(self, workdir: str, *, log=logging.warning,
               heartbeat_seconds: float = HEARTBEAT_SECONDS,
               stale_seconds: float = STALE_SECONDS):
    self.workdir = workdir
    self.filename = wd.path(workdir, wd.LOCK)
    self.log = log
    self.heartbeat_seconds = heartbeat_seconds
    self.stale_seconds = stale_seconds
    self.info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    self._fd: int | None = None
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  def __enter__(self) -> WorkdirLock:
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()

  # ------------------------------------------------------------------ reading
  def holder(self) -> tuple[dict | None, float | None]:
    """(the lock file's content, heartbeat age in seconds), (None, None) if no file."""
    try:
      with tf.io.gfile.GFile(self.filename, "r") as f:
        text = f.read()
      age = time.time() - tf.io.gfile.stat(self.filename).mtime_nsec / 1e9
    except tf.errors.NotFoundError:
      return None, None
    try:
      info = json.loads(text)
    except json.JSONDecodeError:  # a holder still writing it, or a kill mid-write
      info = {}
    return (info if isinstance(info, dict) else {}), age

  def _stale(self, info: dict, age: float | None, flock_free: bool | None) -> bool:
    if flock_free is not None:          # a local disk: the kernel knows
      if not flock_free:
        return False
      if info.get("host") not in (None, self.info["host"]):
        # flock may not cross hosts (NFS): trust the heartbeat there.
        return age is None or age > self.stale_seconds
      return True
    if info.get("host") == self.info["host"] and isinstance(info.get("pid"), int):
      return not _pid_alive(info["pid"])
    return age is None or age > self.stale_seconds

  # ------------------------------------------------------------------ acquiring
  def acquire(self) -> None:
    tf.io.gfile.makedirs(self.workdir)
    if wd.is_local(self.filename) and fcntl is not None:
      self._acquire_local()
    else:
      self._acquire_remote()
    self._thread = threading.Thread(target=self._beat, name="workdir-heartbeat", daemon=True)
    self._thread.start()

  def _refuse(self, info: dict, age: float | None) -> None:
    raise LockError(
        f"{self.workdir} is in use by {describe(info, age)}: another run trains there. "
        "Wait for it to finish or stop it; if it is not running, delete "
        f"{self.filename}")

  def _acquire_local(self) -> None:
    for _ in range(10):
      fd = os.open(self.filename, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        os.close(fd)
        info, age = self.holder()
        self._refuse(info or {}, age)
      # The holder may have deleted the file between our open and flock: retry on the
      # new file, so that two takers never lock two different inodes.
      try:
        same = os.fstat(fd).st_ino == os.stat(self.filename).st_ino
      except FileNotFoundError:
        same = False
      if not same:
        os.close(fd)
        continue
      info, age = self.holder()
      if info and not self._stale(info, age, flock_free=True):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        self._refuse(info, age)
      if info:
        self.log(f"taking over the lock of {describe(info, age)}: it is not running "
                 "(killed?); resuming its run")
      self._fd = fd
      os.ftruncate(fd, 0)
      os.pwrite(fd, json.dumps(self.info).encode(), 0)
      os.fsync(fd)
      return
    raise LockError(f"could not lock {self.filename}: it keeps being replaced")

  def _acquire_remote(self) -> None:
    info, age = self.holder()
    if info is not None and not self._stale(info, age, flock_free=None):
      self._refuse(info, age)
    if info:
      self.log(f"taking over the lock of {describe(info, age)}: its heartbeat stopped")
    with tf.io.gfile.GFile(self.filename, "w") as f:
      f.write(json.dumps(self.info))

  # ------------------------------------------------------------------ heartbeat, release
  def _beat(self) -> None:
    while not self._stop.wait(self.heartbeat_seconds):
      try:
        if self._fd is not None:
          os.utime(self.filename)
        else:
          with tf.io.gfile.GFile(self.filename, "w") as f:
            f.write(json.dumps(self.info))
      except Exception:
        logging.warning("could not touch %s", self.filename, exc_info=True)

  def release(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
      self._thread = None
    try:
      tf.io.gfile.remove(self.filename)
    except tf.errors.NotFoundError:
      pass
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None
