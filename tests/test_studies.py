"""Studies and the study runner: grids, sharding, kill and resume, failures, then a report.

The end-to-end test trains a tiny offline study (2 tiny backbones x sklearn_digits x
2 train fractions x 2 seeds = 8 one-epoch runs) as two shards, kills one shard mid-run,
reruns it, and builds the report from the real result.json files.
"""

import csv
import os
import random

import keras
import pytest

from experiments import quickstart, run, studies
from tfbackbones import results
from tfbackbones.backbones import registry
from tfbackbones.config import ConfigError, TrainConfig
from tfbackbones.data import catalog
from tfbackbones.protocols import paper as paper_protocol
from tfbackbones.report import generate
from tfbackbones.results import RunResult
from tfbackbones.training import loop
from tfbackbones.training import workdir as wd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_B = "test_tiny_mlp"
TINY_C = "test_tiny_mlp_c"
# One-epoch tiny runs: the protocol's shape, none of its cost.
# A higher learning rate and BatchNorm momentum 0.9, so that one epoch learns enough to
# be a result (not degenerate: above the majority-class rate).
TINY = dict(weights="none", image_size=32, batch_size=32, max_epochs=1, adamw_patience=1,
            sgd_patience=1, steps_per_execution=8, augment="none", adamw_lr=1e-2,
            bn_momentum=0.9)


def _tiny_flat(name, filters):
  def build(spec, image_size, weights):
    del spec, weights
    inputs = keras.Input((*image_size, 3))  # builders get (height, width)
    x = keras.layers.Conv2D(filters, 4, strides=4, activation="relu")(inputs)
    # Flattened, so the head sees where strokes are: averaged away (helpers.TINY's
    # pooled CNN), one epoch stays near chance and the run is rightly `degenerate`
    # (test top-1 0.10-0.14 on digits, not significantly above the majority rate).
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, x, name=name)
  if name not in registry.names():
    registry.register(registry.BackboneSpec(
        name=name, source="keras.applications", default_size=32, preprocessing="unit",
        params_m=None, imagenet_top1=None, feature_dim=64 * filters, weights_file=None,
        description="test-only one-conv backbone", builder=build))
  return name


def register_tiny_b() -> str:
  """A tiny backbone (one strided conv, flattened) that learns digits in one epoch."""
  return _tiny_flat(TINY_B, 8)


def register_tiny_c() -> str:
  """A second one, narrower, so a study has two backbones that both give results."""
  return _tiny_flat(TINY_C, 4)


@pytest.fixture(autouse=True, scope="module")
def _unregister_tiny_b():
  """Leaves the registry as other test modules expect it (they list every backbone)."""
  yield
  for name in (TINY_B, TINY_C):
    if name in registry.names():
      registry.unregister(name)


# ---------------------------------------------------------------- studies (no training)
def test_paper_study_grid_and_per_dataset_rules():
  configs = studies.build("paper", "gs://bucket/runs")
  assert len(configs) == 11 * 20 * 3                     # no backbone needs to exist yet
  by_id = {studies.run_id(c): c for c in configs}
  assert len(by_id) == len(configs)
  flowers = by_id["oxford_flowers102/regnety_032/frac1/seed2"]
  assert flowers.workdir == "gs://bucket/runs/oxford_flowers102/regnety_032/frac1/seed2"
  assert (flowers.adamw_patience, flowers.sgd_patience, flowers.augment) == (20, 20, "trivial")
  for name in ("food101", "galaxy10_decals"):
    c = by_id[f"{name}/convnext_tiny/frac1/seed0"]
    assert (c.adamw_patience, c.sgd_patience) == (10, 20)
  dtd = by_id["dtd/convnext_tiny/frac1/seed0"]
  assert (dtd.image_size, dtd.augment, dtd.adamw_patience, dtd.weights) == (
      256, "trivial", 10, "imagenet")
  assert by_id["eurosat_rgb/resnet50/frac1/seed0"].image_size == 224
  assert by_id["breakhis_40x/resnet50/frac1/seed0"].image_size == 0   # 672x448: catalog's
  assert by_id["galaxy10_decals/resnet50/frac1/seed0"].augment == "none"
  assert by_id["cifar10/resnet50/frac1/seed0"].augment_at == "native"   # reference order
  assert {c.augment_at for c in configs if c.dataset not in ("cifar10", "cifar100")} == {
      "cached"}
  assert {c.select_on for c in configs} == {"val"}


