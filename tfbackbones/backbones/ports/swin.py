"""Swin-T and SwinV2-T: Keras ports of torchvision's swin_transformer.py, with converter.

Layout of torchvision `SwinTransformer.features`: [0] patch embedding (conv, permute,
LayerNorm), [1, 3, 5, 7] the stages, [2, 4, 6] patch merging; then `norm`. What
torchvision computes on the fly (window padding to a multiple of the window, the cyclic
shift and its attention mask, the relative position index, SwinV2's log-spaced
coordinate table) is computed the same way, as constants fixed by the input size at
build time. Training-time behaviour matches too: stochastic depth 0.2, linearly
increasing per block, as torchvision's `swin_t`/`swin_v2_t` (identity at inference).

The converter (`assign_swin_attention`) fills the attention layers torch lays out
differently: `qkv`/`proj` Linears, the `relative_position_bias_table` (v1) or
`logit_scale` and `cpb_mlp` (v2); the buffers torch saves (`relative_position_index`,
v2's `relative_coords_table`) are checked against what the port computes, so a
checkpoint for another window size fails loudly instead of mixing up biases. Everything
else maps by name (see `transformer`).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from tfbackbones import imagesize
from tfbackbones.backbones.ports import blocks, transformer
from tfbackbones.backbones.ports.blocks import torch_conv_init
from tfbackbones.convert import common
from tfbackbones.convert.registry import ConversionError

if TYPE_CHECKING:
  import keras


_SWIN = dict(patch=4, embed_dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24))


def build_swin(version: int, image_size, *, include_top: bool = False,
               num_classes: int = 1000, name: str = "swin",
               stochastic_depth_prob: float = 0.2) -> keras.Model:
  """Builds torchvision's swin_t (version 1) or swin_v2_t (version 2).

  Layout of torchvision `SwinTransformer.features`: [0] patch embedding
  (conv, permute, LayerNorm), [1, 3, 5, 7] the stages, [2, 4, 6] patch
  merging; then `norm`, and for the classifier `avgpool` and `head`.

  Args:
    version: 1 (Swin, window 7) or 2 (SwinV2, window 8).
    image_size: (height, width) or an int; any size >= 4 (windows are padded
      per axis as torchvision does).
    include_top: Add average pooling and the Dense `head`.
    num_classes: Head width.
    name: Model name.
    stochastic_depth_prob: Largest drop-path rate (last block), as
      torchvision's builder (0.2).

  Returns:
    Model (B, H, W, 3) -> (B, h, w, 768) normed features, or logits.
  """
  import keras

  layers_ = layer_classes()
  window = 7 if version == 1 else 8
  eps = 1e-5
  dense_init = dict(kernel_initializer=keras.initializers.TruncatedNormal(
      stddev=0.02), bias_initializer="zeros")
  inputs = keras.Input((*imagesize.require(image_size), 3), name="images")
  x = keras.layers.Conv2D(_SWIN["embed_dim"], _SWIN["patch"],
                          strides=_SWIN["patch"], name="features.0.0",
                          **torch_conv_init(3 * _SWIN["patch"]**2))(inputs)
  x = keras.layers.LayerNormalization(epsilon=eps, name="features.0.2")(x)
  total = sum(_SWIN["depths"])
  block_id = 0
  for stage, (depth, heads) in enumerate(zip(_SWIN["depths"],
                                             _SWIN["heads"])):
    dim = _SWIN["embed_dim"] * 2**stage
    for i in range(depth):
      prefix = f"features.{2 * stage + 1}.{i}"
      rate = stochastic_depth_prob * block_id / (total - 1)
      attn = layers_.SwinWindowAttention(
          dim, heads, window, 0 if i % 2 == 0 else window // 2,
          version=version, name=f"{prefix}.attn")
      norm1 = keras.layers.LayerNormalization(epsilon=eps,
                                              name=f"{prefix}.norm1")
      norm2 = keras.layers.LayerNormalization(epsilon=eps,
                                              name=f"{prefix}.norm2")
      mlp = [keras.layers.Dense(4 * dim, activation="gelu",
                                name=f"{prefix}.mlp.0", **dense_init),
             keras.layers.Dense(dim, name=f"{prefix}.mlp.3", **dense_init)]
      # The branches are applied right below, in this iteration; defaults bind the
      # iteration's layers all the same.
      def mlp_fn(t, mlp=mlp):
        return mlp[1](mlp[0](t))
      if version == 1:
        branches = (lambda t, a=attn, n=norm1: a(n(t)),
                    lambda t, m=mlp_fn, n=norm2: m(n(t)))
      else:  # res-post-norm
        branches = (lambda t, a=attn, n=norm1: n(a(t)),
                    lambda t, m=mlp_fn, n=norm2: n(m(t)))
      for j, branch in enumerate(branches):
        y = branch(x)
        if rate > 0:
          y = layers_.StochasticDepth(
              rate, name=f"{prefix}.stochastic_depth.{j}")(y)
        x = keras.layers.Add(name=f"{prefix}.add.{j}")([x, y])
      block_id += 1
    if stage < len(_SWIN["depths"]) - 1:
      prefix = f"features.{2 * stage + 2}"
      x = layers_.PatchMergingPad(name=f"{prefix}.pad")(x)
      reduction = keras.layers.Dense(2 * dim, use_bias=False,
                                     name=f"{prefix}.reduction", **dense_init)
      if version == 1:
        x = keras.layers.LayerNormalization(epsilon=eps,
                                            name=f"{prefix}.norm")(x)
        x = reduction(x)
      else:
        x = keras.layers.LayerNormalization(epsilon=eps,
                                            name=f"{prefix}.norm")(
                                                reduction(x))
  x = keras.layers.LayerNormalization(epsilon=eps, name="norm")(x)
  if include_top:
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = keras.layers.Dense(num_classes, name="head", **dense_init)(x)
  return keras.Model(inputs, x, name=name)


# Constants torchvision computes in its Swin modules.


def relative_position_index(window: int) -> np.ndarray:
  """torchvision's `relative_position_index` (flat, window**4 entries)."""
  coords = np.stack(np.meshgrid(np.arange(window), np.arange(window),
                                indexing="ij")).reshape(2, -1)
  rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
  rel = rel + (window - 1)
  return (rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]).reshape(-1)


