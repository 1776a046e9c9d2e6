"""`recommend` end to end on a tiny folder of generated PNGs: ranking, cache, skips, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import register_tiny

from tfbackbones.recommend import RecommendConfig, outputs, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = "mobilenet_v3_small"


def write_folder(root, classes=3, per_class=16, seed=0):
  """Class folders of 40x48 PNGs: each class a colour plus noise (easy to tell apart)."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
  for c in range(classes):
    os.makedirs(os.path.join(root, f"class{c}"), exist_ok=True)
    for i in range(per_class):
      image = np.clip(np.array(colours[c]) + rng.normal(0, 40, (40, 48, 3)), 0, 255)
      Image.fromarray(image.astype(np.uint8)).save(os.path.join(root, f"class{c}",
                                                                f"{i:02d}.png"))
  return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return write_folder(str(tmp_path_factory.mktemp("photos") / "photos"))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
  """A weights file saved from the 32-px backbone (a 'pretrained' candidate's file)."""
  import keras

  from tfbackbones import backbones
  keras.utils.set_random_seed(7)
  model = backbones.get(TINY_MODEL).build(32, "none")
  path = str(tmp_path_factory.mktemp("weights") / "tiny.weights.h5")
  model.save_weights(path)
  keras.backend.clear_session()
  return path


def _config(folder, workdir, data_dir, backbones, **kw):
  return RecommendConfig(dataset=f"folder:{folder}", backbones=tuple(backbones),
                         workdir=str(workdir), data_dir=str(data_dir), image_size=32,
                         max_images=40, batch_size=16, **kw)


def test_ranks_caches_and_skips(folder, weights_file, tmp_path, monkeypatch):
  monkeypatch.setenv("TFBACKBONES_OFFLINE", "1")
  monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # no cached weights
  lines = []
  config = _config(folder, tmp_path / "rec", tmp_path / "tfds",
                   [f"{TINY_MODEL}@none", f"{TINY_MODEL}@{weights_file}", "resnet50"])
  first = run(config, progress=lines.append)
  assert first.extracted == 2
  assert [s["candidate"] for s in first.skipped] == ["resnet50@imagenet"]
  assert "ImageNet weights" in first.skipped[0]["reason"]
  assert any("resnet50@imagenet: skipped" in line for line in lines)
  assert sorted(r["rank"] for r in first.rows) == [1, 2]
  for row in first.rows:
    assert 0.0 <= row["knn"] <= 1.0 and 0.0 <= row["probe"] <= 1.0
    assert np.isfinite(row["logme"]) and row["img_per_sec"] > 0 and row["params_m"] > 0
  assert first.num_train_sample + first.num_val_sample <= 40
  assert len(first.commands) == 2 and "tfbackbones.train" in first.commands[0]
  assert f"--backbone={TINY_MODEL}" in first.commands[0]

  # A rerun extracts nothing and scores the same features the same way.
  lines.clear()
  second = run(config, progress=lines.append)
  assert second.extracted == 0
  assert all(r["cached"] for r in second.rows)
  assert [(r["candidate"], r["logme"]) for r in second.rows] == [
      (r["candidate"], r["logme"]) for r in first.rows]
  # One new candidate: only it is extracted.
  config.backbones = config.backbones + (f"{register_tiny()}@none",)
  third = run(config, progress=lines.append)
  assert third.extracted == 1 and len(third.rows) == 3

  json_path, csv_path = outputs.write(third, config.workdir)
  saved = json.load(open(json_path))
  assert saved["rows"][0]["rank"] == 1 and len(saved["skipped"]) == 1
  assert open(csv_path).read().splitlines()[0].startswith("rank,candidate,")
  assert "fine-tune the top 3" in outputs.summary(third)


