"""Export a finished run and measure every artifact: `<workdir>/export.json`.

For each format: the artifact is written under `<workdir>/export/`, loaded with its own
runtime (TensorFlow for SavedModel, the LiteRT interpreter, onnxruntime), run on the
run's whole test split (the images training tested on, from the same split ids), and
compared with `model.keras`, the float reference: top-1, its drop in points, the share of
images whose top-1 class agrees, the largest probability difference; for LiteRT, the
tensor dtypes and which ops XNNPACK (LiteRT's CPU delegate) does not run; then latency at
batch 1 (median and p90, 1 thread and all cores, warm-up excluded, a fresh process each:
see `latency.py`) and the size on disk. The Keras model gets the same row, so a report
can put every format of every backbone on one accuracy-vs-latency plot.

Before the exports, the Keras model's agreement with itself is measured on noisy copies of
the same test images (`stability.py`: +-1 grey level, `stability_draws` seeded draws),
export.json's `float_stability`. Each artifact's agreement is judged against it
(`versus_float_stability`), and an export below the 98% target gets one printed note:
within the float model's own noise floor (the model is the limit) or below it (a
real quantization error).

INT8 calibration images are drawn (seeded) from the training side of the run's data, never
from val or test: by default from the whole training pool (`calibration_from="pool"`: the
run's labelled training images plus those `train_fraction` left unlabelled; calibration
needs no labels), or from the labelled training split only (`"train"`). export.json says
which and how many.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
from collections.abc import Callable, Sequence

import numpy as np

from tfbackbones import cores
from tfbackbones.deploy import exporters, latency, runtimes, stability

EXPORT_DIR = "export"
EXPORT_JSON = "export.json"
DEFAULT_FORMATS = exporters.FORMATS
CALIBRATION_FROM = ("pool", "train")


class WorkdirError(ValueError):
  """The workdir is missing, unfinished, or lacks model.keras; the message says the fix."""


@dataclasses.dataclass
class ExportConfig:
  """What `python -m tfbackbones.export` does (its flags, typed)."""
  workdir: str
  formats: Sequence[str] = DEFAULT_FORMATS
  calibration_images: int = 200
  latency_runs: int = 50
  latency_warmup: int = 5
  latency: bool = True
  int8_rounding: str = "gptq"
  calibration_from: str = "pool"
  stability_draws: int = stability.DEFAULT_DRAWS
  stability_seed: int = stability.DEFAULT_SEED

  def validate(self) -> ExportConfig:
    self.formats = exporters.check_formats(list(self.formats))
    exporters.check_installed(self.formats)
    exporters.check_int8_rounding(self.int8_rounding)
    if self.calibration_from not in CALIBRATION_FROM:
      raise WorkdirError(f"--calibration_from={self.calibration_from}: use one of "
                         f"{', '.join(CALIBRATION_FROM)}")
    if self.calibration_images < 1:
      raise WorkdirError(f"--calibration_images={self.calibration_images}: use >= 1")
    if self.latency_runs < 1 or self.latency_warmup < 0:
      raise WorkdirError("--latency_runs must be >= 1 and --latency_warmup >= 0")
    if self.stability_draws < 0:
      raise WorkdirError(f"--stability_draws={self.stability_draws}: use >= 0 (0 skips "
                         "the float model's noise-stability measurement)")
    return self


def check_workdir(workdir: str):
  """The run's RunResult if the workdir holds a finished (ranked) run with model.keras."""
  from tfbackbones import results
  if not os.path.isdir(workdir):
    raise WorkdirError(f"--workdir={workdir}: no such folder; pass the workdir of a "
                       "finished training run")
  try:
    result = results.read(os.path.join(workdir, "result.json"))
  except results.ResultError as e:
    raise WorkdirError(f"{e}; the workdir is damaged: train again in a new workdir") from e
  if result is None or not result.ranked:
    status = "no result.json" if result is None else f"status {result.status!r}"
    raise WorkdirError(f"{workdir} holds no finished run ({status}); finish training first "
                       f"(rerun the same `python -m tfbackbones.train` command to resume)")
  if not os.path.exists(os.path.join(workdir, runtimes.MODEL_FILE)):
    raise WorkdirError(f"{workdir} has no {runtimes.MODEL_FILE}: it was trained by an older "
                       "tfbackbones, or saving failed (see the training log); train again "
                       "in a new workdir")
  return result


