"""Docs that cannot drift: the commands, flags, targets and paths the docs name exist.

`docs_check.check` reads README.md, BUILD.md, BENCHMARKS.md, docs/, the builder READMEs,
the flagfiles and the CLIs' docstrings (tests/docs_check.py says how). The first test of
the checker itself proves it fails on a renamed flag, a missing target or path, and a
skip without a reason.
"""

import os
import subprocess
import sys

import docs_check
import pytest

from experiments import studies

ROOT = docs_check.ROOT


def test_the_checker_catches_a_renamed_flag_a_missing_target_and_path(tmp_path):
  (tmp_path / "Makefile").write_text("quickstart:\n\techo hi\n")
  (tmp_path / "README.md").write_text(
      "```sh\n"
      "make quickstart\n"
      "python -m tfbackbones.train --max_epochs=3 \\\n    --max_epoch=3 --nofused_kernels\n"
      "make nope\n"
      "```\n"
      "See `tfbackbones/train.py` and `tfbackbones/nope.py`.\n"
      "<!-- docs-check: skip (an example of a removed flag) -->\n"
      "python -m tfbackbones.train --removed_flag=1\n"
      "python -m tfbackbones.nosuchmodule --x=1\n"
      "docs-check: skip\n")
  os.makedirs(tmp_path / "tfbackbones")
  (tmp_path / "tfbackbones" / "train.py").write_text("")
  known = {"max_epochs", "fused_kernels"}
  problems = [str(p) for p in docs_check.check(
      ["README.md"], root=str(tmp_path), flags_of=lambda module: known)]
  assert any("README.md:3: tfbackbones.train has no flag --max_epoch" in p for p in problems)
  assert not any("max_epochs" in p or "fused_kernels" in p for p in problems)
  assert any("no target 'nope'" in p for p in problems)
  assert any("no such path in the repository: tfbackbones/nope.py" in p for p in problems)
  assert not any("removed_flag" in p for p in problems)           # skipped, with a reason
  assert any("no module tfbackbones.nosuchmodule" in p for p in problems)
  assert any("README.md:11: a docs-check skip needs a reason" in p for p in problems)
  assert len(problems) == 5, problems


@pytest.mark.heavy
def test_every_documented_command_flag_target_and_path_exists():
  files = docs_check.doc_files()
  assert {"README.md", "BUILD.md", "flags/paper.flags", "tfbackbones/train.py"} <= set(files)
  problems = docs_check.check(files)
  assert not problems, "\n".join(map(str, problems))


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=300, env=env)


@pytest.mark.heavy
@pytest.mark.parametrize("name", studies.names())
def test_every_study_dry_runs(tmp_path, name):
  extra = ["--backbones=mobilenet_v3_small", "--datasets=sklearn_digits"] \
      if name == "adhoc" else []
  proc = _run("experiments.run", f"--study={name}", f"--workdir={tmp_path}", "--dry_run",
              *extra)
  assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
  assert "INVALID" not in proc.stdout and " runs" in proc.stdout.splitlines()[-1]


@pytest.mark.parametrize("module", ["tfbackbones.backbones", "tfbackbones.kernels"])
def test_help_is_help_not_a_run(module):
  proc = _run(module, "--helpfull")
  # absl exits 1 after printing help; what matters is that nothing else ran.
  assert proc.returncode == 1 and "--[no]helpfull: show full help" in proc.stdout
  assert "fused CPU kernels:" not in proc.stdout and "| name" not in proc.stdout
