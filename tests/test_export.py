"""The usable model of a run (model.keras), its exports, and the predict command.

One tiny run on the bundled digits is trained once per module; its model.keras is then
exported to every format and each artifact is checked against Keras with its own runtime
(those tests are `heavy`: the export of five formats takes about a minute).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import Quiet, tiny_config

from tfbackbones import artifacts, runner
from tfbackbones.backbones import preprocessing
from tfbackbones.data import pipeline
from tfbackbones.deploy import evaluation, exporters, images, latency, runtimes, stability

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("ai_edge_litert")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits_data_dir):
  """A finished tiny run: (workdir, result)."""
  cfg = tiny_config(tmp_path_factory.mktemp("export") / "run", digits_data_dir, max_epochs=2)
  return cfg.workdir, runner.train(cfg, log=Quiet())


@pytest.fixture(scope="module")
def exported(run):
  """export.json of the run, every format, without latency (timed in its own test)."""
  workdir, _ = run
  return evaluation.export_workdir(
      evaluation.ExportConfig(workdir=workdir, calibration_images=64, latency=False),
      log=Quiet())


@pytest.fixture(scope="module")
def test_images(run):
  """(uint8 test images, labels) of the run's test split, as the pipeline reads them."""
  workdir, result = run
  images_, labels, _, _ = evaluation._read_splits(result, 1, 0, "train")
  return images_, labels


def _cli(module, *args, env=None):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=300, env=env)


def test_finished_run_writes_model_and_labels(run):
  workdir, result = run
  assert result.class_names == [str(d) for d in range(10)]
  with open(os.path.join(workdir, artifacts.LABELS_FILE)) as f:
    assert f.read().split() == result.class_names
  model = artifacts.load_model(os.path.join(workdir, artifacts.MODEL_FILE))
  assert model.inputs[0].dtype == "uint8" and tuple(model.input_shape) == (None, 32, 32, 3)
  assert tuple(model.output_shape) == (None, 10)


def test_model_keras_reproduces_the_runs_test_top1(run, test_images):
  """The saved model is the best checkpoint: its test top-1 is the one in result.json."""
  workdir, result = run
  x, labels = test_images
  probs = runtimes.open_model(workdir).predict(x)
  assert len(labels) == result.test["count"]
  assert np.mean(probs.argmax(1) == labels) == pytest.approx(result.test["top1"], abs=1e-9)
  np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_uint8_input_equals_the_training_pipelines_preprocessing(run, test_images):
  """model.keras(uint8) == softmax(classifier(pipeline's preprocess(image)))."""
  workdir, result = run
  model = artifacts.load_model(os.path.join(workdir, artifacts.MODEL_FILE))
  classifier = model.layers[2]
  x = test_images[0][:64]
  kind = result.backbone_info["preprocessing"]
  fed = preprocessing.preprocess_images(tf.cast(tf.constant(x), tf.float32), kind)
  expected = tf.nn.softmax(classifier(fed, training=False)).numpy()
  np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", preprocessing.PREPROCESSING_KINDS)
def test_preprocess_layer_matches_preprocess_images(kind):
  x = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
  ours = np.asarray(artifacts.Preprocess(kind)(x))
  np.testing.assert_allclose(ours, preprocessing.preprocess_images(x, kind).numpy(),
                             rtol=1e-6, atol=1e-5)


def test_numpy_resize_matches_the_pipeline():
  """images.resize (no TF) vs pipeline.resize_uint8: at most 1 grey level, rarely."""
  from skimage import data
  rng = np.random.default_rng(0)
  for image in (data.chelsea(), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
                rng.integers(0, 256, (37, 91, 3), dtype=np.uint8)):
    for size in ((32, 32), (224, 224), (96, 50)):
      ours = images.resize(image, *size).astype(int)
      theirs = pipeline.resize_uint8(tf.constant(image), size).numpy().astype(int)
      diff = np.abs(ours - theirs)
      assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3, (image.shape, size)


