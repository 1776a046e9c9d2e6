"""The closing lines of a command: the next commands to type, exactly as they will work.

A new user copies what the last lines of a command say. Those commands must work in the
shell the user is in: `python` and `tensorboard` exist only inside the project's virtual
environment, so when the command ran from a venv that the shell has not activated (as
`make quickstart` does, through `.venv/bin/python`), the first line says how to activate
it. tests/test_first_hour.py runs every printed command, in order, as printed.
"""

from __future__ import annotations

import os
import shlex
import sys

# What the user types in place of IMAGE in the predict command.
IMAGE_PLACEHOLDER = "IMAGE..."


def activate_command() -> str | None:
  """`source <venv>/bin/activate` if this Python is a venv that the shell has not activated.

  None when the shell already has it (VIRTUAL_ENV names it) or when this is no venv.
  """
  prefix = os.path.realpath(sys.prefix)
  if prefix == os.path.realpath(sys.base_prefix):
    return None
  active = os.environ.get("VIRTUAL_ENV")
  if active and os.path.realpath(active) == prefix:
    return None
  relative = os.path.relpath(prefix)
  venv = relative if not relative.startswith("..") else prefix
  return f"source {shlex.quote(os.path.join(venv, 'bin', 'activate'))}"


def commands(logdir: str, model_workdir: str | None = None,
             report_out: str | None = None) -> list[tuple[str, str]]:
  """(command, what it does) for TensorBoard, the report and predict, in that order.

  Args:
    logdir: the run's or the study's workdir (TensorBoard and the report read it).
    model_workdir: a finished run's workdir whose model predict loads; None: no predict.
    report_out: where the report goes; default `<logdir>/report`.
  """
  q = shlex.quote
  out = report_out or os.path.join(logdir, "report")
  steps = [(f"tensorboard --logdir={q(logdir)}",
            "curves, and the HParams tab to compare runs"),
           (f"python -m tfbackbones.report --workdir={q(logdir)} --out={q(out)}",
            "tables, plots and report.html")]
  if model_workdir:
    steps.append((f"python -m tfbackbones.predict --workdir={q(model_workdir)} "
                  f"{IMAGE_PLACEHOLDER}", "classify your images (files or folders)"))
  return steps


def text(logdir: str, model_workdir: str | None = None,
         report_out: str | None = None) -> str:
  """The closing block: a header (with the venv to activate, if any) and the commands."""
  steps = commands(logdir, model_workdir, report_out)
  activate = activate_command()
  header = "Next:" if not activate else f"Next, in this project's environment ({activate}):"
  return "\n".join([header] + [f"  {c}  # {what}" for c, what in steps])
