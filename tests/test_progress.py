"""The in-epoch progress bar: drawn in place on a terminal, silent when piped."""

import io

from tfbackbones.training import progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def _frames(text: str) -> list[str]:
  return [f.strip() for f in text.split("\r") if f.strip()]


def test_terminal_gets_compiling_then_steps_then_validating():
  out = _Terminal()

  def step_fn():
    pass

  bar = progress.EpochBar(0, 4, step_fn, stream=out)
  for done in (2, 4):
    bar.update(done)
  bar.close()
  frames = _frames(out.getvalue())
  assert "compiling" in frames[0] and frames[0].startswith("epoch   1 [")
  assert "2/4 steps" in frames[1] and "compiling" not in frames[1]
  assert "4/4 steps" in frames[2] and "steps/s" in frames[2]
  assert frames[-1].endswith("validating...")
  assert "\n" not in out.getvalue()  # redrawn in place, never a new line
  assert out.getvalue().endswith("\r")  # the epoch's line overwrites the bar
  # The same step function is traced now: the next epoch does not say "compiling".
  again = _Terminal()
  progress.EpochBar(1, 4, step_fn, stream=again)
  assert "compiling" not in again.getvalue() and "epoch   2" in again.getvalue()


def test_pipes_and_files_get_nothing():
  out = io.StringIO()  # isatty() is False: logs, CI, tests
  bar = progress.EpochBar(0, 3, lambda: None, stream=out)
  bar.update(3)
  bar.close()
  assert out.getvalue() == ""
