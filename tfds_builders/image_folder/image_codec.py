"""Turns any image file into bytes that a TFDS `Image(shape=(None, None, 3))` can store.

Why this module exists: TFDS stores the bytes it is given for an `Image` feature as they
are, and decodes them later with `tf.image.decode_image`. That decoder reads 8-bit JPEG
and PNG, but it does not apply EXIF orientation, knows no CMYK JPEGs, TIFF or WebP, and
turns a 16-bit PNG into 8 bits its own way. So every file is decoded once with PIL at
preparation time -- which also finds corrupt and truncated files, so that they are skipped
then instead of crashing a training run weeks later -- and then:

*   an 8-bit RGB or grayscale JPEG or PNG that TensorFlow decodes to the same picture is
    stored **as is**: no generation loss, no growth on disk (re-encoding a camera JPEG as
    PNG makes it 3-10x bigger; re-encoding it as JPEG loses quality a second time);
*   anything else (16-bit, palette, alpha, CMYK, BMP, TIFF, WebP, rotated by EXIF, ...)
    is converted to 8-bit RGB (or L, which TFDS expands to 3 channels at decode time) and
    re-encoded as **PNG**, which is lossless, so the conversion is the only change.

Grayscale stays one channel on disk (a third of the size); `tf.image.decode_image(...,
channels=3)` and TFDS's NumPy decoder both replicate it to RGB, so readers see (H, W, 3).
"""

from __future__ import annotations

import collections
import dataclasses
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from typing import TypeVar

import numpy as np
from absl import logging

from tfbackbones import cores

# EXIF tag 0x0112: how the camera was held. 1 = as stored; anything else needs a transpose.
_EXIF_ORIENTATION = 0x0112
# PNG IHDR: bytes 24 and 25 hold the bit depth and the colour type (0 gray, 2 RGB).
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PASS_THROUGH_MODES = ("L", "RGB")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_MAX_THREADS = 8

_T = TypeVar("_T")
_R = TypeVar("_R")


class UnreadableImageError(ValueError):
  """A file PIL cannot fully decode: corrupt, truncated or not an image at all."""


@dataclasses.dataclass(frozen=True)
class EncodedImage:
  """Bytes ready for a TFDS `Image` feature.

  Attributes:
    data: JPEG or PNG bytes.
    format: "jpeg" or "png": the format of `data`.
    height: image height in pixels.
    width: image width in pixels.
    channels: channels stored in `data` (1 or 3); TFDS decodes both to 3.
    reencoded: False if `data` is the original file, byte for byte.
  """
  data: bytes
  format: str
  height: int
  width: int
  channels: int
  reencoded: bool


def decode(data: bytes, name: str, jpeg_draft: bool = False):
  """Fully decodes `data` with PIL (first frame) and returns the PIL image.

  With `jpeg_draft`, a JPEG is decoded at 1/8 scale (libjpeg's DCT scaling): every byte
  of the compressed stream is still read and entropy-decoded, so truncated and
  unreadable files fail exactly as with a full decode, 1.6-2.9x faster (500x375 photos,
  median 2.8x over 9 interleaved repeats); but the returned pixels are the small draft
  (its `size` too), fit only for a check.

  Args:
    data: the file's bytes.
    name: the file's name, for the error message.
    jpeg_draft: decode JPEGs at 1/8 scale (verification only).

  Returns:
    A loaded `PIL.Image.Image`.

  Raises:
    UnreadableImageError: not an image, or corrupt or truncated. A truncated file is an
      error even if PIL could pad it: a half-grey image with the right label is worse
      than a missing one.
  """
  from PIL import Image
  _refuse_truncated()
  try:
    image = Image.open(io.BytesIO(data))
  except Exception as e:
    raise UnreadableImageError(f"{name}: {type(e).__name__}: {e}") from e
  draft = None
  if jpeg_draft:
    width, height = image.size
    draft = (max(1, width // 8), max(1, height // 8))
  return _load(image, name, draft)


def _refuse_truncated() -> None:
  """Raises if some other library set PIL's LOAD_TRUNCATED_IMAGES globally: it would let
  truncated files through undetected."""
  from PIL import ImageFile
  if ImageFile.LOAD_TRUNCATED_IMAGES:
    raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; refusing to decode "
                       "images, since truncated files would not be detected")


def _load(image, name: str, jpeg_min_size: tuple | None = None):
  """Decodes every pixel of a lazily opened PIL image (a JPEG at the smallest DCT scale
  still at least `jpeg_min_size` (width, height) on both sides, when given).

  Raises:
    UnreadableImageError: corrupt or truncated (see `decode`).
  """
  _refuse_truncated()
  try:
    if jpeg_min_size is not None and image.format == "JPEG":
      # libjpeg decodes at 1/8, 1/4 or 1/2 scale, the smallest still >= jpeg_min_size.
      image.draft(image.mode, tuple(jpeg_min_size))
    image.load()  # Image.open only reads the header; load() decodes every pixel.
  except Exception as e:
    # PIL raises OSError, SyntaxError, ValueError, struct.error, ... for bad files.
    raise UnreadableImageError(f"{name}: {type(e).__name__}: {e}") from e
  return image


def to_8bit(image):
  """Converts a PIL image of any mode to mode "L" (grayscale) or "RGB", 8 bits.

  Rules (why): 16-bit values are scaled by 255/65535, the mapping every viewer uses, so
  a 16-bit PNG looks the same after conversion; 32-bit integer or float images, whose
  range is unknown, are stretched from their min to their max; palette images are
  expanded through their palette; alpha is dropped (as torchvision's ImageFolder and
  Keras' `image_dataset_from_directory` do), CMYK and other colour spaces go to RGB with
  PIL's conversion (embedded ICC profiles are ignored, as TensorFlow ignores them).

  Args:
    image: a loaded `PIL.Image.Image`.

  Returns:
    A `PIL.Image.Image` in mode "L" or "RGB".
  """
  from PIL import Image
  mode = image.mode
  if mode in _PASS_THROUGH_MODES:
    return image
  if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
    values = np.asarray(image).astype(np.float64)
    if mode in _SIXTEEN_BIT_MODES or (
        mode == "I" and values.size and values.min() >= 0 and values.max() <= 65535):
      # PIL opens 16-bit grayscale PNG as "I;16" (or "I" in older versions).
      scaled = values * (255.0 / 65535.0)
    elif mode == "F" and values.size and values.min() >= 0 and values.max() <= 1:
      scaled = values * 255.0
    else:
      scaled = stretch(values)
    return Image.fromarray(np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8), "L")
  if mode in ("1", "LA", "La"):
    return image.convert("L")
  if mode in ("P", "PA"):
    # Palette entries may be gray or colour; RGBA first so palette transparency is read.
    return image.convert("RGBA").convert("RGB")
  return image.convert("RGB")  # RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV.


