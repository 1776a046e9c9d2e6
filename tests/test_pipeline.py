"""The input pipeline on the real (bundled) digits: splits, epochs, padding, resizing."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfbackbones.data import augment, catalog, pipeline


def _prepare(data_dir, **kw):
  args = dict(data_dir=data_dir, image_size=32, val_fraction=0.1, train_fraction=1.0,
              split_seed=42, select_on="val")
  args.update(kw)
  return pipeline.prepare(catalog.get("sklearn_digits"), **args)


def test_val_split_is_held_out_of_train_stratified_and_stable(digits_data_dir):
  data = _prepare(digits_data_dir)
  ids = data.ids
  assert not set(ids.train) & set(ids.val)
  assert ids.counts["train"] + ids.counts["val"] == ids.counts["pool"] == 1438
  assert ids.counts["val"] == pytest.approx(144, abs=5) and ids.counts["test"] == 359
  assert set(pipeline.labels_of(data.val)) == set(range(10))
  assert len(pipeline.labels_of(data.train)) == ids.counts["train"]
  assert _prepare(digits_data_dir).ids.val == ids.val            # deterministic
  assert _prepare(digits_data_dir, split_seed=7).ids.val != ids.val


def test_train_fraction_is_a_stratified_subset_shared_by_all_runs(digits_data_dir):
  full = _prepare(digits_data_dir)
  tiny = _prepare(digits_data_dir, train_fraction=0.01)
  assert set(tiny.ids.train) < set(full.ids.train)
  assert tiny.ids.val == full.ids.val                             # same selection split
  assert set(pipeline.labels_of(tiny.train)) == set(range(10))    # >= 1 per class
  assert tiny.ids.train == _prepare(digits_data_dir, train_fraction=0.01).ids.train


def test_select_on_test_uses_the_test_split_and_the_whole_pool(digits_data_dir):
  data = _prepare(digits_data_dir, select_on="test")
  assert data.ids.val is None and data.ids.val_from == "test"
  assert data.ids.counts["train"] == 1438 and data.ids.counts["val"] == 359


def _collect(fn):
  ctx = tf.distribute.InputContext()
  return [(x.numpy(), y.numpy()) for x, y in fn(ctx)]


@pytest.mark.parametrize("augment", ["flip", "trivial"])
def test_train_epochs_are_seeded_permutations_with_exact_step_counts(digits_data_dir,
                                                                     augment):
  data = _prepare(digits_data_dir, train_fraction=0.3)
  steps = pipeline.steps_per_epoch(data.num_train, 32)
  make = lambda epoch, seed=0: pipeline.train_dataset_fn(  # noqa: E731
      data, global_batch=32, steps_per_epoch=steps, epoch=epoch, seed=seed,
      preprocess=lambda x: x / 255.0, augment=augment)
  e0 = _collect(make(0))
  assert len(e0) == steps and all(x.shape == (32, 32, 32, 3) for x, _ in e0)
  assert all(x.min() >= 0 and x.max() <= 1 for x, _ in e0)
  again = _collect(make(0))
  assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
             for a, b in zip(e0, again))                          # resume-exact
  e1 = _collect(make(1))
  assert not all(np.array_equal(a[1], b[1]) for a, b in zip(e0, e1))
  other_seed = _collect(make(0, seed=1))
  assert not all(np.array_equal(a[1], b[1]) for a, b in zip(e0, other_seed))


def test_eval_pads_to_whole_batches_with_zero_weight(digits_data_dir):
  data = _prepare(digits_data_dir)
  fn, steps = pipeline.eval_dataset_fn(data.test, 359, global_batch=64, image_size=32,
                                       preprocess=lambda x: x)
  batches = list(fn(tf.distribute.InputContext()))
  assert len(batches) == steps == 6
  weights = np.concatenate([w.numpy() for _, _, w in batches])
  assert weights.sum() == 359 and len(weights) == 384
  assert set(np.unique(weights)) == {0.0, 1.0} and weights[:359].all()


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_resize_uint8_gives_rgb_eagerly_and_in_tf_data(channels):
  image = np.random.default_rng(0).integers(0, 256, (20, 30, channels), dtype=np.uint8)
  eager = pipeline.resize_uint8(image, 16).numpy()
  graph = next(iter(tf.data.Dataset.from_tensors(image).map(
      lambda x: pipeline.resize_uint8(x, 16)))).numpy()
  assert eager.shape == graph.shape == (16, 16, 3) and eager.dtype == np.uint8
  np.testing.assert_array_equal(eager, graph)
  if channels == 1:
    assert (eager[..., 0] == eager[..., 2]).all()


def test_missing_dataset_without_download_names_the_fix(tmp_path):
  with pytest.raises(pipeline.DataNotAvailableError,
                     match="not prepared.*tfbackbones.datasets --prepare=sklearn_digits"):
    pipeline.get_builder(catalog.get("sklearn_digits"), str(tmp_path), download=False)


def test_unknown_dataset_lists_the_valid_ones():
  with pytest.raises(catalog.UnknownDatasetError, match="sklearn_digits"):
    catalog.get("mnist_typo")


def test_breakhis_validation_split_keeps_patients_on_one_side(tmp_path):
  import os
  manual = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tfds_builders", "breakhis", "dummy_data")
  spec = catalog.get("breakhis_40x")
  data = pipeline.prepare(spec, data_dir=str(tmp_path), image_size=32, val_fraction=0.3,
                          train_fraction=1.0, split_seed=0, select_on="val",
                          manual_dir=manual)
  builder = pipeline.get_builder(spec, str(tmp_path), download=False)
  ids, _, groups = pipeline._read_index(builder, spec.train_split, spec)
  group_of = dict(zip(ids, groups))
  val_groups = {group_of[i] for i in data.ids.val}
  train_groups = {group_of[i] for i in data.ids.train}
  assert val_groups and train_groups and not val_groups & train_groups


def test_native_augmentation_runs_before_the_resize(digits_data_dir):
  # digits are 8x8: at native size a TrivialAugmentWide shift of up to 32 px can empty
  # the frame; after resizing to 32 px it moves it by at most the whole image.
  native = _prepare(digits_data_dir, train_fraction=0.3, augment_at="native")
  cached = _prepare(digits_data_dir, train_fraction=0.3)
  assert native.ids.train == cached.ids.train
  # element_spec, not next(iter(...)): an iterator dropped half way through filling a
  # memory cache can leave later iterators a truncated cache (seen as empty epochs here).
  assert native.train.element_spec[0].shape == (8, 8, 3)        # cached at native size
  assert cached.train.element_spec[0].shape == (32, 32, 3)
  make = lambda data, augment: pipeline.train_dataset_fn(  # noqa: E731
      data, global_batch=32, steps_per_epoch=4, epoch=0, seed=0,
      preprocess=lambda x: x, augment=augment)
  n_batches = _collect(make(native, "none"))
  c_batches = _collect(make(cached, "none"))
  assert len(n_batches) == len(c_batches) == 4
  assert all(x.shape == (32, 32, 32, 3) for x, _ in n_batches)
  for (xn, yn), (xc, yc) in zip(n_batches, c_batches):   # no augmentation: same images
    np.testing.assert_array_equal(yn, yc)
    np.testing.assert_array_equal(xn, xc)
  # The same 8-pixel TranslateX empties an 8x8 native image but moves a 32x32 one by a
  # quarter: the reference's order makes the wide augmentation space 4x stronger here.
  shift = augment.OPS.index("TranslateX")
  pipeline.register_augmenter(
      "test_shift8", lambda image, seed: augment.apply_op(image, shift, 8.0))
  shifted_native = np.concatenate([x for x, _ in _collect(make(native, "test_shift8"))])
  shifted_cached = np.concatenate([x for x, _ in _collect(make(cached, "test_shift8"))])
  assert shifted_native.max() == 0                               # out of frame
  assert (shifted_cached[:, :, :8] == 0).all() and shifted_cached[:, :, 8:].max() > 0
  augmented = np.concatenate([x for x, _ in _collect(make(native, "trivial"))])
  assert augmented.shape == (128, 32, 32, 3) and augmented.dtype == np.float32
  again = np.concatenate([x for x, _ in _collect(make(native, "trivial"))])
  np.testing.assert_array_equal(augmented, again)                # seeded


def test_native_augmentation_needs_one_native_size(tmp_path):
  from tfbackbones.config import ConfigError

  class Builder:  # a TFDS builder's info of a dataset with images of varying size
    class info:
      features = {"image": tfds.features.Image(shape=(None, None, 3))}
  with pytest.raises(ConfigError, match="augment_at=native needs images of one native "
                                        "size.*--augment_at=cached"):
    pipeline.native_size(Builder, catalog.get("dtd"))


@pytest.mark.parametrize("workers, global_batch", [(2, 32), (3, 48)])
def test_each_worker_gets_its_replicas_slice_of_the_one_process_global_batch(
    digits_data_dir, workers, global_batch):
  # Why: a multi-worker run must train on the examples a 1-process run with as many
  # replicas trains on, replica for replica, or its numbers depend on the cluster layout.
  data = _prepare(digits_data_dir, train_fraction=0.3)
  steps = pipeline.steps_per_epoch(data.num_train, global_batch)
  fn = pipeline.train_dataset_fn(data, global_batch=global_batch, steps_per_epoch=steps,
                                 epoch=3, seed=5, preprocess=lambda x: x, augment="trivial")
  batches = lambda ctx: [(x.numpy(), y.numpy()) for x, y in fn(ctx)]  # noqa: E731
  one = batches(tf.distribute.InputContext(1, 0, workers))     # one batch per replica
  per_worker = [batches(tf.distribute.InputContext(workers, k, workers))
                for k in range(workers)]
  assert len(one) == steps * workers
  for k, mine in enumerate(per_worker):
    assert len(mine) == steps
    for step, (x, y) in enumerate(mine):
      want_x, want_y = one[step * workers + k]
      np.testing.assert_array_equal(y, want_y)
      np.testing.assert_array_equal(x, want_x)      # augmentation included
