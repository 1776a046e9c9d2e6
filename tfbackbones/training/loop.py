"""The custom training loop: DualOpt, early stopping, resume, under any tf.distribute strategy.

Why a custom loop rather than `Model.fit`: the AdamW->SGD switch needs the best weights
restored and a new optimizer mid-run, selection must happen on a held-out split with exact
per-sample metrics, and a preempted run must resume at the same phase with the same
optimizer state and patience counters. Why it is not slower than `fit`: several steps run
inside one `tf.function` call (`steps_per_execution`), metrics are summed on the device and
read once per call, and summaries are written once per epoch, outside the hot path.

The trainer owns the loop, distribution, checkpoints and summaries; the data pipeline,
the backbone registry and the head are separate modules (Model Garden's task/trainer
split).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import resource
import time
from collections.abc import Callable

import keras
import tensorflow as tf

from tfbackbones import artifacts, imagesize, kernels, results
from tfbackbones import backbones as backbones_lib
from tfbackbones import model as model_lib
from tfbackbones import significance as significance_lib
from tfbackbones.config import ConfigError, TrainConfig
from tfbackbones.data import catalog, pipeline
from tfbackbones.results import RunResult
from tfbackbones.training import (
  batching,
  distribute,
  dualopt,
  fused_bn,
  health,
  optimizers,
  precise_bn,
  progress,
  resume,
  summaries,
)
from tfbackbones.training import lock as lock_lib
from tfbackbones.training import metrics as metrics_lib
from tfbackbones.training import steps as steps_lib
from tfbackbones.training import workdir as wd

# Precise BN averages the batch statistics of this many training images (pycls: 8192).
PRECISE_BN_IMAGES = 4096


class Hooks:
  """Extension points for tests and tools; every method may be overridden."""

  def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
    pass

  def on_switch(self, trainer: Trainer, best_epoch: int) -> None:
    pass


@dataclasses.dataclass
class EpochRecord:
  epoch: int
  phase: str
  train_loss: float
  train_top1: float
  val: dict
  selection: float
  best: float
  improved: bool
  patience_left: int
  learning_rate: float
  images_per_sec: float
  train_seconds: float
  epoch_seconds: float


class Trainer:
  """Fine-tunes one backbone on one dataset as `config` says, in `config.workdir`."""

  def __init__(self, config: TrainConfig, *, strategy: tf.distribute.Strategy | None = None,
               hooks: Hooks | None = None,
               selection_fn: Callable[[int, dict], float] | None = None,
               log: Callable[[str], None] = print):
    """Args:
      config: the run; validated here.
      strategy: overrides `config.strategy` (tests pass a 2-device MirroredStrategy).
      hooks: callbacks, see `Hooks`.
      selection_fn: (epoch, val_metrics) -> selection value; default val top-1. Tests
        script metric sequences through it.
      log: where progress lines go.
    """
    self.config = config.validate()
    self.hooks = hooks or Hooks()
    self.selection_fn = selection_fn or (lambda epoch, val: val["top1"])
    self.log = log
    self._strategy_override = strategy
    self.workdir = config.workdir

  # ------------------------------------------------------------------ setup
  def _check_workdir(self) -> RunResult | None:
    """The finished result if there is one; refuses a workdir of another experiment.

    A damaged result.json or config.json is moved aside (`*.damaged`) with a warning:
    the run resumes from its state, so a finished run is evaluated again, not retrained.
    """
    tf.io.gfile.makedirs(self.workdir)
    result_path = wd.path(self.workdir, wd.RESULT)
    try:
      result = results.read(result_path)
    except results.ResultError as e:
      self.log(f"warning: {str(e).split(';')[0]}; moved it to {wd.move_aside(result_path)} "
               "and resuming the run to write it again")
      result = None
    done = result if result is not None and result.status != results.FAILED else None
    saved = self._saved_config()
    if done is not None and saved is None:
      saved = done.config
    if saved is not None:
      try:
        diff = self.config.experiment_diff(TrainConfig.from_dict(saved))
      except (ConfigError, TypeError) as e:
        raise wd.WorkdirError(f"{self.workdir}/{wd.CONFIG} does not hold a TrainConfig "
                              f"({e}); delete it if the workdir holds this experiment") \
            from None
      if diff:
        changes = ", ".join(f"{k}: now {a!r}, workdir has {b!r}" for k, (a, b) in diff.items())
        raise ConfigError(
            f"{self.workdir} holds a run with a different configuration ({changes}). "
            "Use a new --workdir, or rerun with the workdir's settings to resume it.")
    return done

  def _saved_config(self) -> dict | None:
    """config.json, or if it is damaged the copy in state.json (moved aside, warned)."""
    config_path = wd.path(self.workdir, wd.CONFIG)
    try:
      saved = wd.read_json(config_path)
      if saved is None or isinstance(saved, dict):
        return saved
      problem = f"{config_path}: not a JSON object"
    except wd.DamagedFileError as e:
      problem = str(e).split(";")[0]
    moved = wd.move_aside(config_path)
    points = resume.resume_points(self.workdir)[0]
    saved = next((p.state["config"] for p in points if p.state.get("config")), None)
    self.log(f"warning: {problem}; moved it to {moved} and "
             + ("checking this run against the copy in state.json" if saved else
                "cannot check that the workdir holds this experiment; it will be rewritten"))
    return saved

  def _setup(self):
    cfg = self.config
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    self.strategy = self._strategy_override or distribute.make_strategy(
        cfg.strategy, cfg.tpu, cfg.cpu_replicas)
    self.is_chief = distribute.is_chief(self.strategy)
    self.precision = distribute.resolve_precision(cfg.precision, self.strategy)
    distribute.set_precision(self.precision)
    self.spec = backbones_lib.get(cfg.backbone)
    self.dataset_spec = catalog.get(cfg.dataset)
    size = imagesize.resolve(cfg.image_size, self.dataset_spec.image_size)
    fixed = imagesize.require(self.spec.default_size)
    if self.spec.fixed_size and size != fixed:
      # Some SavedModels are traced for one resolution only (hub ViT/Swin: 224).
      logging.warning("%s accepts only %s inputs; using it instead of %s", cfg.backbone,
                      imagesize.text(fixed), imagesize.text(size))
      size = fixed
    self.global_batch = cfg.batch_size
    replicas = self.strategy.num_replicas_in_sync
    if self.global_batch % replicas:
      raise ConfigError(f"--batch_size={self.global_batch} is not divisible by the "
                        f"{replicas} replicas; use a multiple of {replicas}.")
    # The backbone first: missing weights must fail in seconds, before any dataset is
    # downloaded or prepared.
    with self.strategy.scope():
      backbone = self.spec.build(size, cfg.weights)
    self.data = pipeline.prepare(
        self.dataset_spec, data_dir=cfg.data_dir, image_size=size,
        val_fraction=cfg.val_fraction, train_fraction=cfg.train_fraction,
        split_seed=cfg.split_seed, select_on=cfg.select_on, cache=cfg.cache,
        download=cfg.download, manual_dir=cfg.manual_dir, augment_at=cfg.augment_at,
        min_images_per_class=cfg.min_images_per_class)
    # TFDS preparation draws from Python's global `random` (measured, docs/results.md),
    # which Keras initialisers seed from, and only the run that prepares does: seed
    # again so the head's initialisation, and every number after it, is the same in
    # every run of this seed, whether or not this process prepared the data (issue 19,
    # case 5).
    keras.utils.set_random_seed(cfg.seed)
    self.image_size = self.data.image_size
    self.global_batch = batching.global_batch(self.data.num_train, cfg.batch_size, replicas,
                                              cfg.min_steps_per_epoch)
    self.steps_per_epoch = pipeline.steps_per_epoch(self.data.num_train, self.global_batch)
    self.data.facts.update(steps_per_epoch=self.steps_per_epoch,
                           global_batch_requested=cfg.batch_size)
    self.few_steps = batching.few_steps_warning(self.data.num_train, self.global_batch,
                                                self.steps_per_epoch,
                                                user_batch=cfg.min_steps_per_epoch == 0)
    if self.few_steps:
      self.data.facts["warning"] = self.few_steps
    self.use_precise_bn = (cfg.precise_bn if cfg.precise_bn is not None
                           else self.steps_per_epoch < batching.FEW_STEPS)
    self.data.facts["precise_bn"] = self.use_precise_bn
    with self.strategy.scope():
      self.model = model_lib.build_classifier(
          backbone, self.data.num_classes, self.image_size, dropout=cfg.dropout,
          freeze_backbone=cfg.freeze_backbone, bn_momentum=cfg.bn_momentum)
    if cfg.fused_kernels:
      fused_bn.fuse_batchnorm(self.model)
      if self._on_cpu():  # the C++ kernels (activations, depthwise gradient) are CPU-only
        kernels.fuse(self.model, on_cpu=True)
    self.loss_fn = steps_lib.cross_entropy(self.data.num_classes, cfg.label_smoothing)
    self.preprocess = lambda images: backbones_lib.preprocess_images(
        images, self.spec.preprocessing)
    augment = self.dataset_spec.augment if cfg.augment == "auto" else cfg.augment
    self.augment = augment

  def _on_cpu(self) -> bool:
    """True when every replica runs on a CPU (the default strategy without accelerators)."""
    try:
      devices = self.strategy.extended.worker_devices
    except RuntimeError:  # the default strategy: wherever TF places ops
      return kernels.cpu_only()
    return all("CPU" in d.upper() for d in devices)

  def _make_optimizer(self, phase: str):
    cfg = self.config
    with self.strategy.scope():
      if phase == "adamw":
        opt = optimizers.adamw(cfg.fused_kernels, learning_rate=cfg.adamw_lr,
                               weight_decay=cfg.adamw_weight_decay, beta_1=0.9,
                               beta_2=0.999, epsilon=1e-8)
      else:
        opt = optimizers.sgd(cfg.fused_kernels, learning_rate=cfg.sgd_lr,
                             momentum=cfg.sgd_momentum)
      if self.precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
      # Build before tracing: with >= 2 replicas, slot variables created inside the traced
      # step fail with "You must feed a value for placeholder tensor" (docs/stack.md).
      opt.build(self.model.trainable_variables)
    return opt

  def _set_phase(self, phase: str):
    self.optimizer = self._make_optimizer(phase)
    # Saved and pruned by tfbackbones/training/resume.py, in an order a kill cannot break.
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
    self.train_fn = self._make_train_fn(self.optimizer)

  def _ckpt_dir(self) -> str:
    if self.is_chief:
      return wd.path(self.workdir, wd.CHECKPOINTS)
    # Non-chief workers must write too (collective ops), but to a private place.
    return wd.path(self._scratch_dir(), wd.CHECKPOINTS)

  def _scratch_dir(self) -> str:
    """Where a non-chief worker writes what collective saving makes it write."""
    return wd.path(self.workdir, "tmp_" + distribute.worker_tag(self.strategy))

  def _remove_scratch(self) -> None:
    """Deletes a non-chief worker's scratch dir when its run ends, however it ends.

    Its copies are never read again (a resumed run reads the chief's files), and leaving
    them would put a second, disagreeing set of checkpoints in the workdir.
    """
    if getattr(self, "is_chief", True):
      return
    try:
      if tf.io.gfile.exists(self._scratch_dir()):
        tf.io.gfile.rmtree(self._scratch_dir())
    except tf.errors.OpError:
      logging.exception("could not remove %s", self._scratch_dir())

  # ------------------------------------------------------------------ steps
  def _make_train_fn(self, optimizer):
    # A loss-scaled optimizer skips overflow steps itself; anywhere else a non-finite
    # loss is divergence and the call stops right after it (health.py).
    return steps_lib.make_train_fn(self.model, optimizer, self.strategy, self.global_batch,
                                   self.loss_fn, stop_on_nonfinite=not self._loss_scaled)

  @property
  def _loss_scaled(self) -> bool:
    return self.precision == "mixed_float16"

  def _distributed_eval(self, dataset, count):
    fn, steps = pipeline.eval_dataset_fn(dataset, count, global_batch=self.global_batch,
                                         image_size=self.image_size,
                                         preprocess=self.preprocess)
    return self.strategy.distribute_datasets_from_function(fn), steps

  def evaluate(self, dist_dataset, steps) -> dict:
    """Metrics of one pass over a split. Also keeps its images per true class in
    `last_class_counts` (the confusion matrix's row sums): the test split's majority-class
    rate comes from there, for every dataset, without reading its labels again."""
    loss_sum, top5, confusion = self.eval_fn(iter(dist_dataset), tf.constant(steps))
    confusion = confusion.numpy()
    self.last_class_counts = [int(c) for c in confusion.sum(axis=1)]
    return metrics_lib.from_sums(float(loss_sum.numpy()), float(top5.numpy()), confusion)

  # ------------------------------------------------------------------ weights
  def _save_best(self, epoch: int) -> str:
    prefix = wd.path(self.workdir if self.is_chief else self._scratch_dir(),
                     wd.BEST, f"weights-{epoch + 1}")  # 1-based, as printed
    return tf.train.Checkpoint(model=self.model).write(prefix)

  def _restore_best(self, prefix: str) -> None:
    tf.train.Checkpoint(model=self.model).read(prefix).assert_existing_objects_matched()

  # ------------------------------------------------------------------ run
  def run(self) -> RunResult:
    """Trains (or resumes) to completion; returns the result (also in result.json).

    Holds the workdir's lock throughout (tfbackbones/training/lock.py): a second live
    run on the same workdir is refused with LockError.
    """
    wd.check_usable(self.workdir)
    if not lock_lib.is_chief_task():
      return self._run_unlocked()
    with lock_lib.WorkdirLock(self.workdir, log=self.log):
      return self._run_unlocked()

  def _run_unlocked(self) -> RunResult:
    done = self._check_workdir()
    if done is not None:
      self.log(f"{self.workdir}: already finished; not training again.")
      self.log(summaries.result_line(done))
      return done
    started = time.time()
    try:
      return self._run()
    except KeyboardInterrupt:
      raise
    except Exception as e:
      lost = distribute.worker_lost(e, getattr(self, "strategy", None), self._saved_epoch(),
                                    self.workdir)
      self._write_failure(lost or e, started)
      if lost is not None:
        raise lost from e
      raise
    finally:
      keras.mixed_precision.set_global_policy("float32")
      self._remove_scratch()

  def _saved_epoch(self) -> int:
    """Epochs completed in the workdir's state.json: where a rerun resumes (0 = start)."""
    try:
      state = wd.read_json(wd.path(self.workdir, wd.STATE))
    except (tf.errors.OpError, ValueError):
      return 0
    return state["schedule"]["epoch"] if state else 0

  def _write_failure(self, error: Exception, started: float) -> None:
    if not getattr(self, "is_chief", distribute.tf_config_is_chief()):
      return  # only the chief writes the workdir, failures included
    try:
      if getattr(self, "writer", None) is not None:  # the HParams session ends failed
        self.writer.end(success=False)
      tf.io.gfile.makedirs(self.workdir)
      spec = getattr(self, "dataset_spec", None)
      results.write(wd.path(self.workdir, wd.RESULT), RunResult.failure(
          self.config, error, seconds=time.time() - started,
          domain=spec.domain if spec else None))
    except Exception:
      logging.exception("could not write the failure to result.json")

  def _run(self) -> RunResult:
    self._setup()
    if self.is_chief:
      wd.write_json(wd.path(self.workdir, wd.CONFIG), self.config.to_dict())
    resumed = self._start_or_resume()
    self.eval_fn = steps_lib.make_eval_fn(self.model, self.strategy, self.data.num_classes,
                                          self.loss_fn)
    val_ds, val_steps = self._distributed_eval(self.data.val, self.data.ids.counts["val"])
    self.writer = summaries.RunWriter(self.workdir, enabled=self.is_chief)
    if not resumed:
      self.writer.hparams(summaries.hparams_of(self))
    self.log(summaries.start_line(self))
    if self.few_steps:
      self.log(self.few_steps)
    self._run_started = time.time()
    self.weights_finite = health.make_weights_check(self.model.trainable_variables)
    while not self.schedule.done:
      epoch = self.schedule.epoch
      t0 = time.time()
      loss_sum, hits, train_seconds, diverged = self._train_epoch(epoch)
      if diverged:
        self.log(f"epoch {epoch + 1:3d} DIVERGED: {diverged}")
        return self._finish(diverged=diverged)
      if self.use_precise_bn:
        self._reestimate_batchnorm(epoch)
      val = self.evaluate(val_ds, val_steps)
      self._end_epoch(epoch, t0, loss_sum, hits, train_seconds, val)
    return self._finish()

  def _start_or_resume(self) -> bool:
    """Restores model, optimizer, schedule and history from the workdir if a run is there."""
    cfg = self.config
    point = resume.restore(self, self.log)  # falls back past damage; None: start afresh
    if point is None:
      self.schedule = dualopt.DualOptState(cfg.adamw_patience, cfg.sgd_patience,
                                           cfg.max_epochs)
      self._set_phase("adamw")
      self.history, self.best_path, self.elapsed_before = [], None, 0.0
      return False
    sched = self.schedule = point.schedule
    self.history, self.best_path = point.state["history"], point.best
    self.elapsed_before = float(point.state["elapsed"])
    self.log(f"resuming {self.workdir} after epoch {sched.epoch} "
             f"(phase {sched.phase}, best {sched.best:.4f} at epoch {sched.best_epoch + 1}, "
             f"patience left {sched.patience_left})")
    return True

  def _train_epoch(self, epoch: int):
    """Runs one epoch's steps, `steps_per_execution` per call.

    Returns (loss sum, correct count, seconds, why the run diverged or None). The health
    check runs once per call (not per step): one reduction over the weights per host trip.
    """
    cfg = self.config
    t0 = time.time()
    train_iter = iter(self.strategy.distribute_datasets_from_function(
        pipeline.train_dataset_fn(
            self.data, global_batch=self.global_batch, steps_per_epoch=self.steps_per_epoch,
            epoch=epoch, seed=cfg.seed, preprocess=self.preprocess, augment=self.augment)))
    loss_sum = hits = nonfinite = 0.0
    remaining = self.steps_per_epoch
    bar = progress.EpochBar(epoch, self.steps_per_epoch, self.train_fn)  # terminals only
    while remaining > 0:
      n = min(remaining, cfg.steps_per_execution)
      loss, correct, bad = self.train_fn(train_iter, tf.constant(n))
      loss_sum += float(loss.numpy())
      hits += float(correct.numpy())
      nonfinite += float(bad.numpy())
      remaining -= n
      bar.update(self.steps_per_epoch - remaining)
      diverged = health.divergence_reason(
          epoch=epoch, phase=self.schedule.phase,
          learning_rate=summaries.learning_rate(self.optimizer),
          steps_done=self.steps_per_epoch - remaining, nonfinite_steps=int(nonfinite),
          weights_finite=bool(self.weights_finite().numpy()), loss_scaled=self._loss_scaled)
      if diverged:
        bar.close()
        return loss_sum, hits, time.time() - t0, diverged
    bar.close()
    return loss_sum, hits, time.time() - t0, None

  def _reestimate_batchnorm(self, epoch: int) -> None:
    """Precise BN (precise_bn.py) on up to PRECISE_BN_IMAGES training images.

    The batches are a seeded permutation of their own (seed + 1), so they are the same
    on resume and draw nothing from the training stream.
    """
    if not hasattr(self, "_precise_bn"):
      self._precise_bn = precise_bn.PreciseBN(self.model, self.strategy)
    batches = min(self.steps_per_epoch, max(1, PRECISE_BN_IMAGES // self.global_batch))
    iterator = iter(self.strategy.distribute_datasets_from_function(
        pipeline.train_dataset_fn(
            self.data, global_batch=self.global_batch, steps_per_epoch=batches,
            epoch=epoch, seed=self.config.seed + 1, preprocess=self.preprocess,
            augment=self.augment)))
    self._precise_bn(iterator, batches)

  def _end_epoch(self, epoch, t0, loss_sum, hits, train_seconds, val) -> None:
    """Selection, DualOpt decision, best weights, summaries, checkpoint, state, log."""
    sched = self.schedule
    selection = float(self.selection_fn(epoch, val))
    phase = sched.phase
    decision = sched.update(selection)
    images = self.steps_per_epoch * self.global_batch
    record = dataclasses.asdict(EpochRecord(
        epoch=epoch, phase=phase, train_loss=loss_sum / images, train_top1=hits / images,
        val=val, selection=selection, best=sched.best, improved=decision.improved,
        patience_left=sched.patience_left if not decision.switch_to_sgd else 0,
        learning_rate=summaries.learning_rate(self.optimizer),
        images_per_sec=images / train_seconds, train_seconds=train_seconds,
        epoch_seconds=time.time() - t0))
    self.history.append(record)
    if decision.improved:
      # The old best stays on disk until state.json points at the new one.
      self.best_path = self._save_best(epoch)
    if decision.switch_to_sgd:
      self._restore_best(self.best_path)
      self._set_phase("sgd")
      self.hooks.on_switch(self, sched.best_epoch)
    self.writer.epoch(record, self.steps_per_epoch * (epoch + 1))
    if self._checkpoint_due(epoch, decision):
      # Checkpoint, its state, state.json, then deletions: safe to kill after any step.
      prefix = resume.checkpoint_prefix(self._ckpt_dir(), self.schedule.phase, epoch + 1)
      resume.save_epoch(self.workdir, self.checkpoint, prefix, resume.state_of(
          self.workdir, schedule=sched, checkpoint=prefix, best_path=self.best_path,
          history=self.history, elapsed=self._elapsed(), config=self.config.to_dict()),
          keep=self.config.keep_checkpoints, is_chief=self.is_chief)
    self.log(summaries.progress_line(record, sched, self.history, self.config.max_epochs,
                                     decision))
    self.hooks.on_epoch_end(self, record)

  def _checkpoint_due(self, epoch: int, decision) -> bool:
    """Whether the epoch ending now writes the resumable checkpoint.

    A checkpoint holds the model and the optimizer's moments (about 3x the weights). With
    epochs of one or two steps (the quickstart: 8 images, batch 8) writing one every epoch
    was most of the disk traffic -- about 10 GB for its six 96 px EfficientNet-Lite0 runs.
    So a run may ask for checkpoints at least `checkpoint_min_steps` training steps apart.
    The rule counts epochs, not seconds, so every worker of a multi-worker run and every
    resume of a run agrees on which epochs are saved; a kill redoes the epochs since the
    last one, and redone epochs give the same numbers (their batches and seeds are fixed
    by the epoch index). The epoch a run stops at (early stop or max_epochs: the schedule
    decides both) is always saved, so a finished run's state.json holds its whole
    history, as before.
    """
    every = max(1, math.ceil(self.config.checkpoint_min_steps / self.steps_per_epoch))
    return decision.stop or (epoch + 1) % every == 0

  def _elapsed(self) -> float:
    return self.elapsed_before + time.time() - self._run_started

  def _finish(self, diverged: str | None = None) -> RunResult:
    """Best weights back, the one test evaluation, the health verdict, result.json.

    A diverged run still reports the test metrics of its best weights, if an epoch ended
    before it diverged (they are facts about those weights), but it is never a result.
    """
    sched = self.schedule
    val = test = test_counts = None
    if self.best_path is not None:
      self._restore_best(self.best_path)
      test_ds, test_steps = self._distributed_eval(self.data.test,
                                                   self.data.ids.counts["test"])
      test = self.evaluate(test_ds, test_steps)
      test_counts = self.last_class_counts
      val = self.history[sched.best_epoch]["val"]
      artifacts.save_usable_model(self)  # model.keras + labels.txt of the best weights
    result = summaries.build_result(self, sched, self.history, val, test,
                                    wall_time=self._elapsed(), peak_rss_mb=_peak_rss_mb())
    if diverged:
      kept = (f"; the test split was evaluated once on the best weights (epoch "
              f"{sched.best_epoch + 1})" if test is not None else
              "; no epoch finished before it, so there are no metrics")
      result.status, result.reason = results.DIVERGED, diverged + kept
    elif val is not None:
      counts = self.data.ids.class_counts.get("val") or []
      reason = health.degenerate_reason(
          val["top1"], counts, "test (selection)" if self.config.selected_on_test
          else "validation")
      if reason:
        result.status, result.reason = results.DEGENERATE, reason
    self._judge_significance(result, test, test_counts)
    if result.val is not None and result.test is not None:
      self.writer.final(result, self.steps_per_epoch * sched.epoch)
    self.writer.close()
    if self.is_chief:
      results.write(wd.path(self.workdir, wd.RESULT), result)
    self.log(summaries.result_line(result))
    return result

  def _judge_significance(self, result: RunResult, test: dict | None, counts) -> None:
    """Records the test split's significance; a would-be result that fails it is
    degenerate (health.py, tfbackbones/significance.py)."""
    test_result = significance_lib.of_test(
        test, counts, selected_on_test=self.config.selected_on_test,
        epochs_evaluated=len(self.history))
    if test_result is None:
      return
    result.significance = test_result.to_dict()
    if result.status == results.FINISHED and not test_result.significant:
      result.status, result.reason = results.DEGENERATE, test_result.reason()


def _peak_rss_mb() -> float:
  # ru_maxrss is in KiB on Linux.
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
