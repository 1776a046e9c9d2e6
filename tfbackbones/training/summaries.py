"""What a run tells the world: TensorBoard scalars and HParams, progress lines, result.json.

Scalars are written once per epoch (never per step: per-step summaries halved the speed
of a naive loop, docs/stack.md). The HParams plugin gets the run's hyper-parameters at the
start and its final metrics as scalars at the end, so the HParams dashboard of a study's
logdir compares runs on best-val and test-at-best, not on whatever the last epoch was.
"""

from __future__ import annotations

import datetime
import platform

import keras
import numpy as np
import tensorflow as tf

from tfbackbones import imagesize, results
from tfbackbones import model as model_lib
from tfbackbones.results import RunResult
from tfbackbones.training import distribute
from tfbackbones.training import hparams as hparams_lib

FINAL_METRICS = ("final/best_val_top1", "final/test_top1", "final/test_balanced_accuracy",
                 "final/test_macro_f1", "final/test_loss", "final/epochs",
                 "final/train_images_per_sec")


def learning_rate(optimizer) -> float:
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  return float(np.asarray(keras.ops.convert_to_numpy(inner.learning_rate)))


class RunWriter:
  """TensorBoard writer of one run; a no-op on non-chief workers."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self.workdir = workdir
    self.writer = tf.summary.create_file_writer(workdir) if enabled else None

  def hparams(self, values: dict) -> None:
    if not self.enabled:
      return
    with self.writer.as_default():
      hparams_lib.write_start(values, list(FINAL_METRICS) + ["val/top1", "train/loss"],
                              trial_id=self.workdir)
    self.writer.flush()

  def end(self, success: bool) -> None:
    """Ends the HParams session: the dashboard's Success/Failure filters read it."""
    if not self.enabled:
      return
    with self.writer.as_default():
      hparams_lib.write_end(success)
    self.writer.flush()

  def epoch(self, record: dict, step: int) -> None:
    if not self.enabled:
      return
    epoch = record["epoch"] + 1
    with self.writer.as_default(step=epoch):
      tf.summary.scalar("train/loss", record["train_loss"])
      tf.summary.scalar("train/top1", record["train_top1"])
      for k, v in record["val"].items():
        if k != "count":
          tf.summary.scalar(f"val/{k}", v)
      tf.summary.scalar("val/best_top1", record["best"])
      tf.summary.scalar("optimizer/learning_rate", record["learning_rate"])
      tf.summary.scalar("optimizer/phase", 0 if record["phase"] == "adamw" else 1)
      tf.summary.scalar("speed/images_per_sec", record["images_per_sec"])
      tf.summary.scalar("speed/epoch_seconds", record["epoch_seconds"])
      tf.summary.scalar("speed/global_step", step)
    self.writer.flush()

  def final(self, result: RunResult, step: int) -> None:
    if not self.enabled:
      return
    test, val = result.test, result.val
    values = {
        "final/best_val_top1": val["top1"], "final/test_top1": test["top1"],
        "final/test_balanced_accuracy": test["balanced_accuracy"],
        "final/test_macro_f1": test["macro_f1"], "final/test_loss": test["loss"],
        "final/epochs": result.epochs["total"],
        "final/train_images_per_sec": result.train_images_per_sec,
    }
    with self.writer.as_default(step=result.epochs["total"]):
      for k, v in values.items():
        tf.summary.scalar(k, v)
      tf.summary.text("result", _markdown_row(result))
    self.writer.flush()
    self.end(result.ranked)

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()


def hparams_of(trainer) -> dict:
  """The run's hyper-parameters, typed as tfbackbones/training/hparams.py declares them."""
  cfg = trainer.config
  height, width = imagesize.require(trainer.image_size)
  return {
      "backbone": cfg.backbone, "dataset": cfg.dataset,
      "domain": trainer.dataset_spec.domain, "seed": cfg.seed,
      "train_fraction": cfg.train_fraction, "select_on": cfg.select_on,
      "weights": cfg.weights, "image_width": width, "image_height": height,
      "batch_size": cfg.batch_size, "adamw_patience": cfg.adamw_patience,
      "sgd_patience": cfg.sgd_patience, "precision": trainer.precision,
      "freeze_backbone": cfg.freeze_backbone, "augment": trainer.augment,
      "adamw_lr": cfg.adamw_lr, "sgd_lr": cfg.sgd_lr,
  }


def _markdown_row(result: RunResult) -> str:
  keys = ["backbone", "dataset", "seed", "train_fraction", "selection_protocol", "status"]
  head = "| " + " | ".join(keys + ["val top1", "test top1"]) + " |"
  sep = "|" + "---|" * (len(keys) + 2)
  row = "| " + " | ".join(str(getattr(result, k)) for k in keys) + \
        f" | {result.val['top1']:.4f} | {result.test['top1']:.4f} |"
  return "\n".join([head, sep, row])


