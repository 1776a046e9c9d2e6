"""Every catalog dataset through the pipeline, on TFDS's mock data (no download)."""

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfbackbones.data import catalog, pipeline

# Datasets whose builders are TFDS's own (ours have real-format dummy data instead).
OURS = {"sklearn_digits", "tiny_imagenet", "galaxy10_decals", "neu_surface_defects",
        "rsna_pneumonia", "plantclef"}
TFDS_CATALOG = [s.name for s in catalog.specs()
                if s.name not in OURS and not s.name.startswith("breakhis")]


def test_the_catalog_has_the_papers_twenty_datasets():
  paper = {"cifar10", "cifar100", "tiny_imagenet", "stanford_dogs", "oxford_flowers102",
           "caltech_birds2011", "cars196", "food101", "dtd", "neu_surface_defects",
           "uc_merced", "eurosat_rgb", "plant_village", "plantclef", "galaxy10_decals",
           "breakhis_40x", "breakhis_100x", "breakhis_200x", "breakhis_400x",
           "rsna_pneumonia"}
  assert paper <= set(catalog.names())
  assert len({catalog.get(n).domain for n in paper}) == 7


def _fake_as_dataset(spec):
  """TFDS's builder._as_dataset replacement: the features the pipeline reads, with
  PNG-encoded images (the pipeline decodes them itself) and every class present.

  TFDS's own random mock fails on some catalog features (bounding boxes), and gives
  too few examples per class for stratified splits of 100-class datasets."""
  pngs = [tf.io.encode_png(tf.random.stateless_uniform((9, 7, 3), [i, 0], 0, 255,
                                                       tf.int32)[..., :3].numpy()
                           .astype("uint8")).numpy() for i in range(4)]

  def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    del decoders, kwargs
    num_classes = self.info.features[spec.label_key].num_classes
    count = 4 * num_classes
    id_key = spec.id_key or "tfds_id"
    examples = {spec.image_key: [pngs[i % 4] for i in range(count)],
                spec.label_key: [i % num_classes for i in range(count)],
                id_key: [f"{split}-{i:05d}" for i in range(count)]}
    if read_config is not None and read_config.add_tfds_id:
      examples["tfds_id"] = examples[id_key]
    return tf.data.Dataset.from_tensor_slices(examples)

  return as_dataset


@pytest.mark.parametrize("name", TFDS_CATALOG)
def test_catalog_dataset_flows_through_the_pipeline_on_mock_data(name, tmp_path):
  spec = catalog.get(name)
  with tfds.testing.mock_data(as_dataset_fn=_fake_as_dataset(spec)):
    data = pipeline.prepare(spec, data_dir=str(tmp_path), image_size=32, val_fraction=0.25,
                            train_fraction=1.0, split_seed=0, select_on="val")
    steps = pipeline.steps_per_epoch(data.num_train, 4)
    fn = pipeline.train_dataset_fn(data, global_batch=4, steps_per_epoch=steps, epoch=0,
                                   seed=0, preprocess=lambda x: x / 255.0,
                                   augment=spec.augment)
    images, labels = next(iter(fn(tf.distribute.InputContext())))
    val_labels = pipeline.labels_of(data.val)
  assert images.shape == (4, 32, 32, 3) and images.dtype == tf.float32
  assert labels.dtype == tf.int32
  assert int(tf.reduce_max(labels)) < data.num_classes == spec.num_classes
  assert set(val_labels) == set(range(data.num_classes))        # stratified
  derived_test = data.ids.counts["test"] if spec.test_split is None else 0
  assert (data.ids.counts["train"] + data.ids.counts["val"] + derived_test
          == data.ids.counts["pool"])
  assert data.ids.counts["test"] > 0


def test_datasets_table_lists_every_dataset_and_the_folder_form(tmp_path):
  from tfbackbones import datasets
  text = datasets.table(str(tmp_path))
  for name in catalog.names():
    assert name in text
  assert "folder:/path" in text
  assert "yes" not in text.split()      # nothing is prepared in an empty data_dir


@pytest.mark.parametrize("typo,meant", [("cifar_10", "cifar10"), ("Euro-SAT_rgb", "eurosat_rgb"),
                                        ("sklearn_digit", "sklearn_digits")])
def test_a_dataset_typo_gets_did_you_mean(typo, meant):
  with pytest.raises(catalog.UnknownDatasetError, match=f"Did you mean '{meant}'"):
    catalog.get(typo)
  with pytest.raises(catalog.UnknownDatasetError) as info:
    catalog.get("qqq")
  assert "Did you mean" not in str(info.value)
  assert "python -m tfbackbones.datasets" in str(info.value)
