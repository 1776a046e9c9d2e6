"""A new user's mistakes on train, study and report: one `error:` line, exit 2, no traceback.

Found by trying the entry points as a first-hour user would (session 8's trial): a typo'd
flag, a workdir that cannot be created, Ctrl-C, a typo'd report workdir, and a report
table that hid a degenerate seed. Each CLI case runs the entry point in a subprocess, as
typed, since absl's flag parsing and exit codes are what the user sees.
"""

import os
import subprocess
import sys

import pytest

from tfbackbones.report import records as rec
from tfbackbones.report import render, tables
from tfbackbones.training import workdir as wd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, **kwargs):
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=120, check=False, **kwargs)


def _one_error_line(proc) -> str:
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  assert "Traceback" not in proc.stderr and "FATAL" not in proc.stderr
  return lines[0]


# ------------------------------------------------------------------ bad flags: exit 2
@pytest.mark.parametrize("module", [
    "tfbackbones.train", "experiments.run", "tfbackbones.report", "experiments.quickstart",
    "tfbackbones.datasets", "tfbackbones.backbones", "tfbackbones.export",
    "tfbackbones.predict", "tfbackbones.recommend", "tfbackbones.convert",
    "experiments.validate_recommend", "experiments.benchmark"])
def test_a_typod_flag_is_one_error_line_and_exit_2(module):
  # absl's own parser printed "FATAL Flags parsing error" and exited 1, which for train
  # is the exit code of a run that is not a result (diverged / degenerate).
  line = _one_error_line(_run(["-m", module, "--max_epoch=3", "--nosuchflag"]))
  assert "max_epoch" in line and "--helpfull" in line


def test_a_word_that_is_not_a_flag_is_refused_not_dropped():
  # `--set a=1 b=2` set only `a` in experiments.run, which ignored its arguments.
  line = _one_error_line(_run(["-m", "experiments.run", "--study=adhoc", "--workdir=x",
                               "--set", "weights=none", "image_size=32"]))
  assert "image_size=32" in line and "--set" in line


def test_a_bad_enum_value_names_the_valid_ones():
  line = _one_error_line(_run(["-m", "tfbackbones.train", "--select_on=tset"]))
  assert "select_on" in line and "val" in line and "test" in line


def test_zero_seeds_is_an_error_not_an_empty_study_that_succeeds():
  from experiments import studies
  from tfbackbones.config import ConfigError
  with pytest.raises(ConfigError, match="--seeds=0"):
    studies.build("adhoc", "runs/x", backbones=["mobilenet_v3_small"],
                  datasets=["sklearn_digits"], seeds=0)


def test_a_missing_image_folder_is_one_line(tmp_path):
  # It was 11 lines about make_builder() and DownloadConfig(manual_dir=...).
  line = _one_error_line(_run(["-m", "tfbackbones.train", "--weights=none",
                               f"--dataset=folder:{tmp_path}/nope",
                               f"--data_dir={tmp_path}/tfds", f"--workdir={tmp_path}/w"]))
  assert f"{tmp_path}/nope not found" in line and "sub-folder" in line


@pytest.mark.parametrize("flag,names", [
    ("--seeds=0", "--seeds=0"),                      # was an IndexError traceback
    ("--max_epochs=-1", "--max_epochs=-1"),          # was a ConfigError traceback
    ("--backbones=mobilenet_v3_smal", "mobilenet_v3_small")])  # was tried once per run
def test_quickstart_checks_its_flags_before_the_first_run(tmp_path, flag, names):
  proc = _run(["-m", "experiments.quickstart", f"--workdir={tmp_path}/qs",
               f"--data_dir={tmp_path}/tfds", flag])
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert proc.stderr.startswith("error: ") and names in proc.stderr, proc.stderr
  assert "[1/" not in proc.stdout and not os.path.exists(tmp_path / "qs")


