"""Unit tests of the image conversion rules shared by the folder, BreakHis and PlantCLEF
builders (no TFDS build: each rule on a tiny image)."""

import io
import threading
from unittest import mock

import numpy as np
from absl.testing import absltest
from PIL import Image, ImageFile

from tfds_builders.image_folder import image_codec


def _bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format=fmt, **kwargs)
  return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(data)))


class ToEightBitTest(absltest.TestCase):

  def test_sixteen_bit_scales_by_255_over_65535(self):
    values = np.array([[0, 128, 257, 32896, 65535]], np.uint16)
    out = image_codec.to_8bit(Image.fromarray(values))
    self.assertEqual(out.mode, "L")
    np.testing.assert_array_equal(np.asarray(out), [[0, 0, 1, 128, 255]])

  def test_int32_outside_16_bits_and_float_are_stretched(self):
    values = np.array([[-2, 0, 2]], np.int32)  # exact in binary: 2 * 255 / 4 = 127.5
    np.testing.assert_array_equal(
        np.asarray(image_codec.to_8bit(Image.fromarray(values, "I"))), [[0, 128, 255]])
    unit = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(
        np.asarray(image_codec.to_8bit(Image.fromarray(unit, "F"))), [[0, 128, 255]])
    wide = np.array([[-1.0, 3.0]], np.float32)
    np.testing.assert_array_equal(
        np.asarray(image_codec.to_8bit(Image.fromarray(wide, "F"))), [[0, 255]])

  def test_constant_image_stretches_to_zero(self):
    np.testing.assert_array_equal(image_codec.stretch(np.full((2, 2), 7.0)), np.zeros((2, 2)))

  def test_alpha_is_dropped_and_palette_expanded(self):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # fully transparent red
    out = image_codec.to_8bit(Image.fromarray(rgba, "RGBA"))
    self.assertEqual(out.mode, "RGB")
    np.testing.assert_array_equal(np.asarray(out)[0, 0], [200, 0, 0])
    palette = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(2, 2, 3)).quantize(4)
    self.assertEqual(image_codec.to_8bit(palette).mode, "RGB")

  def test_cmyk_goes_through_pil_conversion(self):
    cmyk = Image.fromarray(np.full((2, 2, 3), 60, np.uint8)).convert("CMYK")
    np.testing.assert_array_equal(np.asarray(image_codec.to_8bit(cmyk)),
                                  np.asarray(cmyk.convert("RGB")))


class EncodeForTfdsTest(absltest.TestCase):

  def test_plain_jpeg_and_png_pass_through(self):
    rgb = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    for fmt in ("JPEG", "PNG"):
      data = _bytes(rgb, fmt)
      encoded = image_codec.encode_for_tfds(data, "x")
      self.assertFalse(encoded.reencoded)
      self.assertIs(encoded.data, data)
      self.assertEqual((encoded.height, encoded.width, encoded.channels), (4, 4, 3))

  def test_sixteen_bit_png_is_reencoded_losslessly(self):
    values = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000)
    encoded = image_codec.encode_for_tfds(_bytes(Image.fromarray(values), "PNG"), "x")
    self.assertTrue(encoded.reencoded)
    self.assertEqual(encoded.format, "png")
    np.testing.assert_array_equal(_decode(encoded.data),
                                  np.floor(values / 257 + 0.5).astype(np.uint8))

  def test_exif_rotation_is_applied(self):
    image = Image.fromarray(np.zeros((2, 5, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 8
    encoded = image_codec.encode_for_tfds(_bytes(image, "JPEG", exif=exif.tobytes()), "x")
    self.assertTrue(encoded.reencoded)
    self.assertEqual((encoded.height, encoded.width), (5, 2))

  def test_truncated_and_non_images_raise_with_the_name(self):
    data = _bytes(Image.fromarray(np.full((32, 32, 3), 9, np.uint8)), "PNG", compress_level=0)
    for bad in (data[: len(data) // 2], b"", b"not an image"):
      with self.assertRaisesRegex(image_codec.UnreadableImageError, "some/file.png"):
        image_codec.encode_for_tfds(bad, "some/file.png")

  def test_plain_jpeg_is_checked_by_a_draft_decode_and_kept_as_is(self):
    rng = np.random.default_rng(0)
    data = _bytes(Image.fromarray(rng.integers(0, 255, (75, 100, 3), np.uint8)), "JPEG")
    with mock.patch.object(image_codec, "decode", wraps=image_codec.decode) as spy:
      encoded = image_codec.encode_for_tfds(data, "a.jpg")
    self.assertEqual(spy.call_args.kwargs, {"jpeg_draft": True})
    self.assertFalse(encoded.reencoded)
    self.assertEqual(encoded.data, data)
    self.assertEqual((encoded.height, encoded.width, encoded.channels), (75, 100, 3))
    # The draft decode still reads the whole stream: a cut file is refused.
    for cut in (len(data) // 2, len(data) - 4):
      with self.assertRaisesRegex(image_codec.UnreadableImageError, "a.jpg"):
        image_codec.encode_for_tfds(data[:cut], "a.jpg")

  def test_refuses_to_run_when_truncated_images_are_allowed(self):
    with mock.patch.object(ImageFile, "LOAD_TRUNCATED_IMAGES", True):
      with self.assertRaises(RuntimeError):
        image_codec.decode(b"", "x")


class MapOrderedTest(absltest.TestCase):

  def test_keeps_order_and_bounds_the_lookahead(self):
    consumed = []
    lock = threading.Lock()

    def items():
      for i in range(50):
        with lock:
          consumed.append(i)
        yield i

    results = []
    for value in image_codec.map_ordered(lambda x: x * x, items(), num_threads=3):
      with lock:
        self.assertLessEqual(len(consumed) - len(results), 2 * 3 + 1)
      results.append(value)
    self.assertEqual(results, [i * i for i in range(50)])
    self.assertEqual(list(image_codec.map_ordered(str, [1, 2], num_threads=1)), ["1", "2"])


if __name__ == "__main__":
  absltest.main()
