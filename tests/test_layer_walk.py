"""layer_walk.walk gives each caller what its own walk gave, on every kind of model.

Six modules walked models their own way before `tfbackbones/layer_walk.py`; copies of
those walks (`_old_*`, verbatim) are the reference here, run on tiny models of each
kind the callers see: a functional model with a nested functional model and a nested
Sequential, a layer shared by the outer and a nested model, a custom layer holding
layers as attributes, a layer holding a `layers` list (keras-hub's encoders), a
keras.applications classifier, and keras-hub backbones. Explicit name lists pin what
the copies cannot: nested layers are reached and shared ones listed once.

One difference is deliberate: none of the old walks entered a layer that holds layers
as attributes, so the BatchNorm momentum, precise BN and the fused kernels skipped the
BatchNormalization, depthwise and activation layers inside keras-hub's EfficientNet
blocks. `walk` reaches them; where a model has such layers the old result is a part of
the new one, in the same order.
"""

import keras
import keras_hub  # the keras_hub extra (the Makefile's test install has it)
import pytest

from tfbackbones import layer_walk
from tfbackbones import model as model_lib
from tfbackbones.backbones import keras_hub_presets as khp
from tfbackbones.convert import common
from tfbackbones.deploy import rewrite
from tfbackbones.training import fused_bn, precise_bn

L = keras.layers


# The walks layer_walk replaced, copied as they were (commit c271dfa).
def _old_model_all_layers(model):  # model.py; also precise_bn.py
  for layer in model.layers:
    yield layer
    if hasattr(layer, "layers"):
      yield from _old_model_all_layers(layer)


def _old_kernels_all_layers(model):  # kernels/__init__.py (fused_bn.py walked the same way)
  seen, stack = set(), [model]
  while stack:
    layer = stack.pop()
    if id(layer) in seen:
      continue
    seen.add(id(layer))
    yield layer
    stack.extend(reversed(getattr(layer, "layers", []) or []))


def _old_iter_leaf_layers(model):  # convert/common.py
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      yield from _old_iter_leaf_layers(layer)
    else:
      yield layer


def _old_rewrite_leaves(model):  # deploy/rewrite.py
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      yield from _old_rewrite_leaves(layer)
    yield layer


def _old_interpolating_embeddings(model):  # backbones/keras_hub_presets.py
  found, stack = [], list(getattr(model, "layers", []))
  while stack:
    layer = stack.pop()
    if hasattr(layer, "interpolated_position_embeddings") and hasattr(
        layer, "position_embeddings"):
      found.append(layer)
    stack.extend(getattr(layer, "layers", None) or [])
  return found


class Block(L.Layer):
  """A custom block holding its layers as attributes (like the Swin attention port)."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.conv = L.Conv2D(4, 1, name="block_conv")
    self.bn = L.BatchNormalization(name="block_bn")

  def call(self, x):
    return self.bn(self.conv(x))


class Encoder(L.Layer):
  """Blocks in a plain `self.layers` list, as keras-hub's transformer encoders keep them."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.layers = [L.Dense(4, name="enc_dense_0"), L.Dense(4, name="enc_dense_1")]

  def call(self, x):
    for layer in self.layers:
      x = layer(x)
    return x


def _nested():
  """Functional model: a nested functional model, a nested Sequential, a shared BN."""
  shared = L.BatchNormalization(name="shared_bn")
  inner_in = keras.Input((8, 8, 3), name="inner_in")
  x = L.Conv2D(4, 3, padding="same", name="inner_conv")(inner_in)
  inner = keras.Model(inner_in, shared(L.BatchNormalization(name="inner_bn")(x)),
                      name="inner")
  seq = keras.Sequential([keras.Input((8, 8, 4)),
                          L.DepthwiseConv2D(5, padding="same", name="seq_dw"),
                          L.Activation("hard_silu", name="seq_hswish")], name="seq")
  inputs = keras.Input((8, 8, 3), name="images")
  x = shared(seq(inner(inputs)))          # `shared` in the outer graph and in `inner`
  x = shared(x)                           # and called twice in the outer graph
  x = L.GlobalAveragePooling2D(name="pool")(x)
  return keras.Model(inputs, L.Dense(2, name="head")(x), name="outer")


