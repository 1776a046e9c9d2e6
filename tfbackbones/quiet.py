"""Quiet by default: a command prints what the user can act on, not library start-up chatter.

On a CPU machine, `import tensorflow` writes a block of C++ log lines that no user can act
on ("All log messages before absl::InitializeLog()", oneDNN, "Could not find cuda
drivers", "failed call to cuInit"); TensorFlow 2.21 writes some of them through absl's C++
logging before `TF_CPP_MIN_LOG_LEVEL` is read, so the variable alone does not hide them.
TFDS logs a warning per variant folder it scans ("Variant folder ... has no
dataset_info.json", 21 of them before the `datasets` table) and one per folder dataset
("Using custom data configuration: FolderConfig(...)").

`quiet()` hides exactly these: it sets `TF_CPP_MIN_LOG_LEVEL=3` (unless the user set it),
imports TensorFlow with the process's stderr (file descriptor 2) sent to a temporary file
that is replayed if the import fails, and drops the two TFDS messages by their templates.
Every other warning still shows. `--verbose` (or absl's `--verbosity`) turns all of this
off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

# absl/TFDS message templates (record.msg, before formatting) that carry no information a
# user can act on.
NOISE_TEMPLATES = frozenset({
    "Variant folder %s has no %s",
    "Using custom data configuration: %s",
})
# Lines that LiteRT's C++ code prints to file descriptor 2 on every export or prediction,
# below any logging switch: the interpreter's first CPU delegate, and the TFLite
# converter's echo of its own int8 settings. Matched by prefix.
NATIVE_NOISE_PREFIXES = (
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "fully_quantize: ",
)

_quieted = False  # set by quiet(): only a quieted entry point filters native output


class _NoiseFilter(logging.Filter):
  """Drops the log records whose template is in NOISE_TEMPLATES."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (isinstance(record.msg, str) and record.msg in NOISE_TEMPLATES)


_FILTER = _NoiseFilter()


def quiet(tensorflow: bool = True) -> None:
  """Quiet start-up: call first thing in an entry point's main, before TensorFlow loads.

  Args:
    tensorflow: import TensorFlow now, its start-up block hidden. False for entry points
      that must not load it at all (predict on LiteRT/ONNX artifacts).
  """
  global _quieted
  _quieted = True
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  absl_logger = logging.getLogger("absl")
  if _FILTER not in absl_logger.filters:
    absl_logger.addFilter(_FILTER)
  if tensorflow:
    import_tensorflow_quietly()


@contextlib.contextmanager
def _stderr_to(file):
  """Points file descriptor 2 (where C++ code writes) at `file` for the block."""
  sys.stderr.flush()
  saved = os.dup(2)
  os.dup2(file.fileno(), 2)
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def import_tensorflow_quietly() -> None:
  """Imports TensorFlow without its start-up log block; on failure shows what it wrote.

  A no-op when TensorFlow is already imported (the block has been written by then).
  """
  if "tensorflow" in sys.modules:
    return
  with tempfile.TemporaryFile() as captured:
    try:
      with _stderr_to(captured):
        import tensorflow  # noqa: F401
    except BaseException:
      captured.seek(0)
      sys.stderr.write(captured.read().decode("utf-8", "replace"))
      raise


@contextlib.contextmanager
def native_output():
  """Drops LiteRT's fixed C++ chatter (NATIVE_NOISE_PREFIXES) written during the block.

  C++ code writes to file descriptor 2 directly, so neither `logging` nor
  `TF_CPP_MIN_LOG_LEVEL` reaches these lines. The block's fd 2 goes to a temporary file;
  afterwards every other line is written back, so a real warning or error still shows
  (all of it when the block raises). Outside a quieted entry point (`--verbose`, tests,
  library use) this does nothing.
  """
  if not _quieted:
    yield
    return
  with tempfile.TemporaryFile() as captured:
    failed = False
    try:
      with _stderr_to(captured):
        yield
    except BaseException:
      failed = True
      raise
    finally:
      captured.seek(0)
      lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
      sys.stderr.write("".join(
          line for line in lines
          if failed or not line.startswith(NATIVE_NOISE_PREFIXES)))
      sys.stderr.flush()
