"""Choosing the distribution strategy and the mixed-precision policy.

`auto` picks what the hardware wants: TPUStrategy when a TPU is named, MirroredStrategy
over the visible GPUs, otherwise the default (single-device) strategy. Precision `auto`
follows STACK-NOTES measurements: float32 on CPU (fp16 is ~25% slower there), float16 with
loss scaling on GPU, bfloat16 on TPU.
"""

from __future__ import annotations

import json
import logging
import os

import keras
import tensorflow as tf


_STRATEGIES: dict = {}


def make_strategy(name: str, tpu: str | None = None) -> tf.distribute.Strategy:
  """Returns the strategy named by `--strategy` (see config.STRATEGIES), one per process.

  Memoised: a study runs many trainers in one process, and two MirroredStrategy objects
  over the same devices issue colliding collective keys ("Shape mismatch in the
  collective instance"); a TPU system must also be initialised only once.
  """
  key = (name, tpu)
  if key not in _STRATEGIES:
    _STRATEGIES[key] = _make_strategy(name, tpu)
  return _STRATEGIES[key]


def _make_strategy(name: str, tpu: str | None) -> tf.distribute.Strategy:
  if name == "auto":
    if tpu:
      name = "tpu"
    elif tf.config.list_logical_devices("GPU"):
      name = "mirrored"
    elif os.environ.get("TF_CONFIG") and len(json.loads(os.environ["TF_CONFIG"])
                                             .get("cluster", {}).get("worker", [])) > 1:
      name = "multi_worker"
    else:
      name = "default"
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = tf.config.list_logical_devices("CPU")
    # No GPU: mirror over the logical CPU devices (tests split the CPU into two).
    return tf.distribute.MirroredStrategy([d.name for d in cpus])
  if name == "multi_worker":
    if not os.environ.get("TF_CONFIG"):
      raise ValueError("--strategy=multi_worker needs TF_CONFIG describing the cluster "
                       "(see BUILD.md, 'Several machines').")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    if not tpu:
      raise ValueError("--strategy=tpu needs --tpu=NAME (or --tpu=local on a TPU VM)")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu="" if tpu == "local" else tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(f"unknown strategy {name!r}")


def resolve_precision(name: str, strategy: tf.distribute.Strategy) -> str:
  if name != "auto":
    return name
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return "mixed_bfloat16"
  if tf.config.list_logical_devices("GPU"):
    return "mixed_float16"
  return "float32"


def set_precision(policy: str) -> None:
  keras.mixed_precision.set_global_policy(policy)
  logging.info("precision policy: %s", policy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes checkpoints, summaries and results."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)


def worker_tag(strategy: tf.distribute.Strategy) -> str:
  """A name unique to this worker of a multi-worker job (for private scratch dirs)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or resolver.task_type is None:
    return "worker"
  return f"{resolver.task_type}_{resolver.task_id}"
