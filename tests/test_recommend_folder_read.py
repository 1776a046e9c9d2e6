"""The recommender's direct read of a folder (tfbackbones/recommend/folder_read.py).

It must draw the sample fine-tuning will use (the prepared TFDS copy's split) and see the
same pixels, without preparing anything; unreadable files are skipped and counted, and a
cached rerun leaves them out the same way.
"""

import io
import os

import numpy as np
import pytest

from tfbackbones.recommend import RecommendConfig, run

TINY_MODEL = "mobilenet_v3_small"


def _noise(rng, colour, shape=(40, 48)):
  return np.clip(np.array(colour) + rng.normal(0, 40, (*shape, 3)), 0, 255).astype(np.uint8)


def write_mixed_folder(root, per_class=9, seed=0):
  """Two classes of JPEGs and PNGs, plus the files a prepared copy converts: an
  EXIF-rotated JPEG, a palette PNG, a 16-bit grayscale PNG, a CMYK JPEG and a BMP."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  colours = [(200, 40, 40), (40, 40, 200)]
  for c, colour in enumerate(colours):
    folder = os.path.join(root, f"class{c}")
    os.makedirs(folder, exist_ok=True)
    for i in range(per_class):
      Image.fromarray(_noise(rng, colour)).save(
          os.path.join(folder, f"{i:02d}.{'jpg' if i % 2 else 'png'}"))
  odd = os.path.join(root, "class0")
  rotated = Image.fromarray(_noise(rng, colours[0], (30, 50)))
  exif = rotated.getexif()
  exif[0x0112] = 6  # stored sideways: a prepared copy turns it upright
  rotated.save(os.path.join(odd, "rotated.jpg"), exif=exif)
  Image.fromarray(_noise(rng, colours[0])).convert("P").save(os.path.join(odd, "pal.png"))
  Image.fromarray((rng.uniform(0, 65535, (40, 48))).astype(np.uint16)).save(
      os.path.join(odd, "deep.png"))
  Image.fromarray(_noise(rng, colours[1])).convert("CMYK").save(
      os.path.join(root, "class1", "cmyk.jpg"))
  Image.fromarray(_noise(rng, colours[1])).save(os.path.join(root, "class1", "x.bmp"))
  return root


def _config(folder, tmp_path, **kw):
  values = dict(dataset=f"folder:{folder}", backbones=(f"{TINY_MODEL}@none",),
                workdir=str(tmp_path / "rec"), data_dir=str(tmp_path / "tfds"),
                image_size=32, max_images=200, batch_size=16, val_fraction=0.2,
                fast_read=False)
  values.update(kw)
  return RecommendConfig(**values).validate()


def test_stored_as_is_agrees_with_the_builder(tmp_path):
  """The direct read decodes a file itself exactly when a prepared copy stores it as is."""
  from tfds_builders.image_folder import image_codec
  root = write_mixed_folder(str(tmp_path / "photos"))
  kinds = {}
  for dirpath, _, names in os.walk(root):
    for name in names:
      path = os.path.join(dirpath, name)
      with open(path, "rb") as f:
        encoded = image_codec.encode_for_tfds(f.read(), name)
      kinds[name] = (image_codec.stored_as_is(path), encoded.reencoded)
      assert (kinds[name][0] is not None) == (not encoded.reencoded), (name, kinds[name])
  assert kinds["rotated.jpg"] == (None, True) and kinds["cmyk.jpg"] == (None, True)
  assert kinds["01.jpg"] == ("jpeg", False) and kinds["00.png"] == ("png", False)


def test_direct_read_is_the_prepared_split_and_pixels(tmp_path):
  """Same train/val ids and the same pixels as `tfbackbones.train` would get from the
  prepared copy; and the recommender itself prepares nothing."""
  from tfbackbones.data import catalog, pipeline
  from tfbackbones.recommend import folder_read, sample
  root = write_mixed_folder(str(tmp_path / "photos"))
  config = _config(root, tmp_path)
  drawn = sample.draw(config)
  assert not os.path.exists(tmp_path / "tfds" / "image_folder")  # nothing prepared
  direct = folder_read.index(root, val_fraction=0.2, train_fraction=1.0, split_seed=42)

  spec = catalog.get(f"folder:{root}")
  builder = pipeline.get_builder(spec, str(tmp_path / "tfds"), download=True)
  prepared = pipeline.draw_split_ids(spec, builder, val_fraction=0.2, train_fraction=1.0,
                                     split_seed=42, select_on="val")
  assert direct.ids.train == prepared.train and direct.ids.val == prepared.val
  assert direct.ids.class_counts == prepared.class_counts
  assert direct.class_names == list(builder.info.features["label"].names)
  # A training fraction (validate_recommend on a data-size study) is drawn the same way.
  half = folder_read.index(root, val_fraction=0.2, train_fraction=0.5, split_seed=42)
  assert half.ids.train == pipeline.draw_split_ids(
      spec, builder, val_fraction=0.2, train_fraction=0.5, split_seed=42,
      select_on="val").train
  assert len(half.ids.train) < len(direct.ids.train)
  # The whole pool fits in max_images: the sample is exactly the two splits.
  assert drawn.train_ids == prepared.train and drawn.val_ids == prepared.val

  wanted = sorted(drawn.train_ids + drawn.val_ids)
  mine, unreadable = folder_read.read(root, wanted, (32, 32), fast=False)
  assert unreadable == []
  theirs = {i.decode(): image for i, image, _ in pipeline.decoded_with_ids(
      builder, spec, "train", wanted, (32, 32)).as_numpy_iterator()}
  assert sorted(theirs) == wanted and mine.shape == (len(wanted), 32, 32, 3)
  for row, rel in enumerate(wanted):
    np.testing.assert_array_equal(mine[row], theirs[rel], err_msg=rel)

  # The fast read (Pillow) decodes every kind of file to the same picture, the converted
  # ones included (rotated, CMYK, palette, 16-bit, BMP), and resizes it within a grey
  # level of TensorFlow's resize: no DCT scaling at this size (40x48 -> 32x32).
  fast, unreadable = folder_read.read(root, wanted, (32, 32), fast=True)
  assert unreadable == []
  for row, rel in enumerate(wanted):
    diff = np.abs(fast[row].astype(int) - theirs[rel].astype(int))
    assert diff.max() <= 1, (rel, diff.max())
  assert 0 < np.mean(fast != np.stack([theirs[rel] for rel in wanted])) < 0.5


@pytest.mark.parametrize("fast", [False, True])
def test_unreadable_files_are_skipped_counted_and_cached(tmp_path, fast):
  from tfbackbones.recommend import features
  root = write_mixed_folder(str(tmp_path / "photos"), per_class=12)
  with open(os.path.join(root, "class0", "03.jpg"), "rb") as f:
    data = f.read()
  with open(os.path.join(root, "class0", "03.jpg"), "wb") as f:
    f.write(data[: len(data) // 2])  # truncated
  with open(os.path.join(root, "class1", "notes.jpg"), "w") as f:
    f.write("not an image")
  lines = []
  config = _config(root, tmp_path, fast_read=fast)
  first = run(config, progress=lines.append)
  assert first.unreadable == ["class0/03.jpg", "class1/notes.jpg"]
  said = [line for line in lines if "unreadable files" in line]
  assert len(said) == 1 and said[0].startswith("skipped 2 unreadable files")
  n = first.num_train_sample + first.num_val_sample
  [path] = [os.path.join(config.workdir, "features", p)
            for p in os.listdir(os.path.join(config.workdir, "features"))]
  with open(path, "rb") as f:
    cached = np.load(io.BytesIO(f.read()))
    assert cached["train"].shape[0] + cached["val"].shape[0] == n

  # A rerun decodes nothing, leaves the same files out, and scores the same features.
  lines.clear()
  second = run(config, progress=lines.append)
  assert second.extracted == 0 and second.unreadable == first.unreadable
  assert second.num_train_sample + second.num_val_sample == n
  assert [r["logme"] for r in second.rows] == [r["logme"] for r in first.rows]
  assert features.load(path, _drawn(config)) is not None


def _drawn(config):
  from tfbackbones.recommend import sample
  return sample.draw(config)


def test_fast_read_of_large_jpegs_is_close_to_the_exact_read_and_cached_apart(tmp_path):
  """Large JPEGs read fast (decoded at a reduced DCT scale, Pillow's resize): nearly the
  same pixels (a few grey levels), a different cache key (other pixels, other
  features)."""
  from PIL import Image

  from tfbackbones.recommend import folder_read, sample
  rng = np.random.default_rng(0)
  root = tmp_path / "big"
  yy, xx = np.mgrid[0:200, 0:260].astype(np.float32)
  for c in range(2):
    os.makedirs(root / f"c{c}")
    for i in range(6):
      smooth = 127 + 90 * np.sin((0.03 + 0.02 * c) * xx + rng.uniform(0, 6)) * np.cos(0.02 * yy)
      image = np.clip(smooth[..., None] + rng.normal(0, 8, (200, 260, 3)), 0, 255)
      Image.fromarray(image.astype(np.uint8)).save(root / f"c{c}" / f"{i}.jpg", quality=90)
  rels = sorted(f"c{c}/{i}.jpg" for c in range(2) for i in range(6))
  full, _ = folder_read.read(str(root), rels, (48, 48), fast=False)
  scaled, _ = folder_read.read(str(root), rels, (48, 48), fast=True)
  diffs = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(full, scaled, strict=True)]
  assert 0 < np.mean([d.mean() for d in diffs]) < 3.0
  keys = {flag: sample.draw(_config(str(root), tmp_path, fast_read=flag,
                                    image_size=48)).key for flag in (True, False)}
  assert keys[True] != keys[False]


@pytest.mark.parametrize("make,message", [
    (lambda root: None, "image folder not found"),
    (lambda root: os.makedirs(root), "no class folders"),
    (lambda root: os.makedirs(os.path.join(root, "only")), "one class folder")])
def test_bad_folders_are_user_errors(tmp_path, make, message):
  from tfbackbones import runner
  from tfbackbones.recommend import sample
  root = str(tmp_path / "photos")
  make(root)
  with pytest.raises(runner.USER_ERRORS, match=message):
    sample.draw(_config(root, tmp_path))


def test_the_command_line_module_imports_no_tensorflow():
  """`python -m tfbackbones.recommend` must reach `cli.quiet_logs()` before TensorFlow
  loads: the package used to import the whole recommender (and Keras) on import, so
  TF's start-up block showed and `TF_CPP_MIN_LOG_LEVEL` was set too late to hide TF's
  C++ warnings (a Python traceback for every non-image file in the exact read)."""
  import subprocess
  import sys
  code = ("import sys, tfbackbones.recommend.__main__; "
          "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.stdout.strip() == "[]"


def test_a_sample_of_one_batch_still_measures_throughput():
  """A small folder's whole sample fits in one batch, and the first batch (which traces
  the graph) is not timed: img/s used to be NaN, printed as `nan img/s`, with no fine-tune
  estimate and a bare NaN (not JSON) in recommend.json."""
  from tfbackbones.recommend import features
  calls = []

  def forward(batch):
    calls.append(len(batch))
    return np.zeros((len(batch), 4), np.float32)

  images = np.zeros((30, 32, 32, 3), np.uint8)
  feats, timed_images, timed_seconds = features.forward_pass(forward, images, batch_size=32)
  assert feats.shape == (30, 4) and timed_images == 0
  speed = features.throughput(forward, images, 32, timed_images, timed_seconds)
  assert np.isfinite(speed) and speed > 0 and calls == [30, 30]


def test_recommend_json_is_standard_json(tmp_path):
  """Undefined figures (Kendall tau over two tied candidates, an unmeasured speed) are
  written as null: a bare NaN is not JSON, and strict readers (jq, browsers) refuse the
  whole file."""
  import json

  from tfbackbones.recommend import outputs

  class Rec:
    def as_dict(self):
      return {"agreement": {"logme~knn": float("nan")},
              "rows": [{"img_per_sec": float("inf"), "knn": 0.5}]}

  Rec.rows = []
  json_path, _ = outputs.write(Rec(), str(tmp_path))

  def refuse(constant):
    raise ValueError(f"not JSON: {constant}")

  with open(json_path) as f:
    data = json.loads(f.read(), parse_constant=refuse)
  assert data["agreement"]["logme~knn"] is None and data["rows"][0]["knn"] == 0.5
  assert data["rows"][0]["img_per_sec"] is None


def test_a_class_without_train_or_val_images_is_a_user_error(tmp_path):
  """A class folder with one image has no train or no val image once the folder is
  split. Fine-tuning refuses such a folder (`checks.plan_classes`); the recommender used
  to rank it anyway and print fine-tuning commands that then failed."""
  from PIL import Image

  from tfbackbones import runner
  from tfbackbones.recommend import sample
  root = tmp_path / "photos"
  rng = np.random.default_rng(0)
  for name, count in (("cats", 8), ("dogs", 8), ("lonely", 1)):
    os.makedirs(root / name)
    for i in range(count):
      Image.fromarray(_noise(rng, (90, 90, 90))).save(root / name / f"{i}.jpg")
  with pytest.raises(runner.USER_ERRORS,
                     match="no training or no validation image.*'lonely': 0 train"):
    sample.draw(_config(str(root), tmp_path, val_fraction=0.1))


@pytest.mark.parametrize("fast,said", [(True, "fast read (Pillow"),
                                       (False, "exact read (TensorFlow")])
def test_progress_says_which_read_and_that_the_sample_is_capped(tmp_path, fast, said):
  """The two reads give other pixels and other cached features; the terminal used to
  name neither, and announced `a sample of 1000 images` for a folder of 30."""
  from tfbackbones.recommend import recommender
  root = write_mixed_folder(str(tmp_path / "photos"), per_class=8)
  lines = []
  recommender.run(_config(root, tmp_path, fast_read=fast), progress=lines.append)
  assert any("up to 200 images" in line for line in lines)
  assert sum(said in line for line in lines) == 1


def test_a_class_left_without_readable_images_is_said(tmp_path):
  """A class whose sampled files are all unreadable was ranked on silently, as one of
  the dataset's classes, while fine-tuning (which skips unreadable files too) refuses
  it: the unreadable-files line now names it."""
  from tfbackbones.recommend import recommender
  root = write_mixed_folder(str(tmp_path / "photos"), per_class=8)
  os.makedirs(os.path.join(root, "broken"))
  for i in range(8):
    open(os.path.join(root, "broken", f"{i}.jpg"), "wb").close()
  lines = []
  recommender.run(_config(root, tmp_path, fast_read=True), progress=lines.append)
  [said] = [line for line in lines if "unreadable files" in line]
  assert "'broken'" in said and "no readable train or val image" in said
