"""The recommender's validation harness: metrics by hand, bootstrap, a tiny synthetic study."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import register_tiny
from test_recommend import write_folder

from tfbackbones.recommend import validation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_metrics_by_hand():
  truth = {"a": 90.0, "b": 80.0, "c": 70.0}
  # Predicted order b > c > a: pairs (a,b), (a,c) discordant, (b,c) concordant.
  m = validation.metrics(truth, {"a": 1.0, "b": 3.0, "c": 2.0})
  assert m["tau"] == pytest.approx(-1 / 3)
  assert m["pick"] == "b" and m["best"] == "a" and m["regret"] == 10.0 and m["hit3"] == 1.0
  truth["d"] = 60.0
  m = validation.metrics(truth, {"a": 0.0, "b": 3.0, "c": 2.0, "d": 1.0})
  assert m["hit3"] == 0.0 and m["regret"] == 10.0
  perfect = validation.metrics(truth, truth)
  assert perfect["tau"] == 1.0 and perfect["weighted_tau"] == pytest.approx(1.0)
  assert perfect["regret"] == 0.0 and perfect["hit3"] == 1.0


def test_bootstrap_intervals_follow_seed_noise():
  predicted = {"a": 2.0, "b": 1.0}
  one_seed = validation.bootstrap({"a": [90.0], "b": [80.0]}, predicted, samples=50)
  assert one_seed["regret"] == (0.0, 0.0) and one_seed["tau"] == (1.0, 1.0)
  # b's seeds straddle a's: some resamples make b the best, so regret can be > 0.
  noisy = validation.bootstrap({"a": [90.0, 90.0], "b": [70.0, 95.0]}, predicted,
                               samples=400)
  assert noisy["regret"][0] == 0.0 and noisy["regret"][1] == pytest.approx(5.0)
  assert noisy["tau"][0] == -1.0 and noisy["tau"][1] == 1.0


def _write_run(study, name, result):
  os.makedirs(os.path.join(study, name))
  with open(os.path.join(study, name, "result.json"), "w") as f:
    json.dump(result, f)


def _synthetic_study(tmp_path):
  """Finished runs of two candidates x two seeds on one folder, with made-up top-1s."""
  folder = write_folder(str(tmp_path / "photos"))
  study = str(tmp_path / "study")
  tops = {("mobilenet_v3_small", 0): 0.9, ("mobilenet_v3_small", 1): 0.8,
          (register_tiny(), 0): 0.6, (register_tiny(), 1): 0.7}
  for (backbone, seed), top1 in tops.items():
    config = {"backbone": backbone, "dataset": f"folder:{folder}", "weights": "none",
              "seed": seed, "image_size": 32, "data_dir": str(tmp_path / "tfds"),
              "val_fraction": 0.1, "split_seed": 42, "train_fraction": 1.0}
    _write_run(study, f"{backbone}/s{seed}", {
        "status": "finished", "backbone": backbone, "dataset": config["dataset"],
        "seed": seed, "train_fraction": 1.0, "image_size": 32, "config": config,
        "val": {"top1": top1, "count": 5}, "test": {"top1": top1, "count": 10}})
  # A failed run and a 10%-data run are not ground truth.
  _write_run(study, "failed", {"status": "failed", "error": "boom", "config": {
      "backbone": "resnet50", "dataset": f"folder:{folder}"}})
  return folder, study


def test_ground_truth_groups_by_training_fraction_and_names_weights(tmp_path):
  """Each training fraction is its own ground truth (the recommender then samples from
  that fraction); a pretrained run and a random-init run are two candidates."""
  study = str(tmp_path / "study")
  for fraction, weights, seed, top1 in [(1.0, "none", 0, 0.8), (0.25, "none", 0, 0.6),
                                        (0.25, "imagenet", 0, 0.9),
                                        (0.25, "imagenet", 1, 0.7)]:
    config = {"backbone": "mobilenet_v3_small", "dataset": "sklearn_digits",
              "weights": weights, "seed": seed, "train_fraction": fraction}
    _write_run(study, f"{fraction}/{weights}/s{seed}", {
        "status": "finished", "backbone": "mobilenet_v3_small", "dataset": "sklearn_digits",
        "seed": seed, "train_fraction": fraction, "image_size": 32, "config": config,
        "val": {"top1": top1, "count": 5}, "test": {"top1": top1, "count": 10}})
  groups = {g.name: g for g in validation.ground_truth(study)}
  assert sorted(groups) == ["sklearn_digits", "sklearn_digits (0.25 of train)"]
  quarter = groups["sklearn_digits (0.25 of train)"]
  assert quarter.train_fraction == 0.25
  assert quarter.runs == {"mobilenet_v3_small@none": [pytest.approx(60.0)],
                          "mobilenet_v3_small@imagenet": [pytest.approx(90.0),
                                                          pytest.approx(70.0)]}
  assert groups["sklearn_digits"].runs == {"mobilenet_v3_small@none": [pytest.approx(80.0)]}


@pytest.mark.heavy
def test_validate_on_a_synthetic_study(tmp_path):
  _, study = _synthetic_study(tmp_path)
  # The folder is prepared by the first recommend run (validation never downloads).
  from tfbackbones.data import catalog, pipeline
  spec = catalog.get(json.load(open(os.path.join(
      study, "mobilenet_v3_small", "s0", "result.json")))["dataset"])
  pipeline.get_builder(spec, str(tmp_path / "tfds"), download=True)
  config = validation.ValidateConfig(study_workdir=study, max_images=40, batch_size=16,
                                     bootstrap=100)
  lines = []
  result = validation.validate(config, progress=lines.append)
  [row] = result["datasets"]
  assert row["truth"] == {"mobilenet_v3_small@none": pytest.approx(85.0),
                          "test_tiny_cnn@none": pytest.approx(65.0)}
  assert row["seeds"] == {"mobilenet_v3_small@none": 2, "test_tiny_cnn@none": 2}
  for key in validation.SCORE_KEYS:
    m = row["scores"][key]
    assert m["best"] == "mobilenet_v3_small@none"
    assert m["regret"] == pytest.approx(row["truth"]["mobilenet_v3_small@none"]
                                        - row["truth"][m["pick"]])
    if len(set(row["predicted"][key].values())) == 1:  # a tie ranks nothing
      assert np.isnan(m["tau"])
    else:
      assert m["tau"] in (-1.0, 1.0)
    low, high = row["intervals"][key]["regret"]
    assert low <= m["regret"] <= high
  assert result["summary"]["all"]["combined"]["datasets"] == 1
  text = validation.markdown(result)
  assert "| combined |" in text and "mobilenet_v3_small@none" in text

  # The study's report shows both rankings side by side (recommend.json in <study>/recommend).
  from tfbackbones import report
  paths = report.build(study, str(tmp_path / "report"), log=lambda _: None)
  page = open(paths["report.html"]).read()
  assert "Recommender vs fine-tuning" in page
  section = page[page.index("Recommender vs fine-tuning"):]
  # mobilenet: mean 85.0 over 2 seeds, fine-tuned rank 1.
  assert "<td>mobilenet_v3_small@none</td>" in section and "<td>85.00</td>" in section


def test_cli_empty_study_is_a_clear_error(tmp_path):
  os.makedirs(tmp_path / "empty")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.validate_recommend", f"--study={tmp_path}/empty",
       f"--workdir={tmp_path}/val"], cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "no finished full-data runs" in proc.stderr and "Traceback" not in proc.stderr


def test_summary_counts_picks_within_two_points():
  rows = [{"domain": "x", "scores": {"combined": {"tau": 1.0, "weighted_tau": 1.0,
                                                  "regret": r, "hit3": 1.0}}}
          for r in (0.0, 1.5, 3.0)]
  s = validation.summarise(rows)
  assert s["all"]["combined"]["within_2_points"] == 2
  assert s["x"]["combined"]["regret"] == pytest.approx(1.5)
  assert np.isnan(s["all"]["logme"]["tau"])
