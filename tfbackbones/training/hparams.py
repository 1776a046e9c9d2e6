"""The HParams dashboard's view of a run: typed domains, and a session that ends.

TensorBoard's HParams plugin takes the experiment definition (the `hparams_config`
summary) of the first run it finds and applies it to the whole logdir. A hyper-parameter
declared without a domain is DATA_TYPE_UNSET there, and the dashboard then offers no
filter for it; a session without an end record is STATUS_UNKNOWN, so the "Success" filter
shows nothing. Hence:

* every hyper-parameter gets a domain that holds for any run of the project, so whichever
  run's definition TensorBoard picks fits all runs: the registry's names (backbones,
  datasets, their domains) as discrete sets, rates and fractions as real intervals,
  counts and pixel sizes as integer intervals;
* `differs` is declared on the axes every study compares (backbone, dataset, seed,
  training fraction), which the plugin lists first;
* the session ends with STATUS_SUCCESS for a result and STATUS_FAILURE otherwise.
"""

from __future__ import annotations

import time

import tensorflow as tf
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2

# What the studies vary: listed first by the plugin (it sorts on `differs`, then name).
COMPARED = ("backbone", "dataset", "seed", "train_fraction")

_MAX_INT = 2**31 - 1


def _discrete(values, current) -> hp.Discrete:
  """All the values a project run can have, plus this run's (a path, a folder: dataset)."""
  return hp.Discrete(sorted({*values, *([current] if current is not None else [])}))


def domains(values: dict) -> dict:
  """{name: domain} for the hyper-parameters of `summaries.hparams_of`."""
  from tfbackbones import backbones
  from tfbackbones.config import PRECISIONS, SELECT_ON
  from tfbackbones.data import catalog
  v = values
  real01, lr = hp.RealInterval(0.0, 1.0), hp.RealInterval(0.0, 10.0)
  count = hp.IntInterval(0, _MAX_INT)
  table = {
      "backbone": _discrete(backbones.names(), v.get("backbone")),
      "dataset": _discrete(catalog.names(), v.get("dataset")),
      "domain": _discrete({s.domain for s in catalog.specs()}, v.get("domain")),
      "select_on": _discrete(SELECT_ON, v.get("select_on")),
      "precision": _discrete(set(PRECISIONS) - {"auto"}, v.get("precision")),
      "weights": _discrete({"imagenet", "none"}, v.get("weights")),
      "augment": _discrete({"none", "flip", "trivial"}, v.get("augment")),
      "freeze_backbone": hp.Discrete([False, True]),
      "seed": count, "batch_size": hp.IntInterval(1, _MAX_INT),
      "adamw_patience": count, "sgd_patience": count, "max_epochs": count,
      "image_width": hp.IntInterval(1, 65536), "image_height": hp.IntInterval(1, 65536),
      "train_fraction": real01, "val_fraction": real01, "dropout": real01,
      "label_smoothing": real01, "adamw_lr": lr, "sgd_lr": lr,
      "adamw_weight_decay": lr, "sgd_momentum": real01,
  }
  return {name: table.get(name) for name in values}


def experiment_pb(values: dict, metrics: list[str]):
  """The `hparams_config` summary proto: typed domains, `differs` on COMPARED."""
  pb = summary_v2.hparams_config_pb(
      hparams=[hp.HParam(name, domain) for name, domain in domains(values).items()],
      metrics=[hp.Metric(m) for m in metrics])
  data = metadata.parse_experiment_plugin_data(
      pb.value[0].metadata.plugin_data.content)
  for info in data.hparam_infos:
    info.differs = info.name in COMPARED
  pb.value[0].metadata.CopyFrom(metadata.create_summary_metadata(
      plugin_data_pb2.HParamsPluginData(experiment=data)))
  return pb


def write_start(values: dict, metrics: list[str], trial_id: str | None) -> None:
  """Experiment definition and session start, to the default summary writer."""
  _write("hparams_config", experiment_pb(values, metrics))
  hp.hparams(values, trial_id=trial_id)


def write_end(success: bool) -> None:
  """Session end (status, end time), to the default summary writer."""
  status = api_pb2.STATUS_SUCCESS if success else api_pb2.STATUS_FAILURE
  pb = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(
      session_end_info=plugin_data_pb2.SessionEndInfo(status=status,
                                                      end_time_secs=time.time())))
  summary = summary_pb2.Summary()
  summary.value.add(tag=metadata.SESSION_END_INFO_TAG, metadata=pb,
                    tensor=metadata.NULL_TENSOR)
  _write("hparams_end", summary)


def _write(name: str, pb) -> None:
  with tf.summary.experimental.summary_scope(name):
    tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
