"""Issue 19, cases 3 and 6: folders that cannot train a fair classifier fail before
training, with one clear error naming the folder, the classes and the fix; or, where the
user asked for it, are handled and recorded (dropped classes, skipped files)."""

import os

import numpy as np
import pytest
import shapes

from tfbackbones.data import catalog, checks, pipeline


def _prepare(folder, data_dir, **kwargs):
  args = dict(data_dir=str(data_dir), image_size=32, val_fraction=0.1, train_fraction=1.0,
              split_seed=42, select_on="val")
  args.update(kwargs)
  return pipeline.prepare(catalog.get(f"folder:{folder}"), **args)


def _flat(root, counts, **kwargs):
  return shapes.write_folder(root, {"": counts}, size=24, **kwargs)


def _not_prepared(data_dir):
  return not os.path.exists(os.path.join(str(data_dir), "image_folder"))


@pytest.mark.parametrize("tiny_class, where", [
    (1, "0 train, 0 val, 1 test"),    # a 1-image class went to test only
    (2, "0 train, 1 val, 1 test"),    # a 2-image class went to val and test
])
def test_a_class_without_train_images_is_an_error_listing_it(tmp_path, tiny_class, where):
  folder = _flat(tmp_path / "f", {"circle": 12, "square": 12, "triangle": tiny_class})
  with pytest.raises(checks.DataError) as e:
    _prepare(folder, tmp_path / "tfds")
  assert f"'triangle': {where}" in str(e.value) and "'circle'" not in str(e.value)
  assert "--min_images_per_class" in str(e.value)


def test_a_class_whose_images_are_all_corrupt_is_an_error(tmp_path):
  folder = _flat(tmp_path / "f", {"circle": 12, "square": 12})
  os.makedirs(tmp_path / "f" / "triangle")
  for i in range(5):
    (tmp_path / "f" / "triangle" / f"{i}.png").write_bytes(b"not a png at all")
  with pytest.raises(checks.DataError, match="'triangle': 0 train, 0 val, 0 test"):
    _prepare(folder, tmp_path / "tfds")


def test_a_class_only_in_test_is_an_error(tmp_path):
  folder = shapes.write_folder(tmp_path / "f", {
      "train": {"circle": 10, "square": 10},
      "test": {"circle": 3, "square": 3, "triangle": 3}}, size=24)
  with pytest.raises(checks.DataError, match="'triangle': 0 train, 0 val, 3 test"):
    _prepare(folder, tmp_path / "tfds")


def test_min_images_per_class_drops_starved_classes_and_renumbers(tmp_path):
  folder = _flat(tmp_path / "f", {"circle": 12, "square": 12, "triangle": 2})
  data = _prepare(folder, tmp_path / "tfds", min_images_per_class=3)
  assert data.num_classes == 2 and data.class_names == ["circle", "square"]
  assert set(data.facts["dropped_classes"]) == {"triangle"}
  for split in (data.train, data.val, data.test):
    labels = pipeline.labels_of(split)
    assert set(labels.tolist()) == {0, 1}            # renumbered, nothing of class 2
  assert len(pipeline.labels_of(data.test)) == data.ids.counts["test"] == 4  # 2 + 2
  assert len(pipeline.labels_of(data.train)) == data.ids.counts["train"]


def test_one_class_folder_fails_before_any_preparation(tmp_path):
  folder = _flat(tmp_path / "f", {"circle": 12})
  with pytest.raises(pipeline.DataNotAvailableError, match="one class folder"):
    _prepare(folder, tmp_path / "tfds")
  assert _not_prepared(tmp_path / "tfds")


def test_empty_class_folder_fails_before_any_preparation(tmp_path):
  folder = _flat(tmp_path / "f", {"circle": 12, "square": 12})
  os.makedirs(tmp_path / "f" / "empty")
  with pytest.raises(pipeline.DataNotAvailableError, match="without any image"):
    _prepare(folder, tmp_path / "tfds")
  assert _not_prepared(tmp_path / "tfds")


def test_dangling_symlinks_and_bad_files_are_skipped_and_counted(tmp_path):
  folder = _flat(tmp_path / "f", {"circle": 12, "square": 12})
  os.symlink(tmp_path / "gone.png", tmp_path / "f" / "circle" / "link.png")
  (tmp_path / "f" / "square" / "broken.png").write_bytes(b"\x89PNG truncated")
  (tmp_path / "f" / "square" / "notes.txt").write_text("not an image")
  data = _prepare(folder, tmp_path / "tfds")
  assert data.facts["broken_links"] == 1 and data.facts["skipped_files"] == 1
  assert data.facts["ignored_files"] == 1
  total = sum(data.ids.counts[k] for k in ("train", "val", "test"))
  assert total == 24
  per_class = data.facts["images_per_class"]
  assert sum(per_class["train"].values()) == data.ids.counts["train"]


def test_folder_preparation_errors_name_the_folder_not_the_network(tmp_path, monkeypatch):
  folder = _flat(tmp_path / "f", {"circle": 6, "square": 6})
  spec = catalog.get(f"folder:{folder}")
  builder = pipeline.tfds_builder(spec, str(tmp_path / "tfds"))

  def fail(**kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(builder, "download_and_prepare", fail)
  monkeypatch.setattr(pipeline, "tfds_builder", lambda spec, data_dir: builder)
  with pytest.raises(pipeline.DataNotAvailableError) as e:
    pipeline.get_builder(spec, str(tmp_path / "tfds"), download=True)
  assert str(folder) in str(e.value) and "disk full" in str(e.value)
  assert "Offline" not in str(e.value) and "network" not in str(e.value)


def test_fewer_images_than_one_user_batch_is_a_data_error():
  with pytest.raises(checks.DataError, match="fewer than one global batch"):
    pipeline.steps_per_epoch(30, 64)
  assert pipeline.steps_per_epoch(np.int64(640), 64) == 10
