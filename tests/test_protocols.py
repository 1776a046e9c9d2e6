"""Protocols as code: one config per cell, whichever entry point asks, and one override
language. These tests fail if a study and `train` disagree on any paper cell, if a flag
typed on the command line loses to a flagfile, or if `--set` mistypes a value."""

import json
import os
import subprocess
import sys

import pytest

from experiments import studies
from tfbackbones import protocols
from tfbackbones.config import ConfigError, parse_assignment
from tfbackbones.protocols import paper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cell(config):
  return config.to_dict() | {"workdir": None, "data_dir": None}


def test_train_and_the_paper_study_agree_on_all_660_cells():
  configs = studies.build("paper", "w")
  assert len(configs) == 660
  for config in configs:
    given = {"dataset": config.dataset, "backbone": config.backbone, "seed": config.seed,
             "train_fraction": config.train_fraction, "workdir": config.workdir}
    single = protocols.resolve("paper", given).validate()
    assert _cell(single) == _cell(config), studies.run_id(config)


def test_paper_rules_are_the_papers():
  flowers = protocols.build("paper", dataset="oxford_flowers102", backbone="b")
  food = protocols.build("paper", dataset="food101", backbone="b")
  cifar = protocols.build("paper", dataset="cifar10", backbone="b")
  eurosat = protocols.build("paper", dataset="eurosat_rgb", backbone="b")
  breakhis = protocols.build("paper", dataset="breakhis_40x", backbone="b")
  assert (flowers.adamw_patience, flowers.sgd_patience) == (20, 20)
  assert (food.adamw_patience, food.sgd_patience) == (10, 20)
  assert (cifar.augment, cifar.augment_at, cifar.image_size) == ("trivial", "native", 256)
  assert (eurosat.image_size, eurosat.augment) == (224, "none")
  assert breakhis.image_size == 0 and breakhis.max_epochs == 300
  assert {c.select_on for c in (flowers, food, cifar)} == {"val"}
  on_test = protocols.build("paper_test_selection", dataset="dtd", backbone="b")
  assert on_test.select_on == "test" and on_test.replace(select_on="val") == \
      protocols.build("paper", dataset="dtd", backbone="b")
  mine = protocols.build("paper", dataset="folder:/x", backbone="b")
  assert (mine.image_size, mine.augment) == (0, "auto")     # the catalog decides
  assert set(paper.DATA_FRACTIONS) <= set(paper.DATASETS)


def test_unknown_protocol_names_the_valid_ones():
  with pytest.raises(ConfigError, match="(?s)Did you mean 'paper'.*quickstart"):
    protocols.get("papr")


@pytest.mark.parametrize("text, expected", [
    ("max_epochs=3", ("max_epochs", 3)),
    ("adamw_lr=0.01", ("adamw_lr", 0.01)),
    ("download=false", ("download", False)),
    ("bn_momentum=none", ("bn_momentum", None)),
    ("bn_momentum=0.9", ("bn_momentum", 0.9)),
    ("select_on=test", ("select_on", "test")),
    ("image_size=672x448", ("image_size", "672x448")),
    ("image_size=224", ("image_size", 224)),
    ("image_size=224x224", ("image_size", 224)),
    ("tpu=none", ("tpu", None)),
])
def test_set_is_typed_by_the_config_fields_hints(text, expected):
  assert parse_assignment(text) == expected


@pytest.mark.parametrize("text, message", [
    ("max_epochs=three", "max_epochs takes a int value"),
    ("colour=red", "KEY a TrainConfig field"),
    ("max_epochs", "KEY=VALUE"),
    ("image_size=big", "image_size"),
    ("download=maybe", "download takes a bool"),
    ("epochs=3", "did you mean max_epochs"),
])
def test_bad_assignments_say_what_is_accepted(text, message):
  with pytest.raises(ConfigError, match=message):
    parse_assignment(text)


def _run(module, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=180, env=env)


def test_train_cli_resolves_the_same_config_as_the_study_and_the_command_line_wins(tmp_path):
  study = studies.build("paper", str(tmp_path))
  cifar = next(c for c in study if c.dataset == "cifar10" and c.backbone == "resnet50"
               and c.seed == 1)
  flagfile = tmp_path / "mine.flags"   # a user's flagfile on top of the paper's
  flagfile.write_text("--flagfile=flags/paper.flags\n--max_epochs=7\n--dropout=0.1\n"
                      "--label_smoothing=0.1\n")
  proc = _run("tfbackbones.train", "--max_epochs=5", f"--flagfile={flagfile}",
              "--dataset=cifar10", "--backbone=resnet50", "--seed=1",
              f"--workdir={cifar.workdir}", "--set", "dropout=0.25", "--dry_run")
  assert proc.returncode == 0, proc.stderr[-2000:]
  resolved = json.loads(proc.stdout[proc.stdout.index("{"):])
  # The study's cell, then the flagfile, then what was typed (--max_epochs stood before the
  # flagfile and still wins), then --set.
  assert resolved == cifar.replace(max_epochs=5, dropout=0.25, label_smoothing=0.1).to_dict()
  assert not os.path.exists(cifar.workdir)                 # a dry run touches nothing


def test_run_cli_set_takes_a_non_square_size_and_dry_run_checks_names(tmp_path):
  ok = _run("experiments.run", "--study=adhoc", "--backbones=resnet50",
            "--datasets=breakhis_40x", "--set", "image_size=672x448",
            f"--workdir={tmp_path}/a", "--dry_run")
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert "breakhis_40x/resnet50/frac1/seed0" in ok.stdout and "todo" in ok.stdout
  bad = _run("experiments.run", "--study=adhoc", "--backbones=resnet_51",
             "--datasets=dtd", f"--workdir={tmp_path}/b", "--dry_run")
  assert bad.returncode == 2 and "INVALID: Unknown backbone 'resnet_51'" in bad.stdout
  assert "Traceback" not in bad.stderr
