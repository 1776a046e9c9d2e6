"""The docs check: every command, flag and path the docs name must exist.

Reads the Markdown docs, the flagfiles and the CLI modules' docstrings; finds each
`python -m MODULE ...` command (with its backslash continuations), each `make TARGET` and
each repository path in backticks; and checks that the module exists, that every flag a
command gives is a flag of that module (its `--helpfull`), that every target is in the
Makefile and that every path exists. A doc line opts out only with a visible marker and
a reason on it or on the line above: `docs-check: skip (why)`.

Only the project's own modules are checked (tfbackbones, experiments, tfds_builders);
`python -m pip` and the like are someone else's.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = ("tfbackbones", "experiments", "tfds_builders")
SKIP = re.compile(r"docs-check:\s*skip\s*\(([^)]+)\)")
SKIP_NO_REASON = re.compile(r"docs-check:\s*skip(?!\s*\([^)]+\))")
_COMMAND = re.compile(r"python3? -m ([A-Za-z_][\w.]*)((?:\\\n|[^\n`|])*)")
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9_]*)")
# A command, not prose ("make that answer wrong"): at a line's start, after a backtick or
# a shell prompt.
_MAKE = re.compile(r"(?:^|`|\$ )make ([a-z][\w-]*)", re.M)
_PATH = re.compile(r"`((?:tfbackbones|experiments|tfds_builders|flags|docs|tests|\.ci)"
                   r"/[\w./*-]*)`")
# Flags every absl program has.
_ABSL = {"flagfile", "help", "helpfull", "helpshort", "helpxml", "verbosity", "v",
         "logtostderr", "alsologtostderr", "only_check_args"}


@dataclasses.dataclass
class Command:
  module: str
  flags: list
  source: str   # file:line
  text: str


@dataclasses.dataclass
class Problem:
  source: str
  message: str

  def __str__(self):
    return f"{self.source}: {self.message}"


def doc_files(root: str = ROOT) -> list[str]:
  """The files whose commands must work: Markdown docs, flagfiles, CLI docstrings."""
  names = ["README.md", "BUILD.md", "experiments/BENCHMARKS.md"]
  names += sorted(glob.glob("docs/*.md", root_dir=root))
  names += sorted(glob.glob("tfds_builders/*/README.md", root_dir=root))
  names += sorted(glob.glob("flags/*.flags", root_dir=root))
  for package in ("tfbackbones", "experiments"):
    for path in sorted(glob.glob(f"{package}/**/*.py", root_dir=root, recursive=True)):
      text = open(os.path.join(root, path)).read()
      if "absl" in text and ("app.run(" in text):  # a CLI: its docstring is its manual
        names.append(path)
  return [n for n in names if os.path.exists(os.path.join(root, n))]


def _text_of(path: str) -> str:
  text = open(path).read()
  if path.endswith(".py"):  # the module docstring and flag help: the user-facing text
    match = re.match(r'\s*[rRuU]?("""|\'\'\')(.*?)\1', text, re.S)
    return match.group(2) if match else ""
  return text


def _skipped(lines: list[str], index: int) -> bool:
  return any(SKIP.search(lines[i]) for i in (index, index - 1) if 0 <= i < len(lines))


def extract(path: str, label: str | None = None) -> tuple[list, list, list, list]:
  """(commands, make targets, paths, problems) named by one file."""
  label = label or os.path.relpath(path, ROOT)
  text = _text_of(path)
  lines = text.splitlines()
  commands, targets, paths, problems = [], [], [], []
  offsets = [0]
  for line in lines:
    offsets.append(offsets[-1] + len(line) + 1)

  def line_of(pos: int) -> int:
    lo = 0
    while lo + 1 < len(offsets) and offsets[lo + 1] <= pos:
      lo += 1
    return lo

  for i, line in enumerate(lines):
    if SKIP_NO_REASON.search(line):
      problems.append(Problem(f"{label}:{i + 1}", "a docs-check skip needs a reason: "
                              "`docs-check: skip (why)`"))
  for match in _COMMAND.finditer(text):
    n = line_of(match.start())
    if _skipped(lines, n):
      continue
    module = match.group(1).rstrip(".")
    if not module.startswith(OURS):
      continue
    args = match.group(2)
    commands.append(Command(module, _FLAG.findall(args), f"{label}:{n + 1}",
                            match.group(0).strip()))
  for match in _MAKE.finditer(text):
    n = line_of(match.start())
    if not _skipped(lines, n):
      targets.append((match.group(1), f"{label}:{n + 1}"))
  for match in _PATH.finditer(text):
    n = line_of(match.start())
    if not _skipped(lines, n):
      paths.append((match.group(1), f"{label}:{n + 1}"))
  if path.endswith(".flags"):  # a flagfile: its flags are train's
    for n, line in enumerate(lines):
      flag = re.match(r"\s*--([a-z][a-z0-9_]*)", line)
      if flag and not _skipped(lines, n):
        commands.append(Command("tfbackbones.train", [flag.group(1)], f"{label}:{n + 1}",
                                line.strip()))
  return commands, targets, paths, problems


def module_exists(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


_HELP_CACHE: dict = {}


def module_flags(module: str) -> set | None:
  """The flags of `python -m module --helpfull`, None if it does not answer with help."""
  if module not in _HELP_CACHE:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", module, "--helpfull"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    found = set(re.findall(r"^\s+(?:-\?,)?--(?:\[no\])?([a-z][a-z0-9_]*)", out, re.M))
    # absl's --helpfull prints the help and exits 1, by design.
    _HELP_CACHE[module] = found if "helpfull" in found else None
  return _HELP_CACHE[module]


def makefile_targets(root: str = ROOT) -> set:
  text = open(os.path.join(root, "Makefile")).read()
  return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


def check(files: Iterable[str], root: str = ROOT, flags_of=module_flags) -> list[Problem]:
  """Every problem in `files` (paths relative to `root`); empty when the docs are right."""
  problems: list[Problem] = []
  targets_known = makefile_targets(root)
  for name in files:
    commands, targets, paths, found = extract(os.path.join(root, name), name)
    problems += found
    for cmd in commands:
      if not module_exists(cmd.module):
        problems.append(Problem(cmd.source, f"no module {cmd.module} ({cmd.text[:60]})"))
        continue
      known = flags_of(cmd.module)
      if known is None:
        problems.append(Problem(cmd.source, f"`python -m {cmd.module} --helpfull` does "
                                "not print help"))
        continue
      for flag in cmd.flags:
        bare = flag[2:] if flag.startswith("no") and flag[2:] in known else flag
        if bare not in known and bare not in _ABSL:
          problems.append(Problem(cmd.source, f"{cmd.module} has no flag --{flag}"))
    for target, source in targets:
      if target not in targets_known:
        problems.append(Problem(source, f"the Makefile has no target {target!r}"))
    for path, source in paths:
      pattern = os.path.join(root, path.rstrip("/"))
      if not (os.path.exists(pattern) or glob.glob(pattern)):
        problems.append(Problem(source, f"no such path in the repository: {path}"))
  return problems
