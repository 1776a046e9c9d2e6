"""Keras 3 ports of torchvision Swin-T, SwinV2-T, ViT-B/16 and WaveMix-192/16.

Why ports: Keras has none of these models (keras-hub's Swin/ViT have other
layer layouts and their presets need the network; the `swin_tiny`/`vit_b16`
hub specs are fixed-size SavedModels that cannot train at random init or at
256 px). The paper fine-tunes the torchvision models (WaveMix: the official
code), so these ports mirror that layer structure module for module:

* every Keras layer that holds weights is named after the PyTorch module path
  (`features.1.0.attn`, `encoder.layers.encoder_layer_3.mlp.0`, ...), so that
  `tfbackbones.convert.torchvision_transformers` maps a state_dict one to one;
* what torchvision computes on the fly (window padding to a multiple of the
  window, the cyclic shift and its attention mask, the relative position
  index, SwinV2's log-spaced coordinate table) is computed the same way, as
  constants fixed by the input size at build time;
* training-time behaviour matches too: Swin's stochastic depth (0.2,
  linearly increasing per block, as torchvision's `swin_t`/`swin_v2_t`),
  WaveMix's dropout 0.5; both are identity at inference.

Spec facts: params_m and imagenet_top1 are docs/protocol.md's (the torchvision
weight tables; WaveMix: the paper's 75.32 although the released file is named
75.06). All four take ImageNet mean/std inputs ("torch" preprocessing).

Relation to the hub specs: `swin_tiny` (hub) and `swin_t` (here) are the same
architecture and ImageNet top-1; `vit_b16` (hub, ImageNet-21k -> 1k, [-1, 1]
inputs, 224 px only) and `vit_b_16` (here, torchvision's ImageNet-1k recipe,
ImageNet mean/std) differ in weights and input scaling.

Pretrained weights: `weights="imagenet"` loads
`$KERAS_HOME/models/<name>_notop.weights.h5`, written by the converter from the
torchvision (or official WaveMix) `.pth` file; there is nothing to download
offline. ViT's position embedding is resized (torch-exact bicubic,
align_corners=True, as torchvision's `interpolate_embeddings`) when the
weights were converted at another size.

Importing this module registers the specs and imports neither TensorFlow nor
Keras (the registry stays fast to list). The custom layers are plain mixin
classes here, turned into Keras layers on first build by `layer_classes()`.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tfbackbones import imagesize
from tfbackbones.backbones import registry
from tfbackbones.backbones import weights as weights_lib
from tfbackbones.backbones.torch_init import torch_conv_init

if TYPE_CHECKING:
  import keras

SOURCE = "tfbackbones"  # implemented in this project (registry.SOURCES)

_TORCH_URLS = {
    "swin_t": "https://download.pytorch.org/models/swin_t-704ceda3.pth",
    "swinv2_t": "https://download.pytorch.org/models/swin_v2_t-b137f0e2.pth",
    "vit_b_16": "https://download.pytorch.org/models/vit_b_16-c867db91.pth",
    "wavemix_192_16": (
        "https://huggingface.co/cloudwalker/wavemix/resolve/main/"
        "Saved_Models_Weights/ImageNet/wavemix_192_16_75.06.pth"),
}


# --------------------------------------------------------------------------
# Specs and the shared weights policy.
# --------------------------------------------------------------------------


def notop_weights_file(name: str) -> str:
  """Returns the file name the converter writes for a port's backbone."""
  return weights_lib.ported_weights_file(name)


def _imagenet_path(spec: registry.BackboneSpec) -> str:
  """Finds the converted ImageNet weights, or explains how to make them."""
  return weights_lib.ported_imagenet_path(spec, _TORCH_URLS[spec.name])


def build_port(spec: registry.BackboneSpec, image_size,
               weights: str) -> keras.Model:
  """Builder shared by the four ports: build, then load weights if asked.

  Args:
    spec: The port's spec.
    image_size: (height, width), or an int for a square input.
    weights: "imagenet", "none" or a weights file path.

  Returns:
    The backbone, named `spec.name`.
  """
  choice = weights_lib.parse_weights_arg(weights)
  path = None
  if choice == "imagenet":
    path = _imagenet_path(spec)
  elif choice != "none":
    path = weights_lib.check_weights_path(choice)
  image_size = imagesize.require(image_size)
  model = build_backbone(spec.name, image_size)
  if path is None:
    return model
  if spec.name == "vit_b_16" and choice == "imagenet" and image_size != (224, 224):
    source = build_backbone(spec.name, 224)
    weights_lib.load_weights_file(source, path, spec.name)
    copy_weights(source, model)
  else:
    weights_lib.load_weights_file(model, path, spec.name)
  return model