def test_features_are_the_backbone_pooled_output(folder, weights_file, tmp_path):
  """The cached features are exactly the pooled output of a plain Keras forward pass."""
  import keras

  from tfbackbones import backbones
  from tfbackbones.recommend import candidates, features, sample
  config = _config(folder, tmp_path / "rec", tmp_path / "tfds",
                   [f"{TINY_MODEL}@{weights_file}"]).validate()
  drawn = sample.draw(config)
  cand = candidates.parse(config.backbones, config.weights)[0]
  spec = backbones.get(cand.name)
  got = features.extract(spec, cand, drawn, batch_size=8)
  model = spec.build(32, weights_file)
  images = backbones.preprocess_images(drawn.images()["val"], spec.preprocessing)
  expected = np.asarray(model.predict(images, verbose=0)).mean(axis=(1, 2))
  np.testing.assert_allclose(got.val, expected, rtol=1e-4, atol=1e-5)
  keras.backend.clear_session()


def test_damaged_cache_file_is_recomputed(folder, tmp_path):
  config = _config(folder, tmp_path / "rec", tmp_path / "tfds", [f"{TINY_MODEL}@none"])
  run(config, progress=lambda _: None)
  [cached] = os.listdir(tmp_path / "rec" / "features")
  with open(tmp_path / "rec" / "features" / cached, "wb") as f:
    f.write(b"not an npz")
  again = run(config, progress=lambda _: None)
  assert again.extracted == 1 and len(again.rows) == 1


def _cli(*args, tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFBACKBONES_OFFLINE="1")
  return subprocess.run([sys.executable, "-m", "tfbackbones.recommend", *args,
                         f"--data_dir={tmp_path}/tfds", f"--workdir={tmp_path}/rec"],
                        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_cli_bad_folder_is_one_clear_line(tmp_path):
  proc = _cli(f"--dataset=folder:{tmp_path}/nothing_here", f"--backbones={TINY_MODEL}@none",
              tmp_path=tmp_path)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "nothing_here" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_cli_folder_with_one_class_is_a_clear_error(tmp_path):
  folder = write_folder(str(tmp_path / "one"), classes=1, per_class=10)
  proc = _cli(f"--dataset=folder:{folder}", f"--backbones={TINY_MODEL}@none",
              tmp_path=tmp_path)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "one class folder" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_unknown_backbone_suggests_names(folder, tmp_path):
  proc = _cli(f"--dataset=folder:{folder}", "--backbones=mobilenet_v3_smal",
              tmp_path=tmp_path)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Did you mean: mobilenet_v3_small" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_cli_all_candidates_skipped_exits_2(folder, tmp_path):
  env_home = tmp_path / "keras_home"
  proc = subprocess.run(
      [sys.executable, "-m", "tfbackbones.recommend", f"--dataset=folder:{folder}",
       "--backbones=resnet50", "--image_size=32", f"--data_dir={tmp_path}/tfds",
       f"--workdir={tmp_path}/rec"], cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFBACKBONES_OFFLINE="1",
               KERAS_HOME=str(env_home)))
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "skipped resnet50" in proc.stdout
  assert "no candidate could be ranked" in proc.stderr


@pytest.mark.heavy
def test_finetune_top_trains_the_picks_and_reports_predicted_vs_actual(folder, tmp_path):
  from tfbackbones.recommend import finetune
  tiny = register_tiny()
  config = _config(folder, tmp_path / "rec", tmp_path / "tfds",
                   [f"{tiny}@none", f"{TINY_MODEL}@none"], finetune_top=1,
                   finetune_max_epochs=1, finetune_batch_size=8).validate()
  rec = run(config, progress=lambda _: None)
  # Keras's own kernels: compiling the fused CPU kernels would dominate this test.
  result = finetune.finetune_top(rec, config, progress=lambda _: None, fused_kernels=False)
  [row] = result["rows"]
  assert row["candidate"] == rec.rows[0]["candidate"] and row["rec_rank"] == 1
  # A one-epoch tiny run may be degenerate: then it has no test top-1 to compare.
  assert row["status"] == "finished" and 0.0 <= row["test_top1"] <= 100.0 or (
      row["status"] == "degenerate" and row["test_top1"] is None)
  saved = json.load(open(os.path.join(row["workdir"], "result.json")))
  assert saved["config"]["split_seed"] == config.split_seed
  assert saved["config"]["max_epochs"] == 1
  assert "predicted vs fine-tuned" in finetune.summary(result)
  assert os.path.exists(tmp_path / "rec" / finetune.FINETUNE_FILE)