def test_data_fraction_adhoc_and_quickstart_studies():
  fractions = studies.build("data_fraction", "w")
  assert len(fractions) == 11 * 9 * 3
  cifar = {c.train_fraction for c in fractions if c.dataset == "cifar10"}
  assert cifar == {0.01, 0.1}
  assert {c.train_fraction for c in fractions if c.dataset == "food101"} == {0.1}
  assert "cifar10/resnet50/frac0.01/seed0" in {studies.run_id(c) for c in fractions}
  adhoc = studies.build("adhoc", "w", backbones=["a", "b"], datasets=["dtd", "sklearn_digits"],
                        seeds=3, train_fractions=[0.1, 1.0], overrides={"max_epochs": 7})
  assert len(adhoc) == 24 and {c.max_epochs for c in adhoc} == {7}
  digits = [c for c in adhoc if c.dataset == "sklearn_digits"]
  assert {(c.image_size, c.augment) for c in digits} == {(0, "auto")}   # not a paper dataset
  quick = studies.build("quickstart", "w", data_dir="/data")
  assert sorted((c.backbone, c.weights, c.seed) for c in quick) == sorted(
      (b, w, s) for b in quickstart.BACKBONES for w in quickstart.WEIGHTS
      for s in range(quickstart.SEEDS))
  assert {studies.run_id(c) for c in quick} >= {
      "lfw_subset/efficientnet_lite0/frac0.1/seed0",
      "lfw_subset/efficientnet_lite0-scratch/frac0.1/seed0"}
  assert {(c.dataset, c.image_size, c.batch_size, c.train_fraction) for c in quick} == {
      ("lfw_subset", 96, 8, 0.1)}
  # The quickstart's runs are cells of the pretrained_offline study (same configs).
  offline = {studies.run_id(c): c for c in studies.build("pretrained_offline", "w")}
  assert len(offline) == 6 * 2 * 3 + 2 * 3   # + the Lite0 pair at 4 labels per class
  assert {c.train_fraction for c in offline.values() if c.dataset == "lfw_subset"} == {
      0.1, 0.2}
  for c in quick:
    assert offline[studies.run_id(c)].replace(workdir=c.workdir, data_dir=c.data_dir) == c
  assert {c.data_dir for c in quick} == {"/data"}


def test_paper_rules_agree_with_the_catalog_where_it_has_the_dataset():
  for name in studies.PAPER_DATASETS:
    if name in catalog.names():
      spec, rules = catalog.get(name), paper_protocol.rules(name)
      assert rules["image_size"] in (0, spec.image_size), name
      assert rules["augment"] == spec.augment, name


def test_paper_study_names_match_the_published_numbers():
  from tfbackbones.report import records
  published = records.read_csv(records.PAPER)
  assert {r.backbone for r in published} == set(studies.PAPER_BACKBONES)
  assert {r.dataset for r in published} == set(studies.PAPER_DATASETS) - {"neu_surface_defects"}
  cells = {(r.dataset, r.train_fraction) for r in published if r.train_fraction < 1}
  assert cells == {(d, f) for d, fs in studies.DATA_FRACTIONS.items() for f in fs}