def relative_coords_table(window: int) -> np.ndarray:
  """SwinV2's log-spaced (1, 2w-1, 2w-1, 2) coordinate table, float32."""
  r = np.arange(-(window - 1), window, dtype=np.float32)
  table = np.stack(np.meshgrid(r, r, indexing="ij")).transpose(1, 2, 0)[None]
  table = table / np.float32(window - 1) * np.float32(8)
  return (np.sign(table) * np.log2(np.abs(table) + 1.0) / 3.0).astype(
      np.float32)


def shifted_window_mask(height: int, width: int, window: int,
                        shift: tuple[int, int]) -> np.ndarray:
  """torchvision's attention mask for shifted windows on a padded map.

  Args:
    height: Padded height (a multiple of `window`).
    width: Padded width.
    window: Window size.
    shift: (shift_h, shift_w) after torchvision's no-shift rule.

  Returns:
    Array (num_windows, window**2, window**2): 0 within a region, -100
    across regions.
  """
  region = np.zeros((height, width), np.float32)
  count = 0
  for h in ((0, -window), (-window, -shift[0]), (-shift[0], None)):
    for w in ((0, -window), (-window, -shift[1]), (-shift[1], None)):
      region[h[0]:h[1], w[0]:w[1]] = count
      count += 1
  region = region.reshape(height // window, window, width // window, window)
  region = region.transpose(0, 2, 1, 3).reshape(-1, window * window)
  diff = region[:, None, :] - region[:, :, None]
  return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


# Custom layers: mixins, made Keras layers by `layer_classes()` (see blocks).


class _StochasticDepthMixin:
  """torchvision StochasticDepth(mode="row"): drops whole residual branches.

  In training each sample's branch is zeroed with probability `rate` and
  kept ones are scaled by 1/(1-rate); identity at inference.
  """

  def __init__(self, rate: float, seed: int | None = None, **kwargs):
    import keras
    super().__init__(**kwargs)
    self.rate = float(rate)
    self.seed = seed
    self.seed_generator = keras.random.SeedGenerator(seed)

  def call(self, x, training=None):
    import keras
    if not training or self.rate <= 0:
      return x
    ops = blocks.keras_ops()
    keep = 1.0 - self.rate
    shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
    noise = keras.random.uniform(shape, seed=self.seed_generator)
    mask = ops.cast(noise < keep, x.dtype)
    return x * mask / ops.cast(keep, x.dtype) if keep > 0 else x * mask

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class _PatchMergingPadMixin:
  """torchvision `_patch_merging_pad`: pad to even, 2x2 neighbours to chans.

  Channel order x0 (even row, even col), x1 (odd row, even col), x2 (even,
  odd), x3 (odd, odd), as torch concatenates them.
  """

  def call(self, x):
    ops = blocks.keras_ops()
    h, w = x.shape[1], x.shape[2]
    if h % 2 or w % 2:
      x = ops.pad(x, [[0, 0], [0, h % 2], [0, w % 2], [0, 0]])
    return ops.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2],
                            x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)

  def compute_output_shape(self, input_shape):
    b, h, w, c = input_shape
    return (b, (h + 1) // 2, (w + 1) // 2, 4 * c)


class _SwinWindowAttentionMixin:
  """torchvision ShiftedWindowAttention (version 1) or ...V2 (version 2).

  Sub-layers and weights carry the torch names: `qkv`, `proj`,
  `relative_position_bias_table` (v1); `logit_scale`, `cpb_mlp.0`,
  `cpb_mlp.2` (v2). Padding, shift and mask follow the input size given at
  build time, with torchvision's rule that a window at least as large as the
  padded map is not shifted.
  """

  def __init__(self, dim: int, num_heads: int, window_size: int,
               shift_size: int, version: int = 1, **kwargs):
    import keras
    super().__init__(**kwargs)
    self.dim, self.num_heads = int(dim), int(num_heads)
    self.window_size, self.shift_size = int(window_size), int(shift_size)
    self.version = int(version)
    init = dict(kernel_initializer=keras.initializers.TruncatedNormal(
        stddev=0.02), bias_initializer="zeros")
    self.qkv = keras.layers.Dense(3 * dim, name="qkv", **init)
    self.proj = keras.layers.Dense(dim, name="proj", **init)
    if self.version == 2:
      self.cpb_mlp_0 = keras.layers.Dense(512, activation="relu",
                                          name="cpb_mlp.0", **init)
      self.cpb_mlp_2 = keras.layers.Dense(num_heads, use_bias=False,
                                          name="cpb_mlp.2", **init)

  def build(self, input_shape):
    import keras
    _, h, w, c = input_shape
    if c != self.dim:
      raise ValueError(f"{self.name}: expected {self.dim} channels, got {c}.")
    ws = self.window_size
    self.hw = (h, w)
    self.padded = (h + (ws - h % ws) % ws, w + (ws - w % ws) % ws)
    self.shifts = tuple(0 if ws >= p else self.shift_size
                        for p in self.padded)
    self.index = relative_position_index(ws)
    self.mask = (shifted_window_mask(*self.padded, ws, self.shifts)
                 if sum(self.shifts) else None)
    self.qkv.build((None, self.dim))
    self.proj.build((None, self.dim))
    if self.version == 1:
      self.relative_position_bias_table = self.add_weight(
          shape=((2 * ws - 1)**2, self.num_heads),
          initializer=keras.initializers.TruncatedNormal(stddev=0.02),
          name="relative_position_bias_table")
    else:
      self.coords_table = relative_coords_table(ws)
      self.logit_scale = self.add_weight(
          shape=(self.num_heads, 1, 1),
          initializer=keras.initializers.Constant(math.log(10.0)),
          name="logit_scale")
      self.cpb_mlp_0.build((None, 2))
      self.cpb_mlp_2.build((None, 512))
      # torchvision zeroes the key bias of v2 at every forward pass.
      self.qkv_bias_mask = np.concatenate(
          [np.ones(self.dim), np.zeros(self.dim), np.ones(self.dim)]).astype(
              np.float32)
    self.built = True

  def relative_position_bias(self, dtype):
    """(1, heads, N, N) bias, computed from the weights as torchvision."""
    ops = blocks.keras_ops()
    n = self.window_size**2
    if self.version == 1:
      table = self.relative_position_bias_table
    else:
      table = self.cpb_mlp_2(self.cpb_mlp_0(
          ops.convert_to_tensor(self.coords_table, self.compute_dtype)))
      table = ops.reshape(table, (-1, self.num_heads))
    bias = ops.take(ops.cast(table, "float32"), self.index, axis=0)
    bias = ops.transpose(ops.reshape(bias, (n, n, self.num_heads)), (2, 0, 1))
    if self.version == 2:
      bias = 16.0 * ops.sigmoid(bias)
    return ops.cast(bias[None], dtype)

  def call(self, x):
    ops = blocks.keras_ops()
    dtype = x.dtype
    (h, w), (ph, pw), ws = self.hw, self.padded, self.window_size
    c, heads = self.dim, self.num_heads
    if (ph, pw) != (h, w):
      x = ops.pad(x, [[0, 0], [0, ph - h], [0, pw - w], [0, 0]])
    if sum(self.shifts):
      x = ops.roll(x, shift=(-self.shifts[0], -self.shifts[1]), axis=(1, 2))
    nh, nw, n = ph // ws, pw // ws, ws * ws
    x = ops.reshape(x, (-1, nh, ws, nw, ws, c))
    x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, n, c))
    bias = ops.cast(self.qkv.bias, dtype)
    if self.version == 2:
      bias = bias * ops.cast(self.qkv_bias_mask, dtype)
    qkv = ops.matmul(x, ops.cast(self.qkv.kernel, dtype)) + bias
    qkv = ops.transpose(ops.reshape(qkv, (-1, n, 3, heads, c // heads)),
                        (2, 0, 3, 1, 4))
    q, k, v = qkv[0], qkv[1], qkv[2]
    if self.version == 1:
      q = q * ops.cast((c // heads)**-0.5, dtype)
      attn = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
    else:
      # Cosine attention, F.normalize(eps=1e-12), in float32: the eps
      # underflows in float16, and zero-padded tokens have zero keys (v2
      # zeroes the key bias), so 0/0 would poison the softmax.
      q, k = ops.cast(q, "float32"), ops.cast(k, "float32")
      q = q / ops.maximum(ops.sqrt(ops.sum(q * q, -1, keepdims=True)), 1e-12)
      k = k / ops.maximum(ops.sqrt(ops.sum(k * k, -1, keepdims=True)), 1e-12)
      attn = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
      scale = ops.exp(ops.minimum(ops.cast(self.logit_scale, "float32"),
                                  math.log(100.0)))
      attn = ops.cast(attn * scale, dtype)
    attn = attn + self.relative_position_bias(dtype)
    if self.mask is not None:
      attn = ops.reshape(attn, (-1, nh * nw, heads, n, n))
      attn = attn + ops.cast(self.mask[None, :, None], dtype)
      attn = ops.reshape(attn, (-1, heads, n, n))
    attn = ops.softmax(attn, axis=-1)
    x = ops.reshape(ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3)),
                    (-1, n, c))
    x = self.proj(x)
    x = ops.reshape(x, (-1, nh, nw, ws, ws, c))
    x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, ph, pw, c))
    if sum(self.shifts):
      x = ops.roll(x, shift=self.shifts, axis=(1, 2))
    if (ph, pw) != (h, w):
      x = x[:, :h, :w, :]
    return x

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "dim": self.dim,
            "num_heads": self.num_heads, "window_size": self.window_size,
            "shift_size": self.shift_size, "version": self.version}