def test_image_files_load_as_the_pipeline_decodes_them(tmp_path):
  from PIL import Image
  from skimage import data
  gray = data.camera()[::4, ::4]
  path = str(tmp_path / "gray.png")
  Image.fromarray(gray).save(path)
  ours = images.load([path], 48, 64)[0].astype(int)
  encoded = tf.io.read_file(path)
  theirs = pipeline.resize_uint8(pipeline.decode_image(encoded), (48, 64)).numpy()
  assert ours.shape == (48, 64, 3) and np.abs(ours - theirs).max() <= 1


@pytest.mark.heavy  # exports every format once per module (~1 min)
def test_float_artifacts_agree_with_keras(run, exported, test_images):
  workdir, _ = run
  x = test_images[0]
  reference = runtimes.open_model(workdir).predict(x)
  rows = {r["format"]: r for r in exported["artifacts"]}
  assert set(rows) == {"keras", *exporters.FORMATS}
  for fmt, tolerance in (("saved_model", 1e-5), ("litert", 1e-3), ("litert_fp16", 1e-3),
                         ("onnx", 1e-3)):
    predictor = runtimes.open_model(os.path.join(workdir, rows[fmt]["path"]))
    assert predictor.input_dtype == "uint8" and predictor.class_names == exported["class_names"]
    np.testing.assert_allclose(predictor.predict(x), reference, rtol=0, atol=tolerance,
                               err_msg=fmt)
    # Predictions may differ only on images whose two best Keras probabilities are closer
    # than the tolerance (a near-tie of a barely trained model can flip either way).
    top2 = np.sort(reference, axis=1)[:, -2:]
    near_ties = float(np.mean(top2[:, 1] - top2[:, 0] <= tolerance))
    assert rows[fmt]["agreement_with_keras"] >= 1.0 - near_ties - 1e-9, fmt
    assert abs(rows[fmt]["top1_drop_points"]) <= 100 * near_ties + 1e-9, fmt


@pytest.mark.heavy
def test_int8_litert_is_really_integer(run, exported):
  workdir, _ = run
  row = {r["format"]: r for r in exported["artifacts"]}["litert_int8"]
  dtypes = row["tensor_dtypes"]
  assert "float32" not in dtypes and "float16" not in dtypes and dtypes.get("int8", 0) > 5
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=os.path.join(workdir, row["path"]))
  assert interpreter.get_input_details()[0]["dtype"] == np.uint8
  assert interpreter.get_output_details()[0]["dtype"] == np.uint8
  # The input takes raw pixels: the calibration covered 0..255 with scale 1 (or close).
  scale, _ = interpreter.get_input_details()[0]["quantization"]
  assert 0.9 <= scale <= 1.1
  assert 0.0 <= row["top1"] <= 1.0 and exported["calibration_images"] == 64
  assert row["input_quantization"]["dtype"] == "uint8"
  # Weights were rounded with the calibration images (deploy/rounding.py), and export.json
  # says from where those images came.
  assert row["weight_rounding"]["method"] == "gptq" and row["weight_rounding"]["layers"] > 0
  assert exported["calibration"]["from"] == "pool" and exported["calibration"]["images"] == 64


def test_calibration_pool_is_the_training_side_without_val_or_test(run):
  """pool = the labelled training images plus those train_fraction left out; no val/test."""
  _, result = run
  assert result.config["train_fraction"] == 0.5
  x_test, _, train, about_train = evaluation._read_splits(result, 10_000, 0, "train")
  _, _, pool, about_pool = evaluation._read_splits(result, 10_000, 0, "pool")
  labelled = sum(result.data["images_per_class"]["train"].values())
  assert about_train["drawn_from"] == len(train) == labelled
  assert about_pool["drawn_from"] == len(pool) > 1.8 * len(train)
  assert about_pool["labelled_training_images"] == len(train)
  pool_set = {image.tobytes() for image in pool}
  assert all(image.tobytes() in pool_set for image in train)
  from tfbackbones.config import TrainConfig
  from tfbackbones.data import catalog, pipeline
  cfg = TrainConfig.from_dict(result.config)
  ids = pipeline.prepare(catalog.get(cfg.dataset), data_dir=cfg.data_dir,
                         image_size=result.image_size, val_fraction=cfg.val_fraction,
                         train_fraction=1.0, split_seed=cfg.split_seed,
                         select_on=cfg.select_on, cache="none", download=False).ids
  assert len(pool) == len(ids.train) and not set(ids.train) & set(ids.val or [])
  assert len(x_test) == result.test["count"]


