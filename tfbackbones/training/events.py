"""Keeps a resumed run's TensorBoard history single: events of redone epochs are purged.

A killed run may have logged epoch N+1 (and even its final summaries) before its state
was saved; the resumed run logs them again. TensorBoard's own purging of orphaned
events depends on the reader (the legacy Python loader purges on an out-of-order step,
the Rust data server does not), so the files themselves are rewritten: every event with
a step after the resume point, and the `final/*` summaries, are dropped before the
resumed run writes its own. Files are rewritten through a temporary name and renamed,
so a kill during the purge leaves the old file or the new one.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorboard.compat.proto import event_pb2

from tfbackbones.training import workdir as wd

FINAL_TAGS = ("final/", "result")


def event_files(workdir: str) -> list[str]:
  if not tf.io.gfile.isdir(workdir):
    return []
  return sorted(wd.path(workdir, name) for name in tf.io.gfile.listdir(workdir)
                if "tfevents" in name and not name.endswith(".tmp"))


def read_events(filename: str) -> list:
  """Every readable event of a file; a record cut short by a kill ends the list."""
  return [event for event, _ in _records(filename)]


def _records(filename: str) -> list[tuple]:
  out = []
  try:
    for raw in tf.data.TFRecordDataset(filename):
      data = raw.numpy()
      out.append((event_pb2.Event.FromString(data), data))
  except (tf.errors.DataLossError, tf.errors.OutOfRangeError):
    pass
  return out


def last_step(workdir: str) -> int:
  """The largest step of any summary in the workdir's events files (0 if none)."""
  steps = [e.step for f in event_files(workdir) for e in read_events(f)
           if e.HasField("summary")]
  return max(steps, default=0)


def purge(workdir: str, keep_through_step: int | None) -> int:
  """Drops events after `keep_through_step` and final summaries; None drops every file.

  Returns the number of summary events dropped.
  """
  dropped = 0
  for filename in event_files(workdir):
    if keep_through_step is None:
      wd.fault_point("delete", filename)
      tf.io.gfile.remove(filename)
      dropped += 1
      continue
    records = _records(filename)
    kept = [(e, raw) for e, raw in records if _keep(e, keep_through_step)]
    size = sum(len(raw) + 16 for _, raw in records)  # TFRecord: 8 + 4 + data + 4 bytes
    if len(kept) == len(records) and size == tf.io.gfile.stat(filename).length:
      continue
    dropped += len(records) - len(kept)
    if not any(e.HasField("summary") for e, _ in kept):
      wd.fault_point("delete", filename)
      tf.io.gfile.remove(filename)
      continue
    tmp = wd.path(workdir, f"purge-{os.getpid()}.tmp")  # no "tfevents": TB ignores it
    wd.fault_point("write", filename)
    with tf.io.TFRecordWriter(tmp) as writer:
      for _, raw in kept:
        writer.write(raw)
    wd.fault_point("rename", filename)
    tf.io.gfile.rename(tmp, filename, overwrite=True)
  return dropped


def _keep(event, last_step: int) -> bool:
  if not event.HasField("summary"):
    return True
  if event.step > last_step:
    return False
  return not any(v.tag.startswith(FINAL_TAGS) for v in event.summary.value)