def stretch(values: np.ndarray) -> np.ndarray:
  """Linearly maps values from [min, max] to [0, 255] (floats); constant -> 0."""
  values = np.asarray(values, dtype=np.float64)
  if not values.size:
    return values
  low, high = float(values.min()), float(values.max())
  if high <= low:
    return np.zeros_like(values)
  return (values - low) * (255.0 / (high - low))


def _exif_orientation(image) -> int:
  try:
    return int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
  except Exception:
    return 1  # A broken EXIF block is not a broken image.


def _is_plain_8bit_png(data: bytes) -> bool:
  """True for an 8-bit gray or RGB PNG (what TensorFlow and PIL decode identically)."""
  return (data[:8] == _PNG_SIGNATURE and len(data) > 25 and data[24] == 8
          and data[25] in (0, 2))


def encode_png(image) -> bytes:
  """Encodes a PIL image ("L" or "RGB") as PNG bytes."""
  buffer = io.BytesIO()
  image.save(buffer, format="PNG")
  return buffer.getvalue()


def _open_header(data: bytes):
  """The PIL image with only its header read (format, mode, size, EXIF), or None."""
  from PIL import Image
  try:
    return Image.open(io.BytesIO(data))
  except Exception:
    return None  # `decode` raises the proper error


def _kept_as(image, data: bytes) -> str | None:
  """"jpeg" or "png" if a file is stored with its own bytes, else None: the one rule of
  `encode_for_tfds` and `stored_as_is`.

  Args:
    image: the file opened by PIL (a lazy header or a decoded image).
    data: the file's bytes (its first 26 are enough).
  """
  if image.mode not in _PASS_THROUGH_MODES or _exif_orientation(image) != 1:
    return None
  if image.format == "JPEG":
    return "jpeg"
  if image.format == "PNG" and _is_plain_8bit_png(data):
    return "png"
  return None


def encode_for_tfds(data: bytes, name: str) -> EncodedImage:
  """Decodes `data` and returns bytes to store in an `Image(shape=(None, None, 3))`.

  Args:
    data: the bytes of an image file in any format PIL reads.
    name: the file's name (relative path), for error messages.

  Returns:
    The original bytes when they are an 8-bit RGB/gray JPEG or PNG with no EXIF
    rotation; otherwise a lossless PNG of the image converted by `to_8bit`.

  Raises:
    UnreadableImageError: the file is corrupt, truncated or not an image.
  """
  # The common case, an 8-bit RGB or gray JPEG stored as is, only needs a check that the
  # file decodes: a 1/8-scale draft decode reads the whole stream, 1.6-2.9x faster.
  header = _open_header(data)
  if header is not None and _kept_as(header, data) == "jpeg":
    width, height = header.size
    decode(data, name, jpeg_draft=True)
    return EncodedImage(data, "jpeg", height, width, len(header.getbands()), False)
  image = decode(data, name)
  width, height = image.size
  kind = _kept_as(image, data)
  if kind is not None:
    return EncodedImage(data, kind, height, width, len(image.getbands()), False)
  image = _converted(image)
  width, height = image.size
  return EncodedImage(encode_png(image), "png", height, width, len(image.getbands()), True)