@pytest.mark.parametrize("dataset", ["sklearn_digits", "folder"])
def test_an_unwritable_data_dir_is_named_as_the_problem(tmp_path, dataset):
  # It said "Offline? Prepare it where the network works" or "Fix the folder".
  from PIL import Image

  from tfbackbones.data import catalog, pipeline
  if dataset == "folder":
    for c in ("a", "b"):
      os.makedirs(tmp_path / "photos" / c)
      for i in range(3):
        Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(tmp_path / "photos" / c / f"{i}.png")
    dataset = f"folder:{tmp_path / 'photos'}"
  with pytest.raises(pipeline.DataNotAvailableError, match="--data_dir you can write") as e:
    pipeline.get_builder(catalog.get(dataset), "/proc/no_such_dir/tfds", download=True)
  assert "Offline" not in str(e.value) and "Fix the folder" not in str(e.value)


# ------------------------------------------------------------------ workdirs
def test_a_workdir_under_a_file_is_refused_before_anything_runs(tmp_path):
  afile = tmp_path / "afile"
  afile.write_text("x")
  with pytest.raises(wd.WorkdirError, match="is a file"):
    wd.check_usable(str(afile / "run"))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_workdir_that_cannot_be_created_is_refused_and_nothing_is_left(tmp_path):
  with pytest.raises(wd.WorkdirError, match="cannot be created"):
    wd.check_usable("/proc/no_such_dir/run")   # not creatable, even by root
  new = tmp_path / "new" / "run"
  wd.check_usable(str(new))                    # a creatable path passes ...
  assert os.listdir(tmp_path) == []            # ... and the check leaves nothing behind


def test_train_on_an_uncreatable_workdir_is_one_line():
  line = _one_error_line(_run(["-m", "tfbackbones.train", "--weights=none",
                               "--workdir=/proc/no_such_dir/run", "--dry_run"]))
  assert "/proc/no_such_dir/run" in line


def test_a_study_on_an_uncreatable_workdir_is_one_line():
  line = _one_error_line(_run(["-m", "experiments.run", "--study=adhoc",
                               "--backbones=mobilenet_v3_small", "--datasets=sklearn_digits",
                               "--workdir=/proc/no_such_dir/study"]))
  assert "/proc/no_such_dir/study" in line


# ------------------------------------------------------------------ Ctrl-C
_INTERRUPT = """
import sys
from absl import app
from tfbackbones import cli, train
def interrupted(config, **kwargs):
  raise KeyboardInterrupt   # as Ctrl-C mid-epoch
def main(argv):
  cli.quiet_logs()          # as train.main does, before TensorFlow is imported
  from tfbackbones import runner
  runner.train = interrupted
  return train.main(argv)
app.run(main, argv=sys.argv, flags_parser=cli.parse_flags)
"""


def test_ctrl_c_says_how_to_resume_instead_of_a_traceback(tmp_path):
  proc = _run(["-c", _INTERRUPT, "--weights=none", f"--workdir={tmp_path / 'run'}"])
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode == 130, (proc.returncode, proc.stderr)   # 128 + SIGINT
  assert len(lines) == 1 and "rerun the same command" in lines[0], proc.stderr
  assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ report
def test_report_on_a_workdir_that_does_not_exist_is_an_error(tmp_path):
  with pytest.raises(ValueError, match="no such directory"):
    rec.read_workdir(str(tmp_path / "typo"))
  line = _one_error_line(_run(["-m", "tfbackbones.report", f"--workdir={tmp_path}/typo",
                               f"--out={tmp_path}/report"]))
  assert "typo" in line
  assert not os.path.exists(tmp_path / "report")   # no empty report that looks like one


def test_report_to_an_out_that_cannot_be_created_is_one_line(tmp_path):
  os.makedirs(tmp_path / "study")
  line = _one_error_line(_run(["-m", "tfbackbones.report", f"--workdir={tmp_path}/study",
                               "--out=/proc/no_such_dir/report"]))
  assert "/proc/no_such_dir" in line and "--out" in line


def test_report_n_column_counts_runs_that_are_not_results():
  def record(seed, top1, status):
    return rec.Record(backbone="b", dataset="d", domain="A", train_fraction=1.0, seed=seed,
                      status=status, top1=top1, selection_protocol=rec.VAL_SPLIT,
                      source=rec.RUNS)
  table = tables.datasets_table([record(0, 83.3, rec.FINISHED),
                                 record(1, None, rec.DEGENERATE),
                                 record(2, None, rec.DIVERGED)])
  md = render.to_markdown(table)
  # The mean is over one seed of three: the table must say so, not show a bare "1".
  assert "| 1 (+2 not results) |" in md, md


