"""The export rewrites (tfbackbones/deploy/rewrite.py) and the XNNPACK delegation check.

Tiny 16 px models, no training: what is checked is the graph LiteRT gets, not accuracy.
"""

import os

import keras
import numpy as np
import pytest

from tfbackbones import artifacts
from tfbackbones.deploy import exporters, rewrite

pytest.importorskip("ai_edge_litert")

SIZE = 16


def _model(first_layer_name: str = "stem"):
  """uint8 pixels -> probabilities, with MobileNetV3's hard-swish between two convs."""
  inputs = keras.Input((SIZE, SIZE, 3))
  x = keras.layers.Conv2D(8, 3, padding="same", name=first_layer_name)(inputs)
  x = keras.layers.Activation("hard_swish", name="hswish")(x)
  x = keras.layers.Conv2D(8, 1, name="pointwise")(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  logits = keras.layers.Dense(3)(x)
  return artifacts.with_preprocessing(keras.Model(inputs, logits, name="tiny"), "tf")


def _pixels(n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def test_rewrite_computes_the_same_function():
  model = _model("_blocks.0._conv")
  copy = rewrite.for_export(model, int8=True)
  leaves = [layer.name for layer in copy.get_layer("tiny").layers]
  assert "blocks.0._conv" in leaves and "_blocks.0._conv" not in leaves
  assert isinstance(copy.get_layer("tiny").get_layer("hswish"), rewrite.DelegableHardSwish)
  x = _pixels(4)
  np.testing.assert_allclose(copy(x).numpy(), model(x).numpy(), atol=1e-6)
  # Nothing to do -> the model itself; float exports keep the fused hard-swish.
  plain = _model()
  assert rewrite.for_export(plain) is plain and rewrite.for_export(plain, int8=True) is not plain


@pytest.mark.heavy  # three small LiteRT conversions, ~15 s
def test_int8_hard_swish_runs_in_xnnpack_and_underscore_names_export(tmp_path):
  import tensorflow as tf
  model = _model("_blocks.0._conv")  # a SavedModel variable path may not start with "_"
  fp32, _ = exporters.export("litert", model, str(tmp_path))
  int8, _ = exporters.export("litert_int8", model, str(tmp_path),
                             exporters.ExportOptions(calibration=_pixels(8)))
  assert exporters.delegation(fp32)["not_delegated"] == {}  # float HARD_SWISH is delegated
  report = exporters.delegation(int8)
  assert report["partitions"] == 1 and "HARD_SWISH" not in report["not_delegated"]
  assert report["interface_ops"] == 2  # uint8 -> int8 in, int8 -> uint8 out

  # The check finds the problem the rewrite removes: Keras's own INT8 export of the same
  # model leaves HARD_SWISH to TFLite's reference kernel and splits the graph.
  plain = artifacts.float_input_variant(_model())
  path = os.path.join(tmp_path, "plain_int8.tflite")
  plain.export(path, format="litert", verbose=False, optimizations=[tf.lite.Optimize.DEFAULT],
               representative_dataset=lambda: ([x[None].astype(np.float32)] for x in _pixels(8)),
               target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
               inference_input_type=tf.uint8, inference_output_type=tf.uint8)
  assert exporters.delegation(path)["not_delegated"].get("HARD_SWISH") == 1