def _converted(image):
  """What a prepared copy holds for a file it does not store as is: the decoded image
  turned upright by its EXIF orientation and converted to 8 bits (`to_8bit`)."""
  from PIL import ImageOps
  if _exif_orientation(image) != 1:
    image = ImageOps.exif_transpose(image)
  return to_8bit(image)


def prepared_pixels(data: bytes, name: str, jpeg_min_size: tuple | None = None):
  """The picture a prepared copy of this file holds, as a PIL image ("L" or "RGB").

  For a reader that decodes files itself (the recommender's fast read of a folder): a
  file `encode_for_tfds` stores as is is decoded, and a JPEG among them can be decoded
  at a reduced DCT scale (`jpeg_min_size`, (width, height): the smallest of 1/8, 1/4,
  1/2 still at least that size; other pixels than a full decode). Any other file gets
  `encode_for_tfds`'s conversion without its PNG round trip, which is lossless. Files
  are skipped by the same rule as preparation: the same decoder, the same errors.

  Raises:
    UnreadableImageError: the file is corrupt, truncated or not an image.
  """
  header = _open_header(data)
  if header is not None and _kept_as(header, data) == "jpeg":
    return _load(header, name, jpeg_min_size)
  image = decode(data, name)
  return image if _kept_as(image, data) is not None else _converted(image)


def stored_as_is(path) -> str | None:
  """"jpeg" or "png" if `encode_for_tfds` stores this file's bytes unchanged, else None.

  Reads only the header (PIL's lazy open, ~60 us a file), so a reader that decodes files
  itself (the recommender's direct read of a folder) knows which ones TensorFlow decodes
  to exactly the pixels a prepared copy would hold, and which need `encode_for_tfds`'s
  conversion (EXIF rotation, CMYK, 16 bits, palette, other formats). Whether the file
  decodes at all is not checked here.

  Args:
    path: the file (anything `open` or `etils.epath` reads).
  """
  from etils import epath
  from PIL import Image
  try:
    with epath.Path(path).open("rb") as f:
      prefix = f.read(32)
      f.seek(0)
      return _kept_as(Image.open(f), prefix)
  except Exception:
    return None  # not an image: `encode_for_tfds` says why


def record_skipped(info, split: str, skipped: Sequence[tuple[str, str]],
                   total: int) -> None:
  """Logs a split's summary and stores the skipped files in `info.metadata`.

  The skipped files are kept in the prepared dataset's `metadata.json` (key
  "skipped_files", per split, and "num_skipped" in total), so the count stays visible
  after preparation: `builder.info.metadata["num_skipped"]`.

  Args:
    info: the builder's `tfds.core.DatasetInfo` (built with a `MetadataDict`).
    split: the split name.
    skipped: (file name, reason) of every file skipped in this split.
    total: the number of files the split was meant to have, skipped ones included.
  """
  metadata = info.metadata
  by_split = dict(metadata.get("skipped_files", {}))
  by_split[split] = [{"file": f, "reason": r} for f, r in skipped]
  metadata["skipped_files"] = by_split
  metadata["num_skipped"] = sum(len(v) for v in by_split.values())
  if skipped:
    logging.warning("%s/%s: kept %d of %d files, skipped %d unreadable: %s",
                    info.full_name, split, total - len(skipped), total, len(skipped),
                    ", ".join(f for f, _ in skipped[:20]))
  else:
    logging.info("%s/%s: kept all %d files", info.full_name, split, total)


def map_ordered(fn: Callable[[_T], _R], items: Iterable[_T],
                num_threads: int | None = None) -> Iterator[_R]:
  """Yields `fn(item)` for every item, in order, computing a few ahead on threads.

  Decoding and PNG encoding run in PIL's C code, which releases the GIL, so threads give
  a near-linear speed-up of dataset preparation. At most 2 * num_threads results are
  held at once, so memory stays flat however many files there are; `items` is consumed
  lazily (it may be a stream, e.g. the members of a tar archive).

  Args:
    fn: the function; it should return errors rather than raise them, since an
      exception ends the iteration.
    items: the inputs.
    num_threads: worker threads (default: CPU count, at most 8; 1 = no threads).
  """
  num_threads = num_threads or min(_MAX_THREADS, cores.usable())
  if num_threads <= 1:
    yield from map(fn, items)
    return
  with futures.ThreadPoolExecutor(num_threads) as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= 2 * num_threads:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
