"""Shared test set-up: two logical CPU devices, quiet TF, a prepared digits dataset.

The CPU is split into two logical devices before TensorFlow initialises, so that
multi-replica tests can run a real 2-replica MirroredStrategy on this 2-core machine;
the default strategy still uses one device.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The fused CPU kernels (tfbackbones/kernels) are compiled once per test session into a
# fresh cache, so the suite exercises the build, not a library left by an earlier run;
# subprocesses (CLI tests) inherit it.
# The process that makes it removes it at exit (pytest-xdist workers inherit it).
if "TFBACKBONES_CACHE" not in os.environ:
  import atexit
  import shutil
  import tempfile
  os.environ["TFBACKBONES_CACHE"] = tempfile.mkdtemp(prefix="tfbackbones-cache-")
  atexit.register(shutil.rmtree, os.environ["TFBACKBONES_CACHE"], ignore_errors=True)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest

# torch (parity tests, benchmarks) must be imported before TensorFlow: importing
# torchvision after TF segfaults in triton's C extension (torch 2.14 CUDA build).
try:
  import torch  # noqa: F401
  import torchvision  # noqa: F401
except ImportError:
  pass

import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
try:
  tf.config.set_logical_device_configuration(
      _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # already initialised by another conftest import
  pass


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory):
  """A TFDS data_dir with sklearn_digits prepared (offline: the data ships in sklearn)."""
  import tensorflow_datasets as tfds

  import tfds_builders  # noqa: F401
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  tfds.builder("sklearn_digits", data_dir=data_dir).download_and_prepare()
  return data_dir
