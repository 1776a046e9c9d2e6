"""One `recommend` run: sample -> features per candidate (cached) -> scores -> ranking."""

from __future__ import annotations

import dataclasses
import shlex
import time
from collections.abc import Callable

import numpy as np

from tfbackbones import backbones, imagesize
from tfbackbones.backbones import weights as weights_lib
from tfbackbones.data import checks
from tfbackbones.recommend import candidates as candidates_lib
from tfbackbones.recommend import features as features_lib
from tfbackbones.recommend import rank as rank_lib
from tfbackbones.recommend import sample as sample_lib
from tfbackbones.recommend import scores as scores_lib
from tfbackbones.recommend.config import RecommendConfig

# A training step costs about 3 forward passes (forward + backward for activations and
# weights); used only for the fine-tune time estimate, which says so.
TRAIN_OVER_FORWARD = 3.0


@dataclasses.dataclass
class Recommendation:
  """Everything a run found; `outputs.py` writes it as JSON / CSV / text.

  Attributes:
    rows: one dict per ranked candidate, best (lowest combined rank) first.
    skipped: [{"candidate", "reason"}] for candidates that could not be ranked.
    agreement: Kendall tau between each pair of scores over the ranked candidates.
    commands: `tfbackbones.train` commands fine-tuning the top_k candidates.
  """
  dataset: str
  domain: str
  image_size: object
  num_classes: int
  num_train_sample: int
  num_val_sample: int
  num_train: int
  rows: list
  skipped: list
  agreement: dict
  commands: list
  scores_used: list
  extracted: int
  seconds: float
  config: dict
  unreadable: list = dataclasses.field(default_factory=list)

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def _score(features: features_lib.Features, sample, config: RecommendConfig) -> dict:
  y_train = sample.label_array(sample.train_ids)
  y_val = sample.label_array(sample.val_ids)
  both_x = np.concatenate([features.train, features.val])
  both_y = np.concatenate([y_train, y_val])
  probe = scores_lib.linear_probe(features.train, y_train, features.val, y_val)
  return {"logme": scores_lib.logme(both_x, both_y),
          "knn": scores_lib.knn_loo_accuracy(both_x, both_y, k=config.knn_k),
          "probe": probe.accuracy, "probe_c": probe.c}


def finetune_command(candidate, config: RecommendConfig, image_size) -> str:
  """The `tfbackbones.train` command that fine-tunes `candidate` on the same data."""
  parts = ["python", "-m", "tfbackbones.train", f"--backbone={candidate.name}",
           f"--weights={candidate.weights}", f"--dataset={config.dataset}",
           f"--image_size={imagesize.canonical(image_size)}",
           f"--val_fraction={config.val_fraction}", f"--split_seed={config.split_seed}",
           f"--train_fraction={config.train_fraction}",
           f"--workdir={config.workdir}/finetune/{candidate.slug}"]
  if config.data_dir:
    parts.append(f"--data_dir={config.data_dir}")
  return " ".join(shlex.quote(p) for p in parts)


_READ_MODES = {
    "fast": "; fast read (Pillow, pixels within about a grey level of fine-tuning's; "
            "--nofast_read for the exact ones)",
    "exact": "; exact read (TensorFlow, fine-tuning's pixels)",
    "tfds": "",  # a prepared dataset: fine-tuning's own pixels, nothing to say
}


def _emptied_classes(sample: sample_lib.Sample) -> str:
  """The unreadable-files line's warning about classes left without a readable train or
  val image in the sample ("" if none): fine-tuning refuses such a class, and its scores
  here are over the other classes only."""
  def count(ids):
    return np.bincount(sample.label_array(ids), minlength=sample.num_classes)
  emptied = [sample.class_names[i]
             for i in checks.starved_classes(count(sample.train_ids), count(sample.val_ids))]
  if not emptied:
    return ""
  return (f". Class(es) {', '.join(repr(n) for n in emptied)} have no readable train or "
          "val image left in the sample: the scores are over the other classes, and fine-tuning "
          "will refuse them (fix or remove the files, or pass --min_images_per_class=N to "
          "tfbackbones.train)")