def _read_splits(result, count: int, seed: int = 0, calibration_from: str = "pool"):
  """(test images, test labels, calibration images, what the calibration set is).

  Images are uint8 at the run's size. `calibration_from="pool"` reads the data with
  train_fraction 1: the same split rule and seeds give the same val and test images and a
  training side that is the run's whole pool (`pipeline.split_ids_from_index`).
  """
  from tfbackbones.config import TrainConfig
  from tfbackbones.data import catalog, pipeline
  cfg = TrainConfig.from_dict(result.config)
  pool = calibration_from == "pool"
  data = pipeline.prepare(
      catalog.get(cfg.dataset), data_dir=cfg.data_dir, image_size=result.image_size,
      val_fraction=cfg.val_fraction, train_fraction=1.0 if pool else cfg.train_fraction,
      split_seed=cfg.split_seed, select_on=cfg.select_on, cache="none", download=False,
      manual_dir=cfg.manual_dir, augment_at=cfg.augment_at)
  test = list(data.test.batch(256).as_numpy_iterator())
  images = np.concatenate([x for x, _ in test])
  labels = np.concatenate([y for _, y in test])
  train = data.train.shuffle(data.num_train, seed=seed).take(count)
  if data.augment_at == "native":
    train = train.map(lambda x, y: (pipeline.resize_uint8(x, data.image_size), y))
  calibration = np.concatenate([x for x, _ in train.batch(256).as_numpy_iterator()])
  per_class = ((result.data or {}).get("images_per_class") or {}).get("train") or {}
  about = {"from": calibration_from, "images": int(len(calibration)),
           "drawn_from": int(data.num_train), "seed": seed,
           "split": "training pool (labelled training images and those train_fraction "
                    "left unlabelled; never val or test)" if pool else "training split",
           "train_fraction": cfg.train_fraction,
           "labelled_training_images": sum(per_class.values()) if per_class else None}
  return images, labels, calibration, about


