"""Choosing the distribution strategy and the mixed-precision policy.

`auto` picks what the hardware wants: TPUStrategy when a TPU is named, MirroredStrategy
over the visible GPUs, MirroredStrategy over `--cpu_replicas` slices of the CPU when asked
(see `configure_cpu_replicas`), otherwise the default (single-device) strategy. Precision `auto`
follows docs/stack.md measurements: float32 on CPU (fp16 is ~25% slower there), float16 with
loss scaling on GPU, bfloat16 on TPU.
"""

from __future__ import annotations

import json
import logging
import os
import re

import keras
import tensorflow as tf

from tfbackbones.cores import usable as usable_cores

_STRATEGIES: dict = {}


class CpuReplicasError(RuntimeError):
  """The CPU cannot be split as asked (TensorFlow already started); says what to do."""


def configure_cpu_replicas(replicas: int) -> None:
  """Splits the CPU into `replicas` logical devices, one training replica per core.

  Why: a small network (MobileNetV3, EfficientNetV2-B0) at a small input runs hundreds of
  small kernels a step, too small for TF to split over cores, so on a 2-core machine one
  core idles most of the time (62% idle in the MobileNetV3-Small profile). Two replicas
  with single-threaded kernels keep both cores busy: +2-8% on MobileNetV3-Small 96 px and
  +10% on EfficientNetV2-B0 128 px (experiments/BENCHMARKS.md); big kernels (ResNet-50)
  gain nothing. As on several GPUs, each replica normalises its BatchNorm over its own
  share of the global batch, so results differ slightly from one replica; the default is 1.

  Must run before TensorFlow executes anything (the CLI does it first thing).

  Raises:
    CpuReplicasError: TensorFlow has started with another CPU layout.
  """
  if replicas <= 1:
    return
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas)
    cores = usable_cores()
    tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // replicas))
    tf.config.threading.set_inter_op_parallelism_threads(replicas)
    logging.info("CPU split into %d replicas, %d intra-op thread(s) each", replicas,
                 max(1, cores // replicas))
  except RuntimeError as e:  # already initialised
    have = len(tf.config.list_logical_devices("CPU"))
    if have != replicas:
      raise CpuReplicasError(
          f"--cpu_replicas={replicas} must be set before TensorFlow starts, but it has "
          f"already started with {have} logical CPU device(s) ({e}). From the command "
          "line this is automatic; from Python call "
          "tfbackbones.training.distribute.configure_cpu_replicas(N) before any "
          "TensorFlow op runs.") from e


def make_strategy(name: str, tpu: str | None = None,
                  cpu_replicas: int = 1) -> tf.distribute.Strategy:
  """Returns the strategy named by `--strategy` (see config.STRATEGIES), one per process.

  Memoised on the resolved strategy: a study runs many trainers in one process, and two
  MirroredStrategy objects over the same devices issue colliding collective keys ("Shape
  mismatch in the collective instance"); a TPU system must also be initialised only once.
  """
  name = _resolve(name, tpu, cpu_replicas)
  key = (name, tpu)
  if key not in _STRATEGIES:
    _STRATEGIES[key] = _make_strategy(name, tpu)
  return _STRATEGIES[key]


def _resolve(name: str, tpu: str | None, cpu_replicas: int) -> str:
  if cpu_replicas > 1 and name in ("auto", "mirrored", "default"):
    if not tf.config.list_logical_devices("GPU"):
      configure_cpu_replicas(cpu_replicas)
      return "mirrored"
  if name != "auto":
    return name
  if tpu:
    return "tpu"
  if tf.config.list_logical_devices("GPU"):
    return "mirrored"
  if os.environ.get("TF_CONFIG") and len(json.loads(os.environ["TF_CONFIG"])
                                         .get("cluster", {}).get("worker", [])) > 1:
    return "multi_worker"
  return "default"


def _make_strategy(name: str, tpu: str | None) -> tf.distribute.Strategy:
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
  return _is_chief_task(resolver.task_type, resolver.task_id,
                        resolver.cluster_spec().as_dict())


def _is_chief_task(task_type, task_id, cluster: dict) -> bool:
  """TF's rule: the `chief` task if the cluster has one, else worker 0."""
  if task_type is None or task_type == "chief":
    return True
  return task_type == "worker" and int(task_id or 0) == 0 and "chief" not in cluster


def worker_tag(strategy: tf.distribute.Strategy) -> str:
  """A name unique to this worker of a multi-worker job (for private scratch dirs)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or resolver.task_type is None:
    return "worker"
  return f"{resolver.task_type}_{resolver.task_id}"


def tf_config_is_chief() -> bool:
  """Whether this process is the chief by its TF_CONFIG (True without one).

  For the moments before the strategy exists (a failure while setting up must still be
  written by the chief only)."""
  tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
  task = tf_config.get("task", {})
  return _is_chief_task(task.get("type"), task.get("index", 0), tf_config.get("cluster", {}))


class WorkerLostError(RuntimeError):
  """A peer of a multi-worker job died or became unreachable; rerunning resumes.

  One message for the user instead of TensorFlow's graph-execution traceback: which task
  was lost (when TF names it), the epoch the workdir can resume from, and what to do.
  """


# What TF raises on the survivors when a peer dies: the coordination service's heartbeat
# check aborts pending collectives ("tasks are unhealthy"), or the gRPC link to the dead
# task fails ("Connection reset by peer", "Socket closed").
_PEER_LOSS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
              tf.errors.AbortedError, tf.errors.CancelledError)


def worker_lost(error: BaseException, strategy, resume_epoch: int,
                workdir: str) -> WorkerLostError | None:
  """Returns the clear error for `error` if it means a lost peer, else None.

  Args:
    error: what the training loop raised.
    strategy: the run's strategy (None if it was never created).
    resume_epoch: epochs completed in the workdir's last checkpoint (0 = none).
    workdir: the run's workdir, for the message.
  """
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return None
  text = str(error)
  if not (isinstance(error, _PEER_LOSS) or "Collective ops is aborted" in text):
    return None
  tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", text)))
  resolver = strategy.cluster_resolver
  me = f"/job:{resolver.task_type}/replica:0/task:{resolver.task_id}"
  lost = [t for t in tasks if t != me]
  who = ", ".join(lost) if lost else "a peer"
  cause = next((line.strip() for line in text.splitlines()
                if "aborted by" in line or "unhealthy" in line), type(error).__name__)
  cause = cause.replace("Collective ops is aborted by: ", "").rstrip(":")
  where = (f"the last checkpoint in {workdir} is after epoch {resume_epoch}"
           if resume_epoch else f"{workdir} holds no checkpoint yet")
  return WorkerLostError(
      f"the multi-worker job lost {who} ({cause[:200]}); {where}. Rerun the same command "
      "on every worker to resume from it.")


def describe(strategy: tf.distribute.Strategy) -> str:
  """A name a user understands: "one device (CPU)", "MirroredStrategy over 2 CPUs", ...

  The class name of the default strategy is the private `_DefaultDistributionStrategy`,
  and MultiWorkerMirroredStrategy's is `CollectiveAllReduceStrategy`: neither tells a
  user where the run trains.
  """
  replicas = strategy.num_replicas_in_sync
  try:
    devices = list(strategy.extended.worker_devices)
  except RuntimeError:  # the default strategy: wherever TF places ops
    devices = []
  kinds = sorted({d.rsplit("/", 1)[-1].split(":")[-2].upper() for d in devices
                  if d.count(":") >= 2}) or [
                      "GPU" if tf.config.list_logical_devices("GPU") else "CPU"]
  kind = "/".join(kinds)
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return f"TPUStrategy over {replicas} TPU cores"
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return f"MultiWorkerMirroredStrategy over {replicas} replicas ({kind})"
  if replicas == 1:
    return f"one device ({kind})"
  return f"{type(strategy).__name__.lstrip('_')} over {replicas} {kind}s"