def build_backbone(name: str, image_size, *, include_top: bool = False,
                   num_classes: int = 1000) -> keras.Model:
  """Builds a port by registry name (feature extractor or ImageNet model).

  Args:
    name: One of swin_t, swinv2_t, vit_b_16, wavemix_192_16.
    image_size: (height, width), or an int for a square input.
    include_top: Add the reference classifier head (for conversion tests).
    num_classes: Width of that head.

  Returns:
    Functional model named `name` (backbone) or `name + "_classifier"`.
  """
  model_name = f"{name}_classifier" if include_top else name
  if name in ("swin_t", "swinv2_t"):
    return build_swin(1 if name == "swin_t" else 2, image_size,
                      include_top=include_top, num_classes=num_classes,
                      name=model_name)
  if name == "vit_b_16":
    return build_vit(image_size, include_top=include_top,
                     num_classes=num_classes, name=model_name)
  if name == "wavemix_192_16":
    from tfbackbones.backbones import wavemix
    return wavemix.build_wavemix(image_size, include_top=include_top,
                                 num_classes=num_classes, name=model_name)
  raise ValueError(f"Unknown port {name!r}.")


def _register(name: str, *, params_m: float, imagenet_top1: float,
              feature_dim: int, description: str) -> None:
  registry.register(registry.BackboneSpec(
      name=name,
      source=SOURCE,
      default_size=224,
      preprocessing="torch",
      params_m=params_m,
      imagenet_top1=imagenet_top1,
      feature_dim=feature_dim,
      weights_file=notop_weights_file(name),
      description=description,
      builder=build_port,
  ))


_register("swin_t", params_m=28.3, imagenet_top1=81.47, feature_dim=768,
          description=("Swin-T (Liu et al. 2021), Keras port of torchvision "
                       "swin_t; any input size; returns the normed final map "
                       "(paper backbone)"))
_register("swinv2_t", params_m=28.4, imagenet_top1=82.07, feature_dim=768,
          description=("SwinV2-T (Liu et al. 2022), Keras port of torchvision "
                       "swin_v2_t, window 8; returns the normed final map "
                       "(paper backbone)"))
_register("vit_b_16", params_m=86.0, imagenet_top1=81.1, feature_dim=768,
          description=("ViT-B/16 (Dosovitskiy et al. 2021), Keras port of "
                       "torchvision vit_b_16 (ImageNet-1k); returns the class "
                       "token; size must be a multiple of 16"))
_register("wavemix_192_16", params_m=27.9, imagenet_top1=75.32,
          feature_dim=192,
          description=("WaveMix-192/16 level 3 (Jeevan et al. 2022), Keras "
                       "port of the official code; size a multiple of 32 "
                       "(paper backbone)"))


