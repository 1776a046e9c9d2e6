"""Library entry point for one run: validate, check names, train.

The cheap checks (config values, backbone and dataset names) run before any data is
prepared or any model is built, so a typo fails in a second and touches nothing.
"""

from __future__ import annotations

from tfbackbones import backbones
from tfbackbones.backbones import keras_hub_presets, savedmodel, weights
from tfbackbones.config import ConfigError, TrainConfig
from tfbackbones.data import catalog, checks, pipeline
from tfbackbones.results import ResultError, RunResult
from tfbackbones.training import distribute, workdir

# Errors caused by the user's input: entry points print them without a traceback.
USER_ERRORS = (ConfigError, backbones.UnknownBackboneError, catalog.UnknownDatasetError,
               pipeline.DataNotAvailableError, backbones.WeightsNotAvailableError,
               weights.WeightsMismatchError, savedmodel.SavedModelError,
               keras_hub_presets.KerasHubError,
               distribute.CpuReplicasError, ResultError, checks.DataError)


def check(config: TrainConfig) -> TrainConfig:
  config.validate()
  backbones.get(config.backbone)
  catalog.get(config.dataset)
  workdir.check_usable(config.workdir)
  return config


def train(config: TrainConfig, **trainer_kwargs) -> RunResult:
  """Runs (or resumes) `config` to completion and returns its result."""
  from tfbackbones.training.loop import Trainer
  return Trainer(check(config), **trainer_kwargs).run()