def _compare(probs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
  top1 = float(np.mean(probs.argmax(1) == labels))
  ref_top1 = float(np.mean(reference.argmax(1) == labels))
  return {"top1": top1, "top1_drop_points": 100.0 * (ref_top1 - top1),
          "agreement_with_keras": float(np.mean(probs.argmax(1) == reference.argmax(1))),
          "max_abs_prob_diff": float(np.max(np.abs(probs - reference)))}


def _latencies(path: str, cfg: ExportConfig) -> dict:
  settings = {"threads_1": 1, "threads_all": cores.usable()}
  return {key: latency.in_subprocess(path, threads, cfg.latency_runs, cfg.latency_warmup)
          for key, threads in settings.items()}


def _delegation_matters(xnnpack: dict | None) -> bool:
  """Whether the ops XNNPACK left out are worth a printed note.

  A full-integer classifier leaves its final int8 SOFTMAX to TFLite (this LiteRT's
  XNNPACK delegate does not take it; the float SOFTMAX it does): one pass over
  num_classes values after the one partition, which no export setting changes. Anything
  else outside, or a graph split into several partitions, costs real time (MobileNetV3's
  HARD_SWISH: docs/export.md) and is noted.
  export.json lists all of them either way.
  """
  if not xnnpack or not xnnpack.get("not_delegated"):
    return False
  return xnnpack.get("partitions", 0) > 1 or set(xnnpack["not_delegated"]) != {"SOFTMAX"}


def export_workdir(cfg: ExportConfig, log: Callable[[str], None] = print) -> dict:
  """Exports, evaluates and times every format of `cfg.formats`; writes export.json."""
  cfg.validate()
  result = check_workdir(cfg.workdir)
  from tfbackbones import artifacts
  from tfbackbones.training import workdir as wd
  keras_path = os.path.join(cfg.workdir, runtimes.MODEL_FILE)
  out_dir = os.path.join(cfg.workdir, EXPORT_DIR)
  images, labels, calibration, about = _read_splits(
      result, cfg.calibration_images, calibration_from=cfg.calibration_from)
  log(f"{cfg.workdir}: {len(labels)} test images, {len(calibration)} calibration images "
      f"(of {about['drawn_from']}) from the {about['split']}")
  reference_model = runtimes.open_model(keras_path)
  reference = reference_model.predict(images)
  rows = [_row("keras", keras_path, reference_model, reference, reference, labels, cfg)]
  log(_line(rows[-1]))
  float_stability = stability.measure(reference_model.predict, images, reference.argmax(1),
                                      cfg.stability_draws, cfg.stability_seed)
  if float_stability:
    log(f"  {'keras':<12} stability: agrees with itself on {float_stability['mean']:.2%} "
        f"(min {float_stability['min']:.2%}) of the test images under "
        f"+-{stability.NOISE_LEVELS} grey level of noise ({cfg.stability_draws} "
        f"draw{'s' if cfg.stability_draws != 1 else ''})")
  model = artifacts.load_model(keras_path)
  class_names = result.class_names or reference_model.class_names
  os.makedirs(out_dir, exist_ok=True)
  options = exporters.ExportOptions(calibration=calibration, int8_rounding=cfg.int8_rounding)
  artifacts.write_labels(os.path.join(out_dir, runtimes.LABELS_FILE), class_names)
  for fmt in cfg.formats:
    try:
      path, facts = exporters.export(fmt, model, out_dir, options)
      predictor = runtimes.open_model(path)
      row = _row(fmt, path, predictor, predictor.predict(images), reference, labels, cfg)
      row.update(facts)
      row["versus_float_stability"] = stability.judge(row["agreement_with_keras"],
                                                      float_stability)
    except Exception as e:
      # One format failing (a converter limitation) must not lose the others' results;
      # the row says what failed, and no number stands in for it.
      rows.append({"format": fmt, "error": f"{type(e).__name__}: {_first_line(e)}"})
      log(f"  {fmt:<12} FAILED: {rows[-1]['error']}")
      continue
    if fmt.startswith("litert"):
      row["tensor_dtypes"] = exporters.tensor_dtypes(path)
      row["xnnpack"] = exporters.delegation(path)
    rows.append(row)
    log(_line(row))
    if not row.get("input_quantization", {}).get("raw_pixels", True):
      q = row["input_quantization"]
      log(f"  {fmt:<12} note: the calibration images do not span 0..255, so the uint8 input "
          f"is requantized (scale {q['scale']:.4f}, zero point {q['zero_point']}): pixels "
          "outside their range are clipped")
    agreement_note = stability.note(row["agreement_with_keras"], float_stability,
                                    row["versus_float_stability"])
    if agreement_note:
      log(f"  {fmt:<12} note: {agreement_note}")
    if _delegation_matters(row.get("xnnpack")):
      log(f"  {fmt:<12} note: ops outside XNNPACK (TFLite's own kernels, slower): "
          + ", ".join(f"{op} x{n}" for op, n in row["xnnpack"]["not_delegated"].items()))
  report = {
      "workdir": cfg.workdir, "backbone": result.backbone, "dataset": result.dataset,
      # what tells runs of one backbone apart in the report (ImageNet vs random init,
      # the label fraction), as in its other tables
      "weights": result.config.get("weights"),
      "train_fraction": result.config.get("train_fraction"),
      "seed": result.seed, "image_size": result.image_size,
      "class_names": class_names, "test_count": int(len(labels)),
      "calibration_images": int(len(calibration)),
      "calibration": about,
      "training_test_top1": result.test["top1"],
      "float_stability": float_stability,
      "input": "uint8 RGB (1, H, W, 3) at image_size, resized as in training; "
               "output: class probabilities",
      "artifacts": rows,
      "machine": {"cpu_count": os.cpu_count(), "usable_cores": cores.usable(),
                  "processor": platform.processor(),
                  "python": platform.python_version()},
      "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
  wd.write_json(os.path.join(cfg.workdir, EXPORT_JSON), report)
  return report


def _first_line(error: Exception) -> str:
  return (str(error).strip().splitlines() or [""])[0][:300]


def _row(fmt: str, path: str, predictor: runtimes.Predictor, probs: np.ndarray,
         reference: np.ndarray, labels: np.ndarray, cfg: ExportConfig) -> dict:
  row = {"format": fmt, "path": os.path.relpath(path, cfg.workdir),
         "runtime": predictor.runtime, "input_dtype": predictor.input_dtype,
         "size_mb": exporters.size_mb(path), **_compare(probs, reference, labels)}
  if cfg.latency:
    row["latency_batch1"] = _latencies(path, cfg)
  return row


def _line(row: dict) -> str:
  text = (f"  {row['format']:<12} top1 {row['top1']:.4f} (drop {row['top1_drop_points']:+.2f} "
          f"pts, agrees {row['agreement_with_keras']:.2%}) {row['size_mb']:.2f} MB")
  for key, value in row.get("latency_batch1", {}).items():
    text += (f" | {key} " + (f"{value['median_ms']:.2f}/{value['p90_ms']:.2f} ms"
                             if "error" not in value else f"failed: {value['error']}"))
  return text


def export_finished(workdirs: Sequence[str], formats: Sequence[str],
                    log: Callable[[str], None] = print) -> dict:
  """Exports every finished workdir that has no export.json yet; returns {workdir: error}.

  For study runners: one run's failure (no model.keras, data gone) is logged and
  returned, not raised, so the others are still exported.
  """
  failures = {}
  for workdir in workdirs:
    if os.path.exists(os.path.join(workdir, EXPORT_JSON)):
      continue
    try:
      check_workdir(workdir)
    except WorkdirError:
      continue  # unfinished or failed: nothing to export
    try:
      export_workdir(ExportConfig(workdir=workdir, formats=formats), log=log)
    except Exception as e:
      failures[workdir] = f"{type(e).__name__}: {e}"
      log(f"export of {workdir} FAILED: {failures[workdir]}")
  return failures


def read(workdir: str) -> dict | None:
  """export.json of a workdir, or None."""
  from tfbackbones.training import workdir as wd
  return wd.read_json(os.path.join(workdir, EXPORT_JSON))
