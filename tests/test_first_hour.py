"""A new user's first hour: the quickstart, then every command it prints, as printed.

The quickstart runs small (one backbone, 3 epochs) in a subprocess with the environment a
user has (no TF_CPP_MIN_LOG_LEVEL, no activated venv). Its output must be free of the
noise a user cannot act on, and each command it prints (TensorBoard, the report, predict,
the paper run) must work when typed into a shell after the activation it names. README's
block of the same commands must be the same commands.
"""

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import warnings

import pytest
import tensorboard_server

from tfbackbones.protocols import quickstart as quick

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lines that must never reach a user in normal output.
NOISE = re.compile(r"cuInit|cuda|InitializeLog|oneDNN|Variant folder|custom data "
                   r"configuration|_DefaultDistributionStrategy|Traceback|BuildBackendWarning",
                   re.IGNORECASE)

pytestmark = pytest.mark.heavy


def _user_env() -> dict:
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_CPP_MIN_LOG_LEVEL", "VIRTUAL_ENV", "PYTHONPATH")}
  return env


def _run(args, **kwargs):
  return subprocess.run(args, cwd=REPO, env=_user_env(), capture_output=True, text=True,
                        timeout=600, check=False, **kwargs)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
  root = tmp_path_factory.mktemp("first_hour")
  workdir, data_dir = str(root / "quickstart"), str(root / "tfds")
  proc = _run([sys.executable, "-m", "experiments.quickstart", f"--workdir={workdir}",
               f"--data_dir={data_dir}", "--backbones=efficientnet_lite0",
               "--max_epochs=3", "--seeds=1"])
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return dict(root=root, workdir=workdir, data_dir=data_dir, out=proc.stdout,
              err=proc.stderr)


def _printed_commands(out: str) -> tuple[str, list[str]]:
  """(activation command or '', the printed commands in order, comments stripped)."""
  activate = re.search(r"\((source [^)]+)\):", out)
  commands = [line.split("  #")[0].strip() for line in out.splitlines()
              if line.startswith(("  python ", "  tensorboard "))]
  return (activate.group(1) if activate else ""), commands


def _shell(activate: str, command: str):
  line = f"{activate} && {command}" if activate else command
  return _run(["bash", "-c", line])


def _digit_png(path) -> str:
  """A real handwritten digit (sklearn's, label 3) as a 32x32 PNG."""
  from PIL import Image
  from sklearn.datasets import load_digits
  digits = load_digits()
  image = digits.images[digits.target == 3][0] * (255.0 / 16.0)
  Image.fromarray(image.astype("uint8")).resize((32, 32)).convert("RGB").save(path)
  return str(path)


def test_quickstart_output_is_quiet(quickstart):
  noisy = [line for line in (quickstart["out"] + quickstart["err"]).splitlines()
           if NOISE.search(line)]
  assert not noisy, noisy
  assert quickstart["err"].strip() == "", quickstart["err"]
  assert "one device (CPU)" in quickstart["out"]


def test_every_printed_command_works_as_printed(quickstart):
  activate, commands = _printed_commands(quickstart["out"])
  kinds = [c.split()[0] if c.startswith("tensorboard") else c.split()[2] for c in commands]
  assert kinds == ["tensorboard", "tfbackbones.report", "tfbackbones.predict",
                   "tfbackbones.train"], commands
  if activate:  # `python` and `tensorboard` exist only in the venv the line names
    assert os.path.exists(shlex.split(activate)[1]), activate
  not_run = []
  for command in commands:
    if command.startswith("tensorboard"):
      with tensorboard_server.serve(command, env=_user_env(), cwd=REPO,
                                    shell_prefix=activate) as server:
        groups = server.session_groups(["STATUS_SUCCESS"])["sessionGroups"]
        assert {g["hparams"]["backbone"] for g in groups} == {"efficientnet_lite0"}
      continue
    if "tfbackbones.predict" in command:
      if importlib.util.find_spec("tfbackbones.predict") is None:
        not_run.append(command)  # built on another branch; runs here once merged
        continue
      command = command.replace("IMAGE...", _digit_png(quickstart["root"] / "three.png"))
    if "tfbackbones.train" in command:
      # The paper run needs ImageNet weights and hours: check that it resolves as printed.
      command += " --dry_run"
    proc = _shell(activate, command)
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    assert not [line for line in proc.stderr.splitlines() if NOISE.search(line)], proc.stderr
    if "tfbackbones.report" in command:
      out = shlex.split(command)[-1].split("=", 1)[1]
      assert os.path.exists(os.path.join(out, "report.html"))
    if "tfbackbones.train" in command:
      assert json.loads(proc.stdout)["backbone"] == "convnext_tiny"
  if not_run:
    warnings.warn(f"not run (module missing on this branch): {not_run}", stacklevel=1)


def test_readme_shows_the_commands_the_quickstart_prints(quickstart):
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  block = readme.split("It ends with the next commands", 1)[1].split("```sh\n", 1)[1]
  lines = [line.split("#")[0].strip() for line in block.split("```", 1)[0].splitlines()]
  assert lines[0] == "source .venv/bin/activate"
  _, printed = _printed_commands(quickstart["out"])
  run = re.search(r"--workdir=\S+/([^/\s]+) IMAGE", "\n".join(printed)).group(1)
  expected = [line.replace("runs/quickstart", quickstart["workdir"]).replace("RUN", run)
              for line in lines[1:]]
  assert expected == printed[:len(expected)]


def test_train_ends_with_the_next_commands(quickstart):
  """A finished run's train command (rerun: it does not train again) names the next steps."""
  workdir = os.path.join(quickstart["workdir"], "efficientnet_lite0-imagenet-seed0")
  proc = _run([sys.executable, "-m", "tfbackbones.train", "--protocol=quickstart",
               "--dataset=lfw_subset", f"--train_fraction={quick.TRAIN_FRACTION}",
               "--backbone=efficientnet_lite0",
               "--max_epochs=3", f"--data_dir={quickstart['data_dir']}",
               f"--workdir={workdir}"])
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "already finished" in proc.stdout
  _, commands = _printed_commands(proc.stdout)
  assert commands == [f"tensorboard --logdir={workdir}",
                      f"python -m tfbackbones.report --workdir={workdir} "
                      f"--out={os.path.join(workdir, 'report')}",
                      f"python -m tfbackbones.predict --workdir={workdir} IMAGE..."]
  assert proc.stderr.strip() == "", proc.stderr
