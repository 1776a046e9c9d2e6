"""A progress bar within an epoch, on an interactive terminal only.

The loop prints one line per epoch. On a small CPU run the first epoch spends 10-40 s
tracing the step function before any step finishes, and a large epoch takes minutes:
without a sign of life the user cannot tell a slow run from a hung one. On a terminal,
`EpochBar` redraws one line in place ("compiling..." until the first step returns, then
steps done, rate and time left) and leaves the cursor at its start, so the epoch's line
overwrites it. Piped or redirected output (logs, CI, the quickstart's tests) gets nothing
from here: the per-epoch lines stay exactly as they were.
"""

from __future__ import annotations

import shutil
import sys
import time
import weakref
from typing import TextIO

_WIDTH = 24  # bar cells
# Step functions that have run once: their next call is not "compiling".
_traced: weakref.WeakSet = weakref.WeakSet()


class EpochBar:
  """One epoch's in-place progress line: `update(done)` after each call of the step."""

  def __init__(self, epoch: int, steps: int, step_fn=None, stream: TextIO | None = None,
               enabled: bool | None = None):
    """Args:
      epoch: 0-based epoch (printed 1-based, as the epoch lines are).
      steps: steps in the epoch.
      step_fn: the step function about to be called; its first call traces ("compiling").
      stream: where to draw; default sys.stdout.
      enabled: default: only when `stream` is a terminal.
    """
    self.stream = stream or sys.stdout
    isatty = getattr(self.stream, "isatty", lambda: False)
    self.enabled = isatty() if enabled is None else enabled
    self.epoch, self.steps, self.started = epoch + 1, max(1, steps), time.time()
    self.step_fn = step_fn
    self._first_step_at = None
    compiling = step_fn is not None and not _is_traced(step_fn)
    self._draw(0, "compiling the training step..." if compiling else "")

  def update(self, done: int) -> None:
    """`done` steps of the epoch have finished."""
    now = time.time()
    if self.step_fn is not None:
      _mark_traced(self.step_fn)
    if self._first_step_at is None:  # the first call includes tracing: time from here
      self._first_step_at, self._first_done = now, done
      note = ""
    else:
      rate = (done - self._first_done) / max(now - self._first_step_at, 1e-9)
      left = (self.steps - done) / rate if rate > 0 else 0.0
      note = f"{rate:.1f} steps/s, {left:.0f}s left"
    self._draw(done, note)

  def close(self, note: str = "validating...") -> None:
    """Ends the bar: shows `note` and leaves the cursor at the line's start."""
    self._draw(self.steps, note)

  def _draw(self, done: int, note: str) -> None:
    if not self.enabled:
      return
    filled = int(_WIDTH * min(done, self.steps) / self.steps)
    line = (f"epoch {self.epoch:3d} [{'#' * filled}{'.' * (_WIDTH - filled)}] "
            f"{done}/{self.steps} steps {time.time() - self.started:.0f}s {note}")
    width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
    self.stream.write("\r" + line[:width].ljust(width) + "\r")
    self.stream.flush()


def _is_traced(fn) -> bool:
  try:
    return fn in _traced
  except TypeError:  # not weak-referenceable: never claim "compiling"
    return True


def _mark_traced(fn) -> None:
  try:
    _traced.add(fn)
  except TypeError:
    pass