def _holders():
  """Functional model with a custom attribute-holding block and a `layers`-list holder."""
  inputs = keras.Input((8, 8, 3), name="images")
  x = Block(name="block")(inputs)
  x = L.GlobalAveragePooling2D(name="pool")(x)
  return keras.Model(inputs, Encoder(name="encoder")(x), name="holders")


def _sequential():
  return keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, name="conv"),
                           L.BatchNormalization(name="bn"), L.Activation("swish", name="act")],
                          name="plain_seq")


def _mobilenet_classifier():
  keras.utils.set_random_seed(0)
  backbone = keras.applications.MobileNetV3Small(
      input_shape=(32, 32, 3), include_top=False, weights=None, include_preprocessing=False)
  return model_lib.build_classifier(backbone, 3, 32)


def _keras_hub_dinov2():
  """A 1-layer DINOv2 (its embedding is what keras_hub_presets looks for)."""
  return keras_hub.models.DINOV2Backbone(
      patch_size=8, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
      image_shape=(32, 32, 3), position_embedding_shape=(32, 32, 3))


def _keras_hub_efficientnet():
  """keras-hub EfficientNet with a "fused" (FusedMBConv) stage: a block class holding its
  BatchNormalization layers as attributes, as the EfficientNetV2 presets are built."""
  return keras_hub.models.EfficientNetBackbone(
      stackwise_width_coefficients=[1.0], stackwise_depth_coefficients=[1.0],
      stackwise_kernel_sizes=[3], stackwise_num_repeats=[1], stackwise_input_filters=[16],
      stackwise_output_filters=[16], stackwise_expansion_ratios=[4],
      stackwise_squeeze_and_excite_ratios=[0.0], stackwise_strides=[1],
      stackwise_block_types=["fused"], stackwise_force_input_filters=[0],
      stackwise_nores_option=[False])


BUILDERS = {"nested": _nested, "holders": _holders, "sequential": _sequential,
            "mobilenet_classifier": _mobilenet_classifier, "keras_hub_dinov2": _keras_hub_dinov2,
            "keras_hub_efficientnet": _keras_hub_efficientnet}
# Models with layers held as attributes by a layer that is not a model: the one place
# `walk` lists more than the old walks did (see the module doc).
HOLDERS = ("holders", "keras_hub_dinov2", "keras_hub_efficientnet")


@pytest.fixture(scope="module")
def models():
  return {name: build() for name, build in BUILDERS.items()}


def _once(layers):
  """`layers` with each layer kept where it first comes."""
  seen, out = set(), []
  for layer in layers:
    if id(layer) not in seen:
      seen.add(id(layer))
      out.append(layer)
  return out


def _ids(layers):
  return [id(layer) for layer in layers]


def _names(layers):
  return [layer.name for layer in layers]


def _assert_same_or_more(new, old, name):
  """`new` is `old` (by identity), or, for a model in HOLDERS, `old` plus layers held
  by a layer: `old` in the same order, and nothing new that is not inside a layer."""
  new_ids, old_ids = _ids(new), _ids(old)
  if name not in HOLDERS:
    assert new_ids == old_ids
    return
  assert [i for i in new_ids if i in set(old_ids)] == old_ids
  held = {id(sub) for layer in old if not isinstance(layer, keras.Model)
          for sub in layer._flatten_layers(include_self=False)}
  extra = [layer for layer in new if id(layer) not in set(old_ids)]
  assert extra and all(id(layer) in held for layer in extra)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_each_caller_gets_what_its_old_walk_gave(models, name):
  model = models[name]
  # model.py (BatchNorm momentum), precise BN: the old walk, each layer once.
  _assert_same_or_more(layer_walk.walk(model), _once(_old_model_all_layers(model)), name)
  # kernels, fused BN: the model itself first, then the same.
  _assert_same_or_more(layer_walk.walk(model, include_root=True),
                       list(_old_kernels_all_layers(model)), name)
  # convert: graph units, nested models flattened away.
  assert (_ids(layer_walk.walk(model, into="models", containers=False))
          == _ids(_once(_old_iter_leaf_layers(model))))
  # deploy/rewrite: graph units and nested models (only `any` over them: order is free).
  graph = layer_walk.walk(model, into="models")
  assert sorted(_ids(graph)) == sorted(set(_ids(_old_rewrite_leaves(model))))
  # keras_hub_presets: the same embedding layers.
  assert (sorted(_ids(khp._interpolating_embeddings(model)))
          == sorted(_ids(_old_interpolating_embeddings(model))))