def copy_weights(source: keras.Model, target: keras.Model) -> None:
  """Copies weights layer by layer between two sizes of the same port.

  Only ViT's position embedding depends on the input size; it is resized the
  way torchvision does it (and, for a non-square target, separably to its
  (rows, columns) grid of patches).

  Args:
    source: Model holding the weights.
    target: Same architecture, possibly built for another input size.
  """
  for layer in target.layers:
    values = source.get_layer(layer.name).get_weights()
    if layer.name == "encoder.pos_embedding":
      patch = target.get_layer("conv_proj").kernel_size
      _, height, width, _ = target.input_shape
      values = [interpolate_pos_embedding(
          values[0], (height // patch[0], width // patch[1]))]
    layer.set_weights(values)


def _bicubic_matrix(size_in: int, size_out: int) -> np.ndarray:
  """1-D interpolation matrix of torch bicubic, align_corners=True (A=-0.75).

  Border taps are clamped, as in ATen's upsample_bicubic2d.
  """
  a = -0.75
  matrix = np.zeros((size_out, size_in), np.float64)
  scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
  for dst in range(size_out):
    real = scale * dst
    base = int(math.floor(real))
    t = real - base
    coeffs = (((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
              ((a + 2) * t - (a + 3)) * t * t + 1,
              ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
              ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a)
    for k, c in enumerate(coeffs):
      matrix[dst, min(max(base - 1 + k, 0), size_in - 1)] += c
  return matrix


def interpolate_pos_embedding(pos_embedding: np.ndarray,
                              grid) -> np.ndarray:
  """Resizes a (1, 1 + g*g, D) ViT position embedding to a new grid.

  Same result as torchvision.models.vision_transformer.interpolate_embeddings
  (bicubic, align_corners=True; the class-token entry is kept). torchvision
  only resizes to square grids; a (rows, columns) grid applies the same 1-D
  bicubic operator to each axis, which is what `F.interpolate(size=(r, c))`
  would do (tests compare with it).

  Args:
    pos_embedding: The embedding, class token first.
    grid: New patches per side, or (rows, columns).

  Returns:
    Array (1, 1 + rows*columns, D), float32.
  """
  _, length, dim = pos_embedding.shape
  old = int(round(math.sqrt(length - 1)))
  if old * old != length - 1:
    raise ValueError(f"Position embedding length {length} is not 1 + a "
                     "square.")
  rows, cols = (grid, grid) if isinstance(grid, (int, np.integer)) else grid
  if (old, old) == (rows, cols):
    return pos_embedding
  image = pos_embedding[0, 1:].reshape(old, old, dim).astype(np.float64)
  m_rows, m_cols = _bicubic_matrix(old, rows), _bicubic_matrix(old, cols)
  resized = np.einsum("ij,jkd,lk->ild", m_rows, image, m_cols).reshape(
      rows * cols, dim)
  out = np.concatenate([pos_embedding[0, :1], resized], axis=0)[None]
  return out.astype(np.float32)


# --------------------------------------------------------------------------
# Model builders.
# --------------------------------------------------------------------------

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


def build_vit(image_size, *, include_top: bool = False,
              num_classes: int = 1000, name: str = "vit_b_16",
              patch_size: int = 16, num_layers: int = 12, num_heads: int = 12,
              hidden_dim: int = 768, mlp_dim: int = 3072) -> keras.Model:
  """Builds torchvision's VisionTransformer (defaults: vit_b_16).

  Args:
    image_size: (height, width) or an int, each a multiple of `patch_size`
      (torchvision asserts it too); the position embedding is sized for the
      (rows, columns) grid of patches.
    include_top: Add the Dense `heads.head`.
    num_classes: Head width.
    name: Model name.
    patch_size: Patch size.
    num_layers: Encoder blocks.
    num_heads: Attention heads.
    hidden_dim: Token width.
    mlp_dim: MLP hidden width.

  Returns:
    Model (B, H, W, 3) -> (B, hidden_dim) class token after the final
    LayerNorm, or logits.
  """
  import keras

  height, width = imagesize.require(image_size)
  if height % patch_size or width % patch_size:
    raise ValueError(f"ViT input height and width must be multiples of "
                     f"{patch_size}, got {imagesize.text(image_size)}.")
  layers_ = layer_classes()
  eps = 1e-6
  rows, cols = height // patch_size, width // patch_size
  inputs = keras.Input((height, width, 3), name="images")
  fan_in = 3 * patch_size * patch_size
  x = keras.layers.Conv2D(
      hidden_dim, patch_size, strides=patch_size, name="conv_proj",
      kernel_initializer=keras.initializers.TruncatedNormal(
          stddev=math.sqrt(1 / fan_in)), bias_initializer="zeros")(inputs)
  # (B, h, w, D) -> (B, h*w, D): row-major, as torch's reshape + permute.
  x = keras.layers.Reshape((rows * cols, hidden_dim), name="flatten")(x)
  x = layers_.ClassToken(name="class_token")(x)
  x = layers_.PositionEmbedding(name="encoder.pos_embedding")(x)
  mlp_init = dict(kernel_initializer="glorot_uniform",
                  bias_initializer=keras.initializers.RandomNormal(
                      stddev=1e-6))
  for i in range(num_layers):
    prefix = f"encoder.layers.encoder_layer_{i}"
    y = keras.layers.LayerNormalization(epsilon=eps, name=f"{prefix}.ln_1")(x)
    y = layers_.SelfAttention(num_heads, name=f"{prefix}.self_attention")(y)
    x = keras.layers.Add(name=f"{prefix}.add.0")([x, y])
    y = keras.layers.LayerNormalization(epsilon=eps, name=f"{prefix}.ln_2")(x)
    y = keras.layers.Dense(mlp_dim, activation="gelu", name=f"{prefix}.mlp.0",
                           **mlp_init)(y)
    y = keras.layers.Dense(hidden_dim, name=f"{prefix}.mlp.3", **mlp_init)(y)
    x = keras.layers.Add(name=f"{prefix}.add.1")([x, y])
  x = keras.layers.LayerNormalization(epsilon=eps, name="encoder.ln")(x)
  x = layers_.TakeToken(name="take_class_token")(x)
  if include_top:
    x = keras.layers.Dense(num_classes, name="heads.head",
                           kernel_initializer="zeros",
                           bias_initializer="zeros")(x)
  return keras.Model(inputs, x, name=name)


# --------------------------------------------------------------------------
# Constants torchvision computes in its Swin modules.
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Custom layers (mixins; `layer_classes()` makes them Keras layers).
# --------------------------------------------------------------------------


def _ops():
  from keras import ops
  return ops


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
    ops = _ops()
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
    ops = _ops()
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
    ops = _ops()
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
    ops = _ops()
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


class _SelfAttentionMixin:
  """torch nn.MultiheadAttention(batch_first=True) used as self-attention.

  `in_proj` holds torch's packed in_proj_weight/in_proj_bias (q, k, v
  stacked), `out_proj` its out_proj.
  """

  def __init__(self, num_heads: int, **kwargs):
    super().__init__(**kwargs)
    self.num_heads = int(num_heads)

  def build(self, input_shape):
    import keras
    dim = input_shape[-1]
    if dim % self.num_heads:
      raise ValueError(f"{self.name}: {dim} channels, {self.num_heads} heads.")
    self.in_proj = keras.layers.Dense(3 * dim, name="in_proj",
                                      kernel_initializer="glorot_uniform",
                                      bias_initializer="zeros")
    # torch: out_proj keeps nn.Linear's weight init, its bias is zeroed.
    self.out_proj = keras.layers.Dense(
        dim, name="out_proj", bias_initializer="zeros",
        kernel_initializer=torch_conv_init(dim)["kernel_initializer"])
    self.in_proj.build((None, dim))
    self.out_proj.build((None, dim))
    self.built = True

  def call(self, x):
    ops = _ops()
    length, dim = x.shape[1], x.shape[2]
    hd = dim // self.num_heads
    qkv = ops.reshape(self.in_proj(x), (-1, length, 3, self.num_heads, hd))
    qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))
    q = qkv[0] * ops.cast(hd**-0.5, x.dtype)
    attn = ops.softmax(ops.matmul(q, ops.transpose(qkv[1], (0, 1, 3, 2))),
                       axis=-1)
    out = ops.transpose(ops.matmul(attn, qkv[2]), (0, 2, 1, 3))
    return self.out_proj(ops.reshape(out, (-1, length, dim)))

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "num_heads": self.num_heads}


class _ClassTokenMixin:
  """Prepends torchvision's learned `class_token` (1, 1, D) to the tokens."""

  def build(self, input_shape):
    self.class_token = self.add_weight(shape=(1, 1, input_shape[-1]),
                                       initializer="zeros",
                                       name="class_token")
    self.built = True

  def call(self, x):
    ops = _ops()
    token = ops.broadcast_to(ops.cast(self.class_token, x.dtype),
                             (ops.shape(x)[0], 1, x.shape[-1]))
    return ops.concatenate([token, x], axis=1)

  def compute_output_shape(self, input_shape):
    b, n, d = input_shape
    return (b, None if n is None else n + 1, d)


class _PositionEmbeddingMixin:
  """Adds torchvision's `encoder.pos_embedding` (1, L, D), sized at build."""

  def build(self, input_shape):
    import keras
    self.pos_embedding = self.add_weight(
        shape=(1, input_shape[1], input_shape[2]),
        initializer=keras.initializers.RandomNormal(stddev=0.02),
        name="pos_embedding")
    self.built = True

  def call(self, x):
    return x + _ops().cast(self.pos_embedding, x.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape


class _TakeTokenMixin:
  """Selects token 0 (the class token): (B, L, D) -> (B, D)."""

  def call(self, x):
    return x[:, 0]

  def compute_output_shape(self, input_shape):
    return (input_shape[0], input_shape[2])


_MIXINS: dict[str, type] = {
    "StochasticDepth": _StochasticDepthMixin,
    "PatchMergingPad": _PatchMergingPadMixin,
    "SwinWindowAttention": _SwinWindowAttentionMixin,
    "SelfAttention": _SelfAttentionMixin,
    "ClassToken": _ClassTokenMixin,
    "PositionEmbedding": _PositionEmbeddingMixin,
    "TakeToken": _TakeTokenMixin,
}


@functools.cache
def layer_classes() -> types.SimpleNamespace:
  """Returns the custom Keras layer classes, creating them on first call.

  Each is `class Name(_NameMixin, keras.layers.Layer)`, registered for
  serialization as `tfbackbones>Name`. Deferred so that importing the
  registry does not import Keras.

  Returns:
    Namespace with one attribute per class name in `_MIXINS`.
  """
  import keras

  classes = {}
  for cls_name, mixin in _MIXINS.items():
    cls = type(cls_name, (mixin, keras.layers.Layer),
               {"__module__": __name__, "__doc__": mixin.__doc__})
    classes[cls_name] = keras.saving.register_keras_serializable(
        package="tfbackbones")(cls)
  return types.SimpleNamespace(**classes)


def __getattr__(name: str) -> Callable[..., Any]:
  """Module attribute access to the lazily created layer classes."""
  if name in _MIXINS:
    return getattr(layer_classes(), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
