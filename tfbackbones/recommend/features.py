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
    unreadable: sampled files that could not be decoded (left out of the rows).
  """
  train: np.ndarray
  val: np.ndarray
  params: int
  img_per_sec: float
  seconds: float
  cached: bool = False
  unreadable: list = dataclasses.field(default_factory=list)

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
  import tensorflow as tf
  if not tf.io.gfile.exists(path):
    return None
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = np.load(io.BytesIO(f.read()), allow_pickle=False)
      meta = json.loads(str(data["meta"]))
      features = Features(train=data["train"], val=data["val"], params=int(meta["params"]),
                          img_per_sec=float(meta["img_per_sec"]),
                          seconds=float(meta["seconds"]), cached=True,
                          unreadable=list(meta.get("unreadable", [])))
  except Exception as e:
    logging.warning("ignoring unreadable feature cache %s (%s); recomputing", path, e)
    return None
  # The files it found unreadable are unreadable for this run too (same key, same files).
  if features.unreadable and not sample.unreadable:
    sample.drop(features.unreadable)
  if (features.train.shape[0] != len(sample.train_ids)
      or features.val.shape[0] != len(sample.val_ids)):
    logging.warning("feature cache %s does not match the sample; recomputing", path)
    return None
  return features


def save(path: str, features: Features) -> None:
  """Writes the features atomically (a crash never leaves a half-written cache file)."""
  import tensorflow as tf
  tf.io.gfile.makedirs(os.path.dirname(path))
  buffer = io.BytesIO()
  meta = {"params": features.params, "img_per_sec": features.img_per_sec,
          "seconds": features.seconds, "unreadable": features.unreadable}
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
  import keras
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


def make_forward(model, image_size, preprocessing: str):
  """The traced forward pass: uint8 images in, the backbone's preprocessing, features out.

  Preprocessing runs inside the same graph and batches are plain slices of the uint8
  array: measured on 2 cores, a tf.data pipeline preprocessing ahead of the model
  competes with it for the cores and ran ~25% slower (EfficientNetV2-B2 at 96 px: 37.7
  vs 48.8 img/s; `keras.Model.predict` on preprocessed floats: 40.9).
  """
  import tensorflow as tf

  from tfbackbones.backbones import preprocess_images
  height, width = image_size

  @tf.function(input_signature=[tf.TensorSpec((None, height, width, 3), tf.uint8)])
  def forward(images):
    return model(preprocess_images(images, preprocessing), training=False)

  return forward


def forward_pass(forward, images: np.ndarray, batch_size: int,
                 on_batch: Callable[[int], None] = lambda _: None) -> tuple:
  """Features of `images` (uint8, N x H x W x 3), batch by batch.

  Returns:
    (features (N, D) float32, images timed, seconds timed): the first batch, which may
    trace the graph, is not timed (see `throughput` when it is the only one).
  """
  chunks, timed_images, timed_seconds = [], 0, 0.0
  for start in range(0, len(images), batch_size):
    t0 = time.perf_counter()
    batch = images[start:start + batch_size]
    chunks.append(np.asarray(forward(batch), np.float32))
    if start > 0:
      timed_images += len(batch)
      timed_seconds += time.perf_counter() - t0
    on_batch(start + len(batch))
  return np.concatenate(chunks), timed_images, timed_seconds


def throughput(forward, images: np.ndarray, batch_size: int, timed_images: int,
               timed_seconds: float) -> float:
  """Images per second from `forward_pass`'s timing.

  When the sample was a single batch (a small folder) nothing was timed: that batch is
  run once more, traced, to be timed; otherwise there would be no img/s and no fine-tune
  estimate (it used to print `nan img/s`).
  """
  if not timed_images and len(images):
    t0 = time.perf_counter()
    np.asarray(forward(images[:batch_size]))
    timed_images, timed_seconds = min(len(images), batch_size), time.perf_counter() - t0
  return timed_images / timed_seconds if timed_seconds > 0 else float("nan")


def extract(spec, candidate: Candidate, sample, batch_size: int,
            progress: Progress = lambda _: None) -> Features:
  """Runs the frozen backbone over the sample's train and val images (one pass).

  Raises:
    WeightsNotAvailableError / WeightsMismatchError: before any image is decoded.
  """
  import keras
  started = time.perf_counter()
  model, params = feature_model(spec, candidate, sample.image_size)
  forward = make_forward(model, sample.image_size, spec.preprocessing)
  images = sample.images()
  n_train = len(images["train"])
  everything = np.concatenate([images["train"], images["val"]])
  total = len(everything)
  marks = [round(total * q) for q in (0.25, 0.5, 0.75, 1.0)]

  def on_batch(done):
    if marks and done >= marks[0]:
      progress(f"{candidate.label}: {done}/{total} images")
      while marks and done >= marks[0]:
        marks.pop(0)

  feats, timed_images, timed_seconds = forward_pass(forward, everything, batch_size,
                                                    on_batch)
  img_per_sec = throughput(forward, everything, batch_size, timed_images, timed_seconds)
  keras.backend.clear_session()
  return Features(train=feats[:n_train], val=feats[n_train:], params=params,
                  img_per_sec=float(img_per_sec), seconds=time.perf_counter() - started,
                  unreadable=list(sample.unreadable))
