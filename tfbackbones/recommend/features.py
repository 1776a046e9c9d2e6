"""Features: one forward pass of a frozen backbone over the sample, cached in the workdir.

A candidate's features depend on the backbone, its weights, the sample (which images,
their size and the dataset version) and nothing else, so they are stored under a key
made of exactly those: rerunning `recommend`, or adding a candidate, computes only what
is missing. A cache file that cannot be read is recomputed (and overwritten), never
trusted.

The forward pass is the backbone as `BackboneSpec.build` makes it, fed with the
backbone's own preprocessing (`preprocess_images`), followed by global average pooling
when the features are spatial: the same features a fine-tuned model's new head would
see at initialisation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable

import numpy as np

from tfbackbones.recommend.candidates import Candidate

FEATURES_DIR = "features"
Progress = Callable[[str], None]


@dataclasses.dataclass
class Features:
  """Pooled features of the sample and what the forward pass cost.

  Attributes:
    train / val: (N, D) float32 features, rows in the sample's id order.
    params: parameters of the backbone (without a head).
    img_per_sec: measured forward-pass throughput (preprocessing included, the first,
      tracing batch excluded) at the sample's image size and batch.
    seconds: wall time of the whole extraction (build + trace + forward).
    cached: True when read from the cache in this run.
  """
  train: np.ndarray
  val: np.ndarray
  params: int
  img_per_sec: float
  seconds: float
  cached: bool = False

  @property
  def dim(self) -> int:
    return int(self.train.shape[1])


def weights_identity(candidate: Candidate, spec) -> str:
  """What identifies the weights' values: a file's path, size and mtime, else the spec's
  published weights (file name and hash), so replacing a file invalidates the cache."""
  if candidate.weights not in ("imagenet", "none"):
    try:
      st = os.stat(candidate.weights)
      return f"{candidate.weights}:{st.st_size}:{int(st.st_mtime)}"
    except OSError:
      return candidate.weights
  if candidate.weights == "none":
    return "none"
  return ":".join(str(x) for x in ("imagenet", spec.weights_file, spec.weights_hash,
                                     spec.handle))


def cache_path(workdir: str, candidate: Candidate, spec, sample) -> str:
  key = json.dumps({"backbone": candidate.name, "weights": weights_identity(candidate, spec),
                    "sample": sample.key}, sort_keys=True)
  digest = hashlib.sha256(key.encode()).hexdigest()[:16]
  return os.path.join(workdir, FEATURES_DIR, f"{candidate.slug}__{digest}.npz")


def load(path: str, sample) -> Features | None:
  """The cached features at `path`, or None if absent or unreadable (then recomputed)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if not tf.io.gfile.exists(path):
    return None
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = np.load(io.BytesIO(f.read()), allow_pickle=False)
      meta = json.loads(str(data["meta"]))
      features = Features(train=data["train"], val=data["val"], params=int(meta["params"]),
                          img_per_sec=float(meta["img_per_sec"]),
                          seconds=float(meta["seconds"]), cached=True)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("ignoring unreadable feature cache %s (%s); recomputing", path, e)
    return None
  if (features.train.shape[0] != len(sample.train_ids)
      or features.val.shape[0] != len(sample.val_ids)):
    logging.warning("feature cache %s does not match the sample; recomputing", path)
    return None
  return features


def save(path: str, features: Features) -> None:
  """Writes the features atomically (a crash never leaves a half-written cache file)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.io.gfile.makedirs(os.path.dirname(path))
  buffer = io.BytesIO()
  meta = {"params": features.params, "img_per_sec": features.img_per_sec,
          "seconds": features.seconds}
  np.savez(buffer, train=features.train, val=features.val, meta=json.dumps(meta))
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "wb") as f:
    f.write(buffer.getvalue())
  tf.io.gfile.rename(tmp, path, overwrite=True)


def feature_model(spec, candidate: Candidate, image_size):
  """The backbone (built with the candidate's weights) + global pooling, and its params.

  Raises:
    WeightsNotAvailableError / WeightsMismatchError: from `spec.build`.
  """
  import keras  # pylint: disable=import-outside-toplevel
  # Random-init candidates (@none) must give the same features on every run: they are
  # cached and compared, and a baseline that changes with the run is no baseline.
  keras.utils.set_random_seed(0)
  backbone = spec.build(image_size, candidate.weights)
  backbone.trainable = False
  inputs = keras.Input((*image_size, 3), dtype="float32")
  out = backbone(inputs, training=False)
  if isinstance(out, (list, tuple)):
    out = out[0]
  if len(out.shape) == 4:
    out = keras.layers.GlobalAveragePooling2D()(out)
  elif len(out.shape) != 2:
    raise ValueError(f"backbone {spec.name} returns rank-{len(out.shape)} features")
  return keras.Model(inputs, out), int(backbone.count_params())


def image_batches(images: np.ndarray, preprocessing: str, batch_size: int):
  """uint8 images -> batches normalised the backbone's way, prepared in parallel."""
  # pylint: disable=import-outside-toplevel
  import tensorflow as tf

  from tfbackbones.backbones import preprocess_images
  ds = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
  ds = ds.map(lambda x: preprocess_images(x, preprocessing),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(2)


def extract(spec, candidate: Candidate, sample, batch_size: int,
            progress: Progress = lambda _: None) -> Features:
  """Runs the frozen backbone over the sample's train and val images.

  Raises:
    WeightsNotAvailableError / WeightsMismatchError: before any image is decoded.
  """
  # pylint: disable=import-outside-toplevel
  import keras
  import tensorflow as tf
  started = time.perf_counter()
  model, params = feature_model(spec, candidate, sample.image_size)
  height, width = sample.image_size
  forward = tf.function(lambda x: model(x, training=False), input_signature=[
      tf.TensorSpec((None, height, width, 3), tf.float32)])
  images = sample.images()
  total = sum(len(v) for v in images.values())
  done, timed_images, timed_seconds = 0, 0, 0.0
  out = {}
  next_report = 0.25
  for split in ("train", "val"):
    chunks = []
    iterator = iter(image_batches(images[split], spec.preprocessing, batch_size))
    while True:
      t0 = time.perf_counter()
      batch = next(iterator, None)
      if batch is None:
        break
      chunks.append(forward(batch).numpy().astype(np.float32))
      seconds = time.perf_counter() - t0
      if done > 0:  # the first batch traces the graph: not a throughput sample
        timed_images += int(batch.shape[0])
        timed_seconds += seconds
      done += int(batch.shape[0])
      if done / total >= next_report or done == total:
        progress(f"{candidate.label}: {done}/{total} images")
        while next_report <= done / total:
          next_report += 0.25
    out[split] = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
  img_per_sec = timed_images / timed_seconds if timed_seconds > 0 else float("nan")
  keras.backend.clear_session()
  return Features(train=out["train"], val=out["val"], params=params,
                  img_per_sec=float(img_per_sec), seconds=time.perf_counter() - started)
