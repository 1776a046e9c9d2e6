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
  logger.addFilter(quiet._FILTER)  # pylint: disable=protected-access
  try:
    with caplog.at_level(logging.WARNING, logger="absl"):
      logger.warning("Variant folder %s has no %s", "/x/1.0.0", "dataset_info.json")
      logger.warning("Using custom data configuration: %s", "FolderConfig(...)")
      logger.warning("checkpoint %s is damaged", "/x/ckpt-3")
  finally:
    logger.removeFilter(quiet._FILTER)  # pylint: disable=protected-access
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