def test_unknown_study_and_bad_arguments_say_what_is_valid():
  with pytest.raises(studies.UnknownStudyError, match="(?s)Did you mean 'paper'.*adhoc"):
    studies.get("papr")
  with pytest.raises(ConfigError, match="does not take --datasets"):
    studies.build("quickstart", "w", datasets=["dtd"])
  with pytest.raises(ConfigError, match="needs --backbones"):
    studies.build("adhoc", "w")
  with pytest.raises(ConfigError, match="unknown override.*nope"):
    studies.build("paper", "w", overrides={"nope": 1})
  with pytest.raises(ConfigError, match="train_fraction"):
    studies.build("adhoc", "w", backbones=["a"], datasets=["dtd"], train_fractions=[2.0])
  with pytest.raises(ConfigError, match="data_fraction has no datasets"):
    studies.build("data_fraction", "w", datasets=["dtd"])
  with pytest.raises(ConfigError, match="shard_index"):
    studies.shard([], 3, 3)


def test_sharding_covers_the_study_exactly_once_whatever_the_order():
  configs = studies.build("paper", "w")
  shards = [studies.shard(configs, i, 7) for i in range(7)]
  ids = [studies.run_id(c) for s in shards for c in s]
  assert sorted(ids) == sorted(studies.run_id(c) for c in configs)   # each exactly once
  assert max(map(len, shards)) - min(map(len, shards)) <= 1
  shuffled = list(configs)
  random.Random(0).shuffle(shuffled)
  assert [c.workdir for c in studies.shard(shuffled, 3, 7)] == [c.workdir for c in shards[3]]


def test_eta_uses_the_closest_finished_runs():
  pending = [TrainConfig(dataset="d", backbone="a"), TrainConfig(dataset="d", backbone="z"),
             TrainConfig(dataset="e", backbone="a")]
  walls = {("d", "a"): [10.0, 20.0], ("d", "b"): [40.0], ("f", "c"): [100.0]}
  # (d, a): 15; (d, z): mean over dataset d = 70/3; (e, a): mean of all = 170/4.
  assert run.estimate_remaining(pending, walls) == pytest.approx(15 + 70 / 3 + 170 / 4)
  assert run.estimate_remaining(pending, {}) is None


# ---------------------------------------------------------------- the runner, end to end
class Kill(BaseException):
  """Stands for SIGKILL or preemption: not an Exception, so the runner does not catch it."""


class KillInSecondRun(loop.Hooks):
  """Kills the process after the first epoch of the second run it sees."""

  def __init__(self):
    self.runs = 0

  def on_epoch_end(self, trainer, record):
    del record
    self.runs += 1
    if self.runs == 2:
      raise Kill(trainer.workdir)


class Recorder:
  """train_fn that counts engine calls per run and keeps every log line."""

  def __init__(self):
    from tfbackbones import runner
    self.runner, self.calls, self.lines = runner, [], []

  def __call__(self, config, **kwargs):
    self.calls.append(studies.run_id(config))
    return self.runner.train(config, **kwargs)

  def log(self, line):
    self.lines.append(line)


def _mtimes(configs):
  return {c.workdir: os.stat(os.path.join(c.workdir, wd.RESULT)).st_mtime_ns for c in configs
          if os.path.exists(os.path.join(c.workdir, wd.RESULT))}