def test_nested_layers_are_reached_and_shared_ones_listed_once(models):
  model = models["nested"]
  expected = ["images", "inner", "inner_in", "inner_conv", "inner_bn", "shared_bn", "seq",
              "seq_dw", "seq_hswish", "pool", "head"]
  assert _names(layer_walk.walk(model)) == expected
  # The fixture does exercise sharing: the old model.py walk listed `shared_bn` twice.
  assert _names(_old_model_all_layers(model)).count("shared_bn") == 2
  assert _names(layer_walk.walk(model, into="models", containers=False)) == [
      n for n in expected if n not in ("inner", "seq")]
  assert _names(layer_walk.walk(model.get_layer("seq"))) == ["seq_dw", "seq_hswish"]
  # The callers count what they change: each BatchNorm once.
  assert model_lib.set_batchnorm_momentum(model, 0.5) == 2
  assert [layer.momentum for layer in precise_bn.batchnorm_layers(model)] == [0.5, 0.5]
  assert fused_bn.fuse_batchnorm(model) == 2


def test_layers_held_by_layers_are_reached_but_graph_walks_keep_them_whole(models):
  model = models["holders"]
  assert _names(layer_walk.walk(model)) == [
      "images", "block", "block_conv", "block_bn", "pool", "encoder", "enc_dense_0",
      "enc_dense_1"]
  assert _names(layer_walk.walk(model, containers=False)) == [
      "images", "block_conv", "block_bn", "pool", "enc_dense_0", "enc_dense_1"]
  # Conversion and the export rewrite see the graph: a custom layer is one unit.
  assert _names(layer_walk.walk(model, into="models", containers=False)) == [
      "images", "block", "pool", "encoder"]
  assert model_lib.set_batchnorm_momentum(model, 0.5) == 1


def test_batchnorm_inside_keras_hub_efficientnet_blocks_is_reached(models):
  model = models["keras_hub_efficientnet"]
  block = model.get_layer("block1a_")
  assert type(block).__name__ == "FusedMBConvBlock"
  assert _names(precise_bn.batchnorm_layers(model)) == [
      "stem_bn", "block1a_expand_bn", "block1a_project_bn", "top_bn"]
  assert block.bn1 in precise_bn.batchnorm_layers(model)
  assert model_lib.set_batchnorm_momentum(model, 0.5) == 4   # the old walk set 2
  assert block.bn1.momentum == block.bn2.momentum == 0.5


def test_a_single_layer_is_walked_only_with_include_root():
  layer = L.Activation("hard_silu")
  assert layer_walk.walk(layer) == []
  assert layer_walk.walk(layer, include_root=True) == [layer]
  assert layer_walk.walk(layer, include_root=True, containers=False) == [layer]


def test_the_walks_callers_see_the_same_layers(models):
  dinov2 = models["keras_hub_dinov2"]
  assert _names(khp._interpolating_embeddings(dinov2)) == [
      layer.name for layer in _old_interpolating_embeddings(dinov2)] != []
  model = models["mobilenet_classifier"]
  assert not rewrite.needs_rewrite(model, int8=False) and rewrite.needs_rewrite(model, True)
  assert list(common.iter_leaf_layers(model)) == _once(_old_iter_leaf_layers(model))


def test_an_unknown_into_is_refused():
  with pytest.raises(ValueError, match="into='model'"):
    layer_walk.walk(keras.Sequential(), into="model")
