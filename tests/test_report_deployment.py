"""The report's Deployment table tells runs apart as the other tables do, and says why an
artifact falls below 98% agreement."""

import json

from tfbackbones.report import deployment


def _export(weights, agreement=0.94, stability=None, judged=None, **extra):
  artifact = {"format": "litert_int8", "runtime": "litert", "top1": 0.9,
              "top1_drop_points": 1.0, "agreement_with_keras": agreement, "size_mb": 4.0,
              "latency_batch1": {"threads_1": {"median_ms": 1.1, "p90_ms": 1.3}}}
  if judged:
    artifact["versus_float_stability"] = {"verdict": judged}
  out = {"dataset": "lfw_subset", "backbone": "efficientnet_lite0", "seed": 0,
         "float_stability": stability, "machine": {"cpu_count": 2},
         "artifacts": [artifact], **extra}
  if weights is not None:
    out.update(weights=weights, train_fraction=0.1)
  return out


def test_random_init_and_imagenet_runs_are_different_rows_and_points(monkeypatch):
  table = deployment.table([_export("imagenet"), _export("none")])
  assert sorted(r["backbone"] for r in table.rows) == [
      "efficientnet_lite0", "efficientnet_lite0-scratch"]
  assert all(r["train_fraction"] == 0.1 for r in table.rows)
  plotted = []
  monkeypatch.setattr(deployment.plots, "pareto_plot",
                      lambda points, *args, **kwargs: plotted.append(points) or b"png")
  assert list(deployment.pareto_plots(table)) == ["deployment_lfw_subset"]
  # one point per (backbone and its init, format, label fraction): not one mean of both
  assert sorted(name for name, _, _ in plotted[0]) == [
      "efficientnet_lite0-scratch/litert_int8 (10%)", "efficientnet_lite0/litert_int8 (10%)"]


def test_exports_written_before_weights_were_recorded_read_them_from_the_run(tmp_path):
  for name, weights in (("a", "imagenet"), ("b", "none")):
    run = tmp_path / name
    run.mkdir()
    (run / "export.json").write_text(json.dumps(_export(None)))
    (run / "result.json").write_text(json.dumps(
        {"config": {"weights": weights, "train_fraction": 0.1}}))
  rows = deployment.table(deployment.load(str(tmp_path))).rows
  assert sorted(r["backbone"] for r in rows) == [
      "efficientnet_lite0", "efficientnet_lite0-scratch"]


def test_the_verdict_column_says_why_an_artifact_is_below_98_percent():
  floor = {"mean": 0.9, "min": 0.9}
  rows = deployment.table([
      _export("imagenet", 0.94, floor, "within_float_noise"),
      _export("imagenet", 0.87, floor, "below_float_noise"),
      _export("imagenet", 0.99, floor, "meets_target"),
      _export("imagenet", 0.93),                  # before session 7: judged here
      _export("imagenet", 0.85, floor)]).rows     # stability but no verdict: judged here
  assert [r["verdict"] for r in rows] == [
      "model's own noise", "export error", None, "not measured", "export error"]