def test_tiny_study_as_two_shards_survives_a_kill_and_builds_the_report(
    tmp_path, digits_data_dir):
  root = str(tmp_path / "study")
  tiny = [register_tiny_b(), register_tiny_c()]
  # A third backbone that does not exist: its runs fail at once, and the others go on.
  configs = studies.build(
      "adhoc", root, data_dir=digits_data_dir, overrides=TINY,
      backbones=tiny + ["no_such_backbone"], datasets=["sklearn_digits"], seeds=2,
      train_fractions=[0.5, 1.0])
  assert len(configs) == 12
  good = {studies.run_id(c) for c in configs if c.backbone in tiny}
  bad = {studies.run_id(c) for c in configs if c.backbone not in tiny}
  assert len(good) == 8

  shard0 = Recorder()
  outcomes0 = run.run_shard(configs, shard_index=0, num_shards=2, train_fn=shard0,
                            log=shard0.log)
  assert sorted(o.status for o in outcomes0) == ["failed"] * 2 + ["finished"] * 4

  killed = Recorder()
  with pytest.raises(Kill):
    run.run_shard(configs, shard_index=1, num_shards=2, train_fn=killed, log=killed.log,
                  hooks=KillInSecondRun())
  trained = [c for c in killed.calls if c in good]
  assert len(trained) == 2
  victim = os.path.join(root, trained[1])
  assert os.path.exists(os.path.join(victim, wd.STATE))
  assert not os.path.exists(os.path.join(victim, wd.RESULT))
  before = _mtimes(configs)

  rerun = Recorder()
  outcomes1 = run.run_shard(configs, shard_index=1, num_shards=2, train_fn=rerun,
                            log=rerun.log)
  assert "1 finished, 2 failed (retrying), 1 interrupted (resuming), 2 to do" in rerun.lines[0]
  assert sorted(o.status for o in outcomes1) == ["failed"] * 2 + ["finished"] * 3 + ["skipped"]
  # The finished run was not trained again; the killed one resumed after its epoch.
  assert trained[0] not in rerun.calls and trained[1] in rerun.calls
  assert any(l.startswith(f"resuming {victim} after epoch 1") for l in rerun.lines)
  assert any("already finished" in l and trained[0] in l for l in rerun.lines)
  assert any("| now:" in l and "ETA" in l and "ETA ?" not in l for l in rerun.lines)
  after = _mtimes(configs)
  assert all(after[w] == t for w, t in before.items() if "no_such" not in w)
  # Two shards, each good run trained to completion exactly once, and none twice.
  completed = [c for c in shard0.calls + trained[:1] + rerun.calls if c in good]
  assert sorted(completed) == sorted(good)
  assert {o.run_id for o in outcomes0}.isdisjoint({o.run_id for o in outcomes1})
  for rid in bad:                                         # the error is in result.json
    failure = wd.read_json(os.path.join(root, rid, wd.RESULT))
    assert failure["status"] == "failed" and "UnknownBackboneError" in failure["error"]
    assert failure["selection_protocol"] == "val-split" and failure["domain"] == "handwriting"
  summary = run.summary(outcomes1)
  assert "3 trained, 1 already finished, 2 failed" in summary
  assert "FAILED sklearn_digits/no_such_backbone-scratch/frac" in summary

  # The command line over the whole study: nothing left to train but the failed runs,
  # which fail again, so the exit code says so.
  argv = ["run", "--study=adhoc", f"--workdir={root}", f"--data_dir={digits_data_dir}",
          f"--backbones={','.join(tiny)},no_such_backbone", "--datasets=sklearn_digits",
          "--seeds=2", "--train_fractions=0.5,1"] + [f"--override={k}={v}" for k, v in
                                                      TINY.items()]
  try:
    run.FLAGS(argv)
    assert run.main([]) == 1
  finally:
    run.FLAGS.unparse_flags()
  assert os.path.exists(os.path.join(root, "studies", "adhoc.json"))
  assert {w: t for w, t in _mtimes(configs).items() if "no_such" not in w} == {
      w: t for w, t in after.items() if "no_such" not in w}

  out = os.path.join(root, "report")
  paths = generate.build(root, out, log=lambda line: None)
  assert {f"{n}.{e}" for n in generate.TABLE_FILES for e in ("csv", "md")} | {
      "report.html"} <= set(os.listdir(out))
  rows = list(csv.DictReader(open(paths["datasets.csv"])))
  ok = [r for r in rows if r["backbone"] in {f"{t}-scratch" for t in tiny}]  # weights=none
  assert len(ok) == 4 and {r["n"] for r in ok} == {"2"} and {r["status"] for r in ok} == {"ok"}
  assert {r["train_fraction"] for r in ok} == {"0.5", "1"}
  failed = [r for r in rows if r["backbone"] == "no_such_backbone-scratch"]  # shown, kept
  assert [(r["status"], r["failed"]) for r in failed] == [("failed", "2")] * 2
  assert len(list(csv.DictReader(open(paths["fractions.csv"])))) == 6
  assert len(list(csv.DictReader(open(paths["significance.csv"])))) == 2
  assert open(paths["report.html"]).read().count('<img class="plot"') == 5


