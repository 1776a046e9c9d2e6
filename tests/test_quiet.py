"""Quiet by default: normal output has no start-up noise; --verbose brings it back."""

import logging
import os
import subprocess
import sys

import pytest

from tfbackbones import quiet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = ("Variant folder", "cuInit", "InitializeLog", "oneDNN", "custom data configuration")


def test_filter_drops_only_the_known_noise(caplog):
  logger = logging.getLogger("absl")
  logger.addFilter(quiet._FILTER)
  try:
    with caplog.at_level(logging.WARNING, logger="absl"):
      logger.warning("Variant folder %s has no %s", "/x/1.0.0", "dataset_info.json")
      logger.warning("Using custom data configuration: %s", "FolderConfig(...)")
      logger.warning("checkpoint %s is damaged", "/x/ckpt-3")
  finally:
    logger.removeFilter(quiet._FILTER)
  assert [r.getMessage() for r in caplog.records] == ["checkpoint /x/ckpt-3 is damaged"]


def _datasets_cli(data_dir, *flags):
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  return subprocess.run([sys.executable, "-m", "tfbackbones.datasets",
                         f"--data_dir={data_dir}", *flags], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.heavy
def test_datasets_table_is_quiet_and_verbose_shows_the_logs(digits_data_dir):
  normal = _datasets_cli(digits_data_dir)
  assert normal.returncode == 0, normal.stderr
  assert normal.stderr == "", normal.stderr
  assert any(line.startswith("sklearn_digits") and line.rstrip().endswith("yes")
             for line in normal.stdout.splitlines())
  verbose = _datasets_cli(digits_data_dir, "--verbose")
  assert verbose.returncode == 0
  assert any(n in verbose.stderr for n in NOISE), verbose.stderr[:2000]


@pytest.mark.heavy
def test_installing_the_package_prints_no_setuptools_warning(tmp_path):
  """The build hooks `pip install -e .` and `pip install .` call, on a copy of the repo.

  Declared package data (no include_package_data) and an explicit package_dir keep
  setuptools from warning about every dummy_data folder and about its editable finder.
  """
  import shutil
  src = tmp_path / "src"
  shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
      ".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
  out = tmp_path / "dist"
  out.mkdir()
  code = ("import sys; from setuptools import build_meta as b; "
          f"print(b.build_editable({str(out)!r})); print(b.build_wheel({str(out)!r}))")
  proc = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  output = proc.stdout + proc.stderr
  assert "Warning" not in output, [line for line in output.splitlines() if "Warning" in line]
  import zipfile
  wheel = [p for p in out.iterdir() if p.name.endswith(".whl") and "editable" not in p.name]
  names = zipfile.ZipFile(wheel[0]).namelist()
  assert sum("dummy_data" in n for n in names) > 100  # package data still ships
  assert "tfbackbones/report/paper_results.csv" in names


def _native(text: str) -> None:
  """Writes to file descriptor 2 as C++ code does, past sys.stderr."""
  os.write(2, text.encode())


def test_native_output_drops_litert_chatter_and_keeps_other_lines(capfd, monkeypatch):
  monkeypatch.setattr(quiet, "_quieted", True)
  with quiet.native_output():
    _native("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    _native("fully_quantize: 0, inference_type: 6, input_inference_type: UINT8\n")
    _native("W: a real warning from the converter\n")
  err = capfd.readouterr().err
  assert err == "W: a real warning from the converter\n"


def test_native_output_replays_everything_when_the_block_fails(capfd, monkeypatch):
  monkeypatch.setattr(quiet, "_quieted", True)
  with pytest.raises(RuntimeError), quiet.native_output():
    _native("fully_quantize: 0\n")
    raise RuntimeError("conversion failed")
  assert "fully_quantize: 0" in capfd.readouterr().err


def test_native_output_filters_nothing_unless_an_entry_point_quieted(capfd, monkeypatch):
  monkeypatch.setattr(quiet, "_quieted", False)
  with quiet.native_output():
    _native("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
  assert "XNNPACK delegate" in capfd.readouterr().err