@pytest.mark.heavy
def test_export_json_is_written(run, exported):
  workdir, result = run
  with open(os.path.join(workdir, evaluation.EXPORT_JSON)) as f:
    on_disk = json.load(f)
  assert on_disk["test_count"] == result.test["count"]
  assert on_disk["artifacts"][0]["format"] == "keras"
  assert all(r["size_mb"] > 0 for r in on_disk["artifacts"])
  assert os.path.exists(os.path.join(workdir, "export", runtimes.LABELS_FILE))


@pytest.mark.heavy
def test_float_stability_is_measured_on_the_test_split(run, exported, test_images):
  """export.json's noise floor is the Keras model's on the run's own test pixels, seeded:
  measured again here from the split, it is the same record; every artifact is judged
  against it."""
  workdir, _ = run
  x_test, _ = test_images
  measured = exported["float_stability"]
  assert measured["draws"] == stability.DEFAULT_DRAWS and measured["images"] == len(x_test)
  keras_model = runtimes.open_model(workdir)
  again = stability.measure(keras_model.predict, x_test, keras_model.predict(x_test).argmax(1),
                            measured["draws"], measured["seed"])
  assert again == measured
  for row in exported["artifacts"][1:]:
    assert row["versus_float_stability"] == stability.judge(row["agreement_with_keras"],
                                                            measured)


@pytest.mark.heavy
def test_latency_in_a_fresh_process(run, exported):
  workdir, _ = run
  onnx = os.path.join(workdir, {r["format"]: r for r in exported["artifacts"]}["onnx"]["path"])
  timing = latency.in_subprocess(onnx, threads=1, runs=5, warmup=1, timeout=120)
  assert "error" not in timing, timing
  assert 0 < timing["median_ms"] <= timing["p90_ms"] and timing["runs"] == 5


def _digit_pngs(folder, test_images, count=6):
  from PIL import Image
  os.makedirs(folder, exist_ok=True)
  for i in range(count):
    Image.fromarray(test_images[0][i]).save(os.path.join(folder, f"digit{i}.png"))
  return folder