def _fake_finished(config):
  result = RunResult.for_config(config, status="finished", wall_time_sec=3.0,
                                val={"top1": 0.5}, test={"top1": 0.5})
  results.write(os.path.join(config.workdir, wd.RESULT), result)
  return result


def test_failures_are_recorded_once_and_a_finished_run_is_never_overwritten(tmp_path):
  """The runner's bookkeeping around the engine, with a fake engine (no training)."""
  from tfbackbones import backbones
  base = TrainConfig(dataset="sklearn_digits", **TINY)
  configs = [base.replace(backbone=b) for b in ("a_engine_failure", "b_unknown", "c_fine")]
  configs = [c.replace(workdir=str(tmp_path / studies.run_id(c))) for c in configs]

  def fake_train(config, **kwargs):
    del kwargs
    os.makedirs(config.workdir, exist_ok=True)
    if config.backbone == "a_engine_failure":   # the engine writes its own failure first
      failure = RunResult.failure(config, "ValueError: too big", seconds=1.0)
      failure.extra["by"] = "engine"
      results.write(os.path.join(config.workdir, wd.RESULT), failure)
      raise ValueError("too big")
    if config.backbone == "b_unknown":          # raised before the engine writes anything
      raise backbones.UnknownBackboneError("Unknown backbone 'b_unknown'.")
    return _fake_finished(config)

  lines = []
  outcomes = run.run_shard(configs, train_fn=fake_train, log=lines.append)
  assert [o.status for o in outcomes] == ["failed", "failed", "finished"]
  engine = wd.read_json(os.path.join(configs[0].workdir, wd.RESULT))
  assert engine["by"] == "engine"                          # not replaced by the runner's
  assert any("Traceback" in l for l in lines)               # not a user error: traceback
  unknown = wd.read_json(os.path.join(configs[1].workdir, wd.RESULT))
  assert unknown["status"] == "failed" and unknown["error"].startswith("UnknownBackboneError")
  assert unknown["backbone"] == "b_unknown" and unknown["config"]["max_epochs"] == 1
  # A finished run asked again with another protocol is refused; its result is kept.
  again = run.run_shard([configs[2].replace(max_epochs=2)], train_fn=fake_train,
                        log=lines.append)
  assert again[0].status == "failed" and "max_epochs: now 2, workdir has 1" in again[0].error
  assert wd.read_json(os.path.join(configs[2].workdir, wd.RESULT))["status"] == "finished"


def test_foundation_studies_fine_tune_and_probe_the_same_grid():
  tune = studies.build("foundation", "w")
  probe = studies.build("foundation_probe", "w")
  assert len(tune) == len(probe) == 8 * 9 * 3 + 4 * 3
  assert not any(c.freeze_backbone for c in tune) and all(c.freeze_backbone for c in probe)
  assert [studies.run_id(c) for c in tune] == [studies.run_id(c) for c in probe]
  assert {c.image_size for c in tune} == {224}
  assert {c.dataset for c in tune if c.backbone == "medsiglip_900m_448"} == {
      "breakhis_40x", "rsna_pneumonia"}
  assert {c.dataset for c in tune if c.backbone == "dinov3_vit_large_sat493m"} == {
      "uc_merced", "eurosat_rgb"}
  mine = studies.build("foundation", "w", backbones=["dinov2_small"], datasets=["dtd"], seeds=1)
  assert [c.backbone for c in mine] == ["dinov2_small"]   # domain models only in the default


def test_quickstart_flagfile_names_the_quickstart_cell():
  """flags/quickstart.flags restates the cell the quickstart runs; it must not drift."""
  from tfbackbones.protocols import quickstart as quick
  with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "flags", "quickstart.flags"), encoding="utf-8") as f:
    values = dict(line.strip()[2:].split("=", 1) for line in f
                  if line.startswith("--"))
  assert values == {"protocol": "quickstart", "dataset": quick.DATASET,
                    "train_fraction": str(quick.TRAIN_FRACTION)}