layer_classes = blocks.layer_classes(__name__, {
    "StochasticDepth": _StochasticDepthMixin,
    "PatchMergingPad": _PatchMergingPadMixin,
    "SwinWindowAttention": _SwinWindowAttentionMixin,
})


# Converter: the attention layers; the rest maps by name.


def _check_buffer(state: common.StateDict, key: str, expected: np.ndarray,
                  layer_name: str) -> None:
  """Consumes a torch buffer the port recomputes, and checks it agrees."""
  value = state.take(key, context=layer_name)
  if value.size != expected.size or not np.allclose(
      value.reshape(-1).astype(np.float64),
      expected.reshape(-1).astype(np.float64), atol=1e-6):
    raise ConversionError(
        f"torch buffer {key!r} (shape {tuple(value.shape)}) differs from what "
        f"Keras layer {layer_name!r} computes (shape {expected.shape}): the "
        "checkpoint was made for another window size.")


def assign_swin_attention(layer, state: common.StateDict, prefix: str) -> list:
  """ShiftedWindowAttention(V2) <- qkv, proj, bias table or cpb_mlp."""
  done = common.assign_dense(layer.qkv, state, f"{prefix}.qkv")
  done += common.assign_dense(layer.proj, state, f"{prefix}.proj")
  _check_buffer(state, f"{prefix}.relative_position_index", layer.index,
                layer.name)
  if layer.version == 1:
    key = f"{prefix}.relative_position_bias_table"
    common.assign(layer.relative_position_bias_table,
                  state.take(key, context=layer.name), key, layer.name)
    return done + [layer.relative_position_bias_table]
  _check_buffer(state, f"{prefix}.relative_coords_table", layer.coords_table,
                layer.name)
  key = f"{prefix}.logit_scale"
  common.assign(layer.logit_scale, state.take(key, context=layer.name), key,
                layer.name)
  done.append(layer.logit_scale)
  done += common.assign_dense(layer.cpb_mlp_0, state, f"{prefix}.cpb_mlp.0")
  done += common.assign_dense(layer.cpb_mlp_2, state, f"{prefix}.cpb_mlp.2")
  return done


def _assigners() -> list:
  return [(layer_classes().SwinWindowAttention, assign_swin_attention)]


# (name, version, torchvision weights file, params_m, imagenet_top1, description)
_SPECS = (
    ("swin_t", 1, "swin_t-704ceda3.pth", 28.3, 81.47,
     "Swin-T (Liu et al. 2021), Keras port of torchvision swin_t; any input size; "
     "returns the normed final map (paper backbone)"),
    ("swinv2_t", 2, "swin_v2_t-b137f0e2.pth", 28.4, 82.07,
     "SwinV2-T (Liu et al. 2022), Keras port of torchvision swin_v2_t, window 8; "
     "returns the normed final map (paper backbone)"),
)
for _name, _version, _file, _params_m, _top1, _description in _SPECS:
  transformer.register(
      _name,
      transformer.Port(build=functools.partial(build_swin, _version),
                       torch_url="https://download.pytorch.org/models/" + _file,
                       head="head", assigners=_assigners),
      params_m=_params_m, imagenet_top1=_top1, feature_dim=768,
      description=_description)