def _first_line(error: Exception) -> str:
  return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def run(config: RecommendConfig, progress: Callable[[str], None] = print,
        sample: sample_lib.Sample | None = None) -> Recommendation:
  """Ranks the candidates of `config` on its dataset.

  `sample` is for callers that drew (and maybe decoded) it already with `sample.draw`
  for this config (the benchmark times the phases apart); None draws it here.

  Raises:
    ConfigError, UnknownBackboneError, UnknownDatasetError, DataNotAvailableError: bad
      input; the message says what to fix.
  """
  started = time.perf_counter()
  config.validate()
  cands = candidates_lib.parse(config.backbones, config.weights)
  progress(f"dataset {config.dataset}: drawing a stratified sample of up to "
           f"{config.max_images} images from train + val")
  sample = sample or sample_lib.draw(config)
  progress(f"sample: {len(sample.train_ids)} train + {len(sample.val_ids)} val images, "
           f"{sample.num_classes} classes, {imagesize.text(sample.image_size)} px; "
           f"{len(cands)} candidate{'s' if len(cands) != 1 else ''}{_READ_MODES[sample.read_mode]}")
  ranked, skipped, extracted, reported_unreadable = [], [], 0, False
  for i, cand in enumerate(cands, 1):
    spec = backbones.get(cand.name)
    path = features_lib.cache_path(config.workdir, cand, spec, sample)
    feats = features_lib.load(path, sample)
    if feats is not None:
      progress(f"[{i}/{len(cands)}] {cand.label}: features cached")
    else:
      progress(f"[{i}/{len(cands)}] {cand.label}: extracting features")
      try:
        feats = features_lib.extract(spec, cand, sample, config.batch_size,
                                     progress=lambda m: progress(f"    {m}"))
      except (backbones.WeightsNotAvailableError, weights_lib.WeightsMismatchError) as e:
        progress(f"[{i}/{len(cands)}] {cand.label}: skipped ({_first_line(e)})")
        skipped.append({"candidate": cand.label, "reason": str(e).strip()})
        continue
      features_lib.save(path, feats)
      extracted += 1
      progress(f"[{i}/{len(cands)}] {cand.label}: {feats.dim}-d features, "
               f"{feats.img_per_sec:.1f} img/s, {feats.seconds:.1f} s")
    if sample.unreadable and not reported_unreadable:
      reported_unreadable = True
      progress(f"skipped {len(sample.unreadable)} unreadable files of the sample (e.g. "
               f"{', '.join(sample.unreadable[:3])}); left out. A prepared copy skips them too, "
               "so fine-tuning's val split may differ by a file per class affected"
               + _emptied_classes(sample))
    ranked.append((cand, spec, feats, _score(feats, sample, config)))

  rows, agreement = [], {}
  if ranked:
    table = {name: [r[3][name] for r in ranked] for name in config.scores}
    mean = rank_lib.mean_rank(table)
    agreement = rank_lib.agreement(table) if len(table) > 1 else {}
    for (cand, spec, feats, sc), m in zip(ranked, mean, strict=True):
      est = (config.finetune_epochs * sample.num_train * TRAIN_OVER_FORWARD
             / feats.img_per_sec / 60.0) if feats.img_per_sec > 0 else float("nan")
      rows.append({
          "candidate": cand.label, "backbone": cand.name, "weights": cand.weights,
          "mean_rank": float(m), **{k: float(v) for k, v in sc.items()},
          "params_m": feats.params / 1e6, "feature_dim": feats.dim,
          "img_per_sec": feats.img_per_sec, "est_finetune_min": float(est),
          "imagenet_top1": spec.imagenet_top1, "cached": feats.cached})
    # Ties on the combined rank: the probe's accuracy, then LogME, decide.
    rows.sort(key=lambda r: (r["mean_rank"], -r["probe"], -r["logme"]))
    for position, row in enumerate(rows, 1):
      row["rank"] = position
  by_label = {c.label: c for c in cands}
  commands = [finetune_command(by_label[r["candidate"]], config, sample.image_size)
              for r in rows[:config.top_k]]
  return Recommendation(
      dataset=config.dataset, domain=sample.domain,
      image_size=imagesize.canonical(sample.image_size), num_classes=sample.num_classes,
      num_train_sample=len(sample.train_ids), num_val_sample=len(sample.val_ids),
      num_train=sample.num_train, rows=rows, skipped=skipped, agreement=agreement,
      commands=commands, scores_used=list(config.scores), extracted=extracted,
      seconds=time.perf_counter() - started, config=dataclasses.asdict(config),
      unreadable=list(sample.unreadable))
