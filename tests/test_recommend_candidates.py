"""Candidate parsing and config validation of `recommend` (no TensorFlow model built)."""

import os

import pytest

from tfbackbones import backbones
from tfbackbones.config import ConfigError
from tfbackbones.recommend import RecommendConfig
from tfbackbones.recommend import candidates as candidates_lib


def test_name_at_weights_overrides_the_default():
  got = candidates_lib.parse(["resnet50", "resnet50@none", "RESNET50@imagenet",
                              "mobilenet_v3_small@/tmp/w.weights.h5"], "imagenet")
  assert [(c.name, c.weights) for c in got] == [
      ("resnet50", "imagenet"), ("resnet50", "none"),
      ("mobilenet_v3_small", os.path.abspath("/tmp/w.weights.h5"))]
  assert [c.label for c in got[:2]] == ["resnet50@imagenet", "resnet50@none"]
  # A label names the candidate completely: parsing it gives the same candidate back.
  assert candidates_lib.parse([c.label for c in got], "none") == got
  assert "/" not in got[2].slug


def test_default_weights_and_all():
  got = candidates_lib.parse(["mobilenet_v3_small"], "none")
  assert got[0].weights == "none" and got[0].label == "mobilenet_v3_small@none"
  everything = candidates_lib.parse(["all"], "imagenet")
  assert [c.name for c in everything] == backbones.names()


def test_unknown_backbone_lists_close_names():
  with pytest.raises(backbones.UnknownBackboneError, match="Did you mean: resnet50"):
    candidates_lib.parse(["resnet5O"], "imagenet")


@pytest.mark.parametrize("field,value,message", [
    ("max_images", 5, "max_images"), ("val_share", 1.0, "val_share"),
    ("image_size", 16, "image_size"), ("scores", ("logme", "leep"), "scores"),
    ("backbones", (" ",), "backbones"), ("finetune_top", -1, "finetune_top")])
def test_config_names_the_bad_flag(field, value, message):
  with pytest.raises(ConfigError, match=f"--{message}="):
    RecommendConfig(**{field: value}).validate()
