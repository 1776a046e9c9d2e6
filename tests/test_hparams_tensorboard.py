"""The HParams dashboard over a logdir of two runs, read from a live TensorBoard server.

The runs are written by the trainer's own RunWriter (no training: its hparams, one final
scalar, the session end), then a real `tensorboard` process serves them and the test
posts what the dashboard's JavaScript posts.
"""

import types

import pytest
import tensorboard_server
import tensorflow as tf

from tfbackbones.config import TrainConfig
from tfbackbones.data import catalog
from tfbackbones.training import summaries


def _write_run(logdir, backbone: str, fraction: float, success: bool, top1: float):
  config = TrainConfig(backbone=backbone, dataset="sklearn_digits", train_fraction=fraction,
                       workdir=str(logdir / backbone))
  trainer = types.SimpleNamespace(config=config, dataset_spec=catalog.get("sklearn_digits"),
                                  image_size=(32, 48), precision="float32", augment="none")
  writer = summaries.RunWriter(config.workdir)
  writer.hparams(summaries.hparams_of(trainer))
  with writer.writer.as_default(step=1):
    tf.summary.scalar("final/test_top1", top1)
  writer.end(success)
  writer.close()


@pytest.mark.heavy
def test_typed_domains_and_session_status_over_http(tmp_path):
  _write_run(tmp_path, "mobilenet_v3_small", 0.5, True, 0.9)
  _write_run(tmp_path, "efficientnetv2_b0", 1.0, False, 0.1)
  with tensorboard_server.serve(f"tensorboard --logdir={tmp_path}") as server:
    experiment = server.experiment()
    infos = {h["name"]: h for h in experiment["hparamInfos"]}
    assert "DATA_TYPE_UNSET" not in {h.get("type", "DATA_TYPE_UNSET") for h in infos.values()}
    assert infos["backbone"]["type"] == "DATA_TYPE_STRING"
    assert {"mobilenet_v3_small", "efficientnetv2_b0", "convnext_tiny"} <= set(
        infos["backbone"]["domainDiscrete"])
    assert infos["precision"]["domainDiscrete"] == ["float32", "mixed_bfloat16",
                                                    "mixed_float16"]
    assert infos["freeze_backbone"]["type"] == "DATA_TYPE_BOOL"
    assert infos["train_fraction"]["type"] == "DATA_TYPE_FLOAT64"
    assert infos["train_fraction"]["domainInterval"] == {"minValue": 0.0, "maxValue": 1.0}
    assert infos["image_width"]["type"] == infos["image_height"]["type"] == "DATA_TYPE_FLOAT64"
    # The compared axes are flagged, so the dashboard lists them first.
    names = [h["name"] for h in experiment["hparamInfos"]]
    assert names[:4] == ["backbone", "dataset", "seed", "train_fraction"]
    assert {m["name"]["tag"] for m in experiment["metricInfos"]} >= {"final/test_top1"}

    ok = server.session_groups(["STATUS_SUCCESS"])["sessionGroups"]
    failed = server.session_groups(["STATUS_FAILURE"])["sessionGroups"]
    assert [g["hparams"]["backbone"] for g in ok] == ["mobilenet_v3_small"]
    assert [g["hparams"]["backbone"] for g in failed] == ["efficientnetv2_b0"]
    session = ok[0]["sessions"][0]
    assert session["status"] == "STATUS_SUCCESS"
    assert session["endTimeSecs"] >= session["startTimeSecs"] > 0
    assert ok[0]["hparams"]["image_width"] == 48 and ok[0]["hparams"]["image_height"] == 32
    assert server.session_groups(["STATUS_UNKNOWN"])["sessionGroups"] == []