@pytest.mark.heavy
def test_predict_runs_litert_and_onnx_without_tensorflow(run, exported, test_images,
                                                         tmp_path):
  workdir, _ = run
  folder = _digit_pngs(str(tmp_path / "digits"), test_images)
  script = (
      "import runpy, sys\n"
      "sys.argv = ['predict', '--model=' + sys.argv[1], '--top_k=2', sys.argv[2]]\n"
      "try:\n"
      "  runpy.run_module('tfbackbones.predict', run_name='__main__')\n"
      "except SystemExit as e:\n"
      "  assert not e.code, e.code\n"
      "heavy = sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules)\n"
      "print('IMPORTED', heavy)\n")
  keras_probs = runtimes.open_model(workdir).predict(test_images[0][:6])
  for fmt in ("litert_int8", "onnx"):
    row = {r["format"]: r for r in exported["artifacts"]}[fmt]
    proc = subprocess.run([sys.executable, "-c", script, os.path.join(workdir, row["path"]),
                           folder], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED []" in proc.stdout, (fmt, proc.stdout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(folder)]
    assert len(lines) == 6
    if fmt == "onnx":  # float: the same top-1 as Keras on every image
      top1 = [line.split(": ")[1].split()[0] for line in lines]
      assert top1 == [str(i) for i in keras_probs.argmax(1)]


@pytest.mark.heavy
def test_predict_on_a_workdir_prints_and_writes_csv(run, test_images, tmp_path):
  workdir, _ = run
  folder = _digit_pngs(str(tmp_path / "digits"), test_images, count=3)
  out = str(tmp_path / "preds.csv")
  proc = _cli("tfbackbones.predict", f"--workdir={workdir}", "--top_k=3", f"--out={out}",
              folder)
  assert proc.returncode == 0, proc.stderr
  with open(out) as f:
    rows = f.read().splitlines()
  assert rows[0] == "path,rank,class_index,class_name,probability" and len(rows) == 1 + 3 * 3
  probs = runtimes.open_model(workdir).predict(test_images[0][:3])
  assert rows[1].split(",")[2] == str(int(probs[0].argmax()))


@pytest.mark.parametrize("args,message", [
    (["--model=/no/such/run", "x.png"], "no such file or folder"),
    (["--model=setup.cfg", "x.png"], "unknown model format"),
    (["--model=tests", "x.png"], "holds neither model.keras"),
    (["--model=RUN", "/no/such/image.png"], "no such file or folder"),
    (["--model=RUN", "BAD"], "not a readable image"),
    (["--model=RUN", "EMPTY"], "holds no image files"),
])
def test_predict_bad_input_is_one_line_exit_2(run, tmp_path, args, message):
  workdir, _ = run
  bad = tmp_path / "bad.png"
  bad.write_text("not a png")
  (tmp_path / "empty").mkdir()
  args = [a.replace("RUN", workdir).replace("BAD", str(bad))
          .replace("EMPTY", str(tmp_path / "empty")) for a in args]
  proc = _cli("tfbackbones.predict", *args)
  assert proc.returncode == 2, proc.stderr
  assert message in proc.stderr and "Traceback" not in proc.stderr
  assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1


def test_predict_skips_and_counts_unreadable_files_in_a_folder(run, test_images, tmp_path):
  """A stray non-image in a folder is skipped and counted on stderr; the others are
  predicted (exit 0), instead of one error line and no predictions at all."""
  workdir, _ = run
  folder = _digit_pngs(str(tmp_path / "digits"), test_images, count=2)
  with open(os.path.join(folder, "notes.jpg"), "w") as f:
    f.write("not an image")
  proc = _cli("tfbackbones.predict", f"--workdir={workdir}", "--top_k=1", folder)
  assert proc.returncode == 0, proc.stderr
  assert "skipped 1 unreadable files found in the folders given" in proc.stderr
  assert "notes.jpg" in proc.stderr and "Traceback" not in proc.stderr
  printed = [line for line in proc.stdout.splitlines() if line.startswith(folder)]
  assert len(printed) == 2 and not any("notes.jpg" in line for line in printed)


def test_export_bad_workdir_and_format_are_clear_errors(run, tmp_path):
  workdir, _ = run
  with pytest.raises(exporters.ExportError, match="Did you mean 'litert_int8'"):
    evaluation.ExportConfig(workdir=workdir, formats=["litert_int9"]).validate()
  with pytest.raises(evaluation.WorkdirError, match="use one of pool, train"):
    evaluation.ExportConfig(workdir=workdir, calibration_from="val").validate()
  with pytest.raises(exporters.ExportError, match="valid: gptq, nearest"):
    evaluation.ExportConfig(workdir=workdir, int8_rounding="round").validate()
  with pytest.raises(evaluation.WorkdirError, match="--stability_draws=-1: use >= 0"):
    evaluation.ExportConfig(workdir=workdir, stability_draws=-1).validate()
  with pytest.raises(evaluation.WorkdirError, match="no such folder"):
    evaluation.check_workdir(str(tmp_path / "missing"))
  (tmp_path / "unfinished").mkdir()
  with pytest.raises(evaluation.WorkdirError, match="no finished run"):
    evaluation.check_workdir(str(tmp_path / "unfinished"))
  proc = _cli("tfbackbones.export", f"--workdir={workdir}", "--formats=onnx,tflite")
  assert proc.returncode == 2 and "unknown export format 'tflite'" in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.heavy
def test_report_shows_the_deployment_table(run, exported, tmp_path):
  pytest.importorskip("matplotlib")
  from tfbackbones.report import deployment, generate
  workdir, _ = run
  study = os.path.dirname(workdir)
  table = deployment.table(deployment.load(study))
  assert [r["format"] for r in table.rows] == sorted(["keras", *exporters.FORMATS])
  int8 = [r for r in table.rows if r["format"] == "litert_int8"][0]
  row = {a["format"]: a for a in exported["artifacts"]}["litert_int8"]
  assert int8["top1"] == pytest.approx(100 * row["top1"])
  assert int8["float_stability"] == pytest.approx(100 * exported["float_stability"]["mean"])
  assert deployment.pareto_plots(table) == {}  # no latency measured: nothing to plot
  paths = generate.build(study, str(tmp_path / "report"), log=Quiet())
  with open(paths["deployment.md"]) as f:
    assert "litert_int8" in f.read()
  with open(paths["report.html"]) as f:
    assert 'id="table-deployment"' in f.read()


@pytest.mark.heavy
def test_study_export_skips_exported_and_unfinished_runs(run, exported, tmp_path):
  workdir, _ = run
  (tmp_path / "unfinished").mkdir()
  stamp = os.path.getmtime(os.path.join(workdir, evaluation.EXPORT_JSON))
  log = Quiet()
  failures = evaluation.export_finished([workdir, str(tmp_path / "unfinished")],
                                        ["litert"], log=log)
  assert failures == {} and log.lines == []
  assert os.path.getmtime(os.path.join(workdir, evaluation.EXPORT_JSON)) == stamp


def test_predict_breaks_ties_as_the_export_measures():
  """Tied probabilities (a uint8 output at 128/256 each): the first class, as argmax."""
  from tfbackbones.deploy import runtimes
  tied = np.array([0.25, 0.375, 0.375], np.float32)
  assert runtimes.top_k(tied, ["a", "b", "c"], 2) == [(1, "b", 0.375), (2, "c", 0.375)]
  assert runtimes.top_k(tied, ["a", "b", "c"], 1)[0][0] == int(tied.argmax())


@pytest.mark.parametrize("xnnpack,noted", [
    (None, False),
    ({"partitions": 1, "not_delegated": {}, "interface_ops": 2}, False),
    ({"partitions": 1, "not_delegated": {"SOFTMAX": 1}, "interface_ops": 2}, False),
    ({"partitions": 2, "not_delegated": {"SOFTMAX": 1}, "interface_ops": 2}, True),
    ({"partitions": 1, "not_delegated": {"SOFTMAX": 1, "HARD_SWISH": 18}}, True),
    ({"partitions": 19, "not_delegated": {"HARD_SWISH": 18}}, True),
])
def test_only_ops_outside_xnnpack_that_cost_time_are_noted(xnnpack, noted):
  assert evaluation._delegation_matters(xnnpack) is noted


def test_every_format_says_what_it_needs_and_a_missing_package_is_refused_first(monkeypatch):
  assert set(exporters.REQUIRES) == set(exporters.FORMATS)
  exporters.check_installed(exporters.FORMATS)  # the test extra has everything
  real = exporters.importlib.util.find_spec
  monkeypatch.setattr(exporters.importlib.util, "find_spec",
                      lambda name: None if name == "ai_edge_litert" else real(name))
  exporters.check_installed(["saved_model", "onnx"])
  with pytest.raises(exporters.ExportError,
                     match=r"ai_edge_litert not installed \(needed by --formats=litert,"
                           r"litert_int8\).*pip install -e '\.\[export\]'"):
    exporters.check_installed(["saved_model", "litert", "litert_int8"])