# ------------------------------------------------------------------ offline datasets
def _no_dns(monkeypatch):
  import socket

  def fail(*args, **kwargs):
    raise socket.gaierror(-2, "Name or service not known")
  monkeypatch.setattr(socket, "getaddrinfo", fail)
  for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
              "all_proxy"):
    monkeypatch.delenv(var, raising=False)


def test_an_unprepared_catalog_dataset_offline_fails_in_seconds(tmp_path, monkeypatch):
  # It used to retry the download for ~4 minutes (dtd, measured) before the same advice;
  # offline, TFDS now tries once and the message says why.
  import time

  from tfbackbones.data import catalog, pipeline
  _no_dns(monkeypatch)
  start = time.monotonic()
  with pytest.raises(pipeline.DataNotAvailableError, match="no network") as e:
    pipeline.get_builder(catalog.get("dtd"), str(tmp_path), download=True)
  assert time.monotonic() - start < 20
  assert "--prepare=dtd" in str(e.value) and "www.robots.ox.ac.uk" in str(e.value)


def test_the_offline_check_never_concerns_builders_that_need_no_network(tmp_path,
                                                                      monkeypatch):
  import tensorflow_datasets as tfds

  from tfbackbones.data import catalog, offline, pipeline
  _no_dns(monkeypatch)
  ours = pipeline.tfds_builder(catalog.get("sklearn_digits"), str(tmp_path))
  manual = pipeline.tfds_builder(catalog.get("tiny_imagenet"), str(tmp_path))
  assert offline.unreachable(ours) is None and offline.unreachable(manual) is None
  dtd = tfds.builder("dtd", data_dir=str(tmp_path))
  assert offline.unreachable(dtd) is not None
  monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")   # a proxy resolves for us
  assert offline.unreachable(dtd) is None


def test_report_says_when_a_cell_repeats_a_seed():
  # Two runs of seed 0 with other flags in one --workdir showed as "95.83 ± 0.00, n=2":
  # a std over seeds of a seed with itself.
  def record(seed, top1):
    return rec.Record(backbone="b", dataset="d", domain="A", train_fraction=1.0, seed=seed,
                      status=rec.FINISHED, top1=top1, selection_protocol=rec.VAL_SPLIT,
                      source=rec.RUNS)
  table = tables.datasets_table([record(0, 95.8), record(0, 95.8), record(1, 90.0)])
  md = render.to_markdown(table)
  assert "| 3 (+seed 0 repeated) |" in md, md
  assert "seed repeated: d / b: seed 0" in md
  fine = render.to_markdown(tables.datasets_table([record(0, 95.8), record(1, 90.0)]))
  assert "repeated" not in fine


def test_a_damaged_result_json_is_counted_in_its_own_cell(tmp_path):
  # A study run's damaged result.json made a cell of its own, named by the directory's
  # slug ("folder_tmp_trial_digits3"), beside the real dataset's row.
  import json
  run = tmp_path / "folder_tmp_photos" / "b-scratch" / "frac1" / "seed1"
  os.makedirs(run)
  (run / "config.json").write_text(json.dumps(
      {"dataset": "folder:/tmp/photos", "backbone": "b", "weights": "none", "seed": 1,
       "train_fraction": 1.0, "select_on": "val"}))
  (run / "result.json").write_text("[]")
  [record] = rec.read_workdir(str(tmp_path))
  assert (record.dataset, record.backbone, record.seed, record.status) == (
      "folder:/tmp/photos", "b-scratch", 1, rec.UNREADABLE)
  assert "result.json" in record.error


def test_convert_without_its_required_flags_is_one_line_exit_2():
  # It raised absl's UsageError: help text and exit 1, the code of a failed conversion.
  line = _one_error_line(_run(["-m", "tfbackbones.convert", "--arch=resnet50"]))
  assert "--src" in line and "--dst" in line
