"""ViT-B/16: a Keras port of torchvision's vision_transformer.py, with its converter.

torchvision's ImageNet-1k recipe (ImageNet mean/std inputs); the backbone returns the
class token after the final LayerNorm. Any input size that is a multiple of the patch
size: the position embedding is sized for the (rows, columns) grid of patches, and
weights made at another size are resized torch-exactly (bicubic, align_corners=True, as
torchvision's `interpolate_embeddings`), both when converting and when
`weights="imagenet"` is loaded at a size other than 224.

The converter fills what torch lays out differently: nn.MultiheadAttention's packed
`in_proj_weight` (q, k, v stacked), `class_token` and `encoder.pos_embedding`.
Everything else maps by name (see `transformer`).
"""

from __future__ import annotations

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


# Custom layers: mixins, made Keras layers by `layer_classes()` (see blocks).


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
    ops = blocks.keras_ops()
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
    ops = blocks.keras_ops()
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
    return x + blocks.keras_ops().cast(self.pos_embedding, x.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape


class _TakeTokenMixin:
  """Selects token 0 (the class token): (B, L, D) -> (B, D)."""

  def call(self, x):
    return x[:, 0]

  def compute_output_shape(self, input_shape):
    return (input_shape[0], input_shape[2])


layer_classes = blocks.layer_classes(__name__, {
    "SelfAttention": _SelfAttentionMixin,
    "ClassToken": _ClassTokenMixin,
    "PositionEmbedding": _PositionEmbeddingMixin,
    "TakeToken": _TakeTokenMixin,
})


# Converter.


def assign_self_attention(layer, state: common.StateDict, prefix: str) -> list:
  """nn.MultiheadAttention <- packed in_proj (q; k; v rows) and out_proj."""
  key = f"{prefix}.in_proj_weight"
  weight = state.take(key, context=layer.name)
  if weight.ndim != 2:
    raise ConversionError(f"torch tensor {key!r} has shape "
                          f"{tuple(weight.shape)}; expected (3*D, D).")
  common.assign(layer.in_proj.kernel, weight.T, key, layer.name)
  key = f"{prefix}.in_proj_bias"
  common.assign(layer.in_proj.bias, state.take(key, context=layer.name), key,
                layer.name)
  done = [layer.in_proj.kernel, layer.in_proj.bias]
  return done + common.assign_dense(layer.out_proj, state, f"{prefix}.out_proj")


def _assign_top_level(layer, state: common.StateDict, prefix: str) -> list:
  """Layers owning one torch Parameter named by the layer's own path."""
  parent, _, _ = prefix.rpartition(".")
  return common.assign_generic(layer, state, parent)


def _vit_size(tensors: dict[str, np.ndarray], image_size: int | None) -> int:
  """Reads ViT's size from its position embedding; resizes it if asked."""
  key = "encoder.pos_embedding"
  if key not in tensors:
    raise ConversionError(f"Missing tensor {key!r} in the state_dict.")
  pos = tensors[key]
  patch = tensors["conv_proj.weight"].shape[-1] if (
      "conv_proj.weight" in tensors) else 16
  grid = int(round(np.sqrt(pos.shape[1] - 1)))
  if pos.ndim != 3 or grid * grid != pos.shape[1] - 1:
    raise ConversionError(f"torch tensor {key!r} has shape {pos.shape}; "
                          "expected (1, 1 + g*g, D).")
  if image_size is None:
    return grid * patch
  if image_size % patch:
    raise ConversionError(f"ViT image_size {image_size} is not a multiple of "
                          f"the patch size {patch}.")
  tensors[key] = interpolate_pos_embedding(
      pos, image_size // patch)
  return image_size


def _assigners() -> list:
  layers = layer_classes()
  return [
      (layers.SelfAttention, assign_self_attention),
      (layers.ClassToken, _assign_top_level),
      (layers.PositionEmbedding, _assign_top_level),
  ]


transformer.register(
    "vit_b_16",
    transformer.Port(
        build=build_vit,
        torch_url="https://download.pytorch.org/models/vit_b_16-c867db91.pth",
        head="heads.head", assigners=_assigners, checkpoint_size=_vit_size,
        resize_copy=copy_weights),
    params_m=86.0, imagenet_top1=81.1, feature_dim=768,
    description=("ViT-B/16 (Dosovitskiy et al. 2021), Keras port of "
                 "torchvision vit_b_16 (ImageNet-1k); returns the class "
                 "token; size must be a multiple of 16"))