def start_line(trainer) -> str:
  d = trainer.data
  facts = getattr(d, "facts", None) or {}
  notes = [f"{facts[k]} {label}" for k, label in (
      ("skipped_files", "unreadable files skipped"), ("ignored_files", "non-image files "
       "ignored"), ("broken_links", "broken links skipped")) if facts.get(k)]
  if facts.get("dropped_classes"):
    notes.append(f"classes dropped: {', '.join(facts['dropped_classes'])}")
  if trainer.global_batch != trainer.config.batch_size:
    notes.append(f"batch lowered from {trainer.config.batch_size} for >= "
                 f"{trainer.config.min_steps_per_epoch} steps/epoch")
  return (f"training {trainer.config.backbone} on {trainer.config.dataset}: "
          f"{d.ids.counts['train']} train / {d.ids.counts['val']} "
          f"{'val' if d.ids.val_from == 'train' else 'test (SELECTED ON TEST)'} / "
          f"{d.ids.counts['test']} test images at {imagesize.text(trainer.image_size)}px, "
          f"{d.num_classes} classes; {distribute.describe(trainer.strategy)}, "
          f"{trainer.precision}, global batch "
          f"{trainer.global_batch}, {trainer.steps_per_epoch} steps/epoch, "
          f"weights={trainer.config.weights}" + (f" ({'; '.join(notes)})" if notes else ""))


def progress_line(record: dict, sched, history: list, max_epochs: int, decision) -> str:
  times = [h["epoch_seconds"] for h in history[-5:]]
  eta = (max_epochs - sched.epoch) * (sum(times) / len(times))
  line = (f"epoch {record['epoch'] + 1:3d} [{record['phase']}] "
          f"loss {record['train_loss']:.4f} val top1 {record['val']['top1']:.4f} "
          f"best {sched.best:.4f} patience left {record['patience_left']} "
          f"{record['images_per_sec']:.0f} img/s {record['epoch_seconds']:.1f}s "
          f"eta <= {_duration(eta)}")
  if decision.reason:
    line += f"  -> {decision.reason}" + ("; restoring the best weights, switching to SGD"
                                         if decision.switch_to_sgd else "; stopping")
  return line


def _duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
      f"{seconds // 60}m{seconds % 60:02d}s"


def result_line(result: RunResult) -> str:
  if result.status == results.FAILED:
    return f"run FAILED: {result.error}"
  if result.status != results.FINISHED:
    return (f"run {result.status.upper()} (not a result; reports list it, never rank it): "
            f"{result.reason}")
  marker = " (SELECTED ON TEST)" if result.selected_on_test else ""
  return (f"result: {result.backbone} on {result.dataset} seed {result.seed}: "
          f"best val top1 {result.val['top1']:.4f} (epoch "
          f"{result.selection['best_epoch'] + 1}), test top1 {result.test['top1']:.4f}"
          f"{marker}, {result.epochs['total']} epochs "
          f"({result.epochs['adamw']} AdamW + {result.epochs['sgd']} SGD), "
          f"{result.wall_time_sec:.0f}s")


def build_result(trainer, sched, history, val: dict, test: dict, *, wall_time: float,
                 peak_rss_mb: float) -> RunResult:
  """The finished run's RunResult (its status may still be changed by the health check)."""
  cfg, spec = trainer.config, trainer.spec
  speeds = [h["images_per_sec"] for h in history]
  steady = speeds[1:] if len(speeds) > 1 else speeds  # epoch 1 includes tracing
  data = getattr(trainer.data, "facts", None) or {}
  return RunResult.for_config(
      cfg, status=results.FINISHED,
      backbone_info={"source": spec.source, "published_params_m": spec.params_m,
                     "imagenet_top1": spec.imagenet_top1, "weights": cfg.weights,
                     "preprocessing": spec.preprocessing},
      domain=trainer.dataset_spec.domain,
      num_classes=trainer.data.num_classes,
      class_names=list(trainer.data.class_names),
      split_counts=dict(trainer.data.ids.counts),
      image_size=imagesize.canonical(trainer.image_size),
      augmentation={"augment": trainer.augment, "augment_at": cfg.augment_at},
      selection={"select_on": cfg.select_on, "selected_on_test": cfg.selected_on_test,
                 "metric": "val top1" if not cfg.selected_on_test else "test top1",
                 "best_epoch": sched.best_epoch, "best_value": sched.best},
      val=val, test=test,
      params=model_lib.parameter_count(trainer.model),
      trainable_params=int(sum(int(np.prod(v.shape))
                               for v in trainer.model.trainable_variables)),
      model_size_mb=model_lib.weights_megabytes(trainer.model),
      epochs={"adamw": sched.epochs_per_phase["adamw"], "sgd": sched.epochs_per_phase["sgd"],
              "total": sched.epoch},
      switch_epoch=sched.switch_epoch,
      stop_reason=sched.stop_reason,
      wall_time_sec=wall_time,
      train_images_per_sec=float(np.median(steady)) if steady else None,
      data=dict(data),
      peak_host_memory_mb=peak_rss_mb,
      strategy=type(trainer.strategy).__name__,
      replicas=trainer.strategy.num_replicas_in_sync,
      precision=trainer.precision,
      global_batch=trainer.global_batch,
      versions={"tensorflow": tf.__version__, "keras": keras.__version__,
                "python": platform.python_version()},
      finished_at=datetime.datetime.now(datetime.timezone.utc).isoformat())
