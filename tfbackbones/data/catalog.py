"""Dataset catalog: a name maps to where the data lives and how the paper splits it.

One declarative `DatasetSpec` per dataset (as VTAB does), registered by name. The input
pipeline reads nothing but the spec, so adding a dataset is adding one entry (and, where
TFDS has none, one builder in `tfds_builders/`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable

from tfbackbones import imagesize


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """How to get one dataset and the protocol the paper applies to it.

  Attributes:
    name: catalog name used on the command line.
    tfds_name: TFDS name (with config), e.g. "eurosat/rgb" or one of our builders.
    domain: the paper's domain (natural, texture, surface defect, ...).
    num_classes: number of classes (checked against the TFDS metadata).
    train_split: TFDS split expression of the training pool.
    test_split: TFDS split expression of the test set; None when the dataset ships a
      single split and the paper draws its own stratified test split from it.
    test_fraction: share of the pool that becomes test when `test_split` is None.
    image_size: the protocol's input size: an int (square) or `"WIDTHxHEIGHT"`
      (BreakHis: `"672x448"`); see `tfbackbones/imagesize.py`.
    augment: default augmentation ("trivial" = TrivialAugment, "flip", "none").
    image_key / label_key: feature names in the TFDS examples.
    id_key: a feature holding a stable unique example id (file name, index); None means
      TFDS's own `tfds_id` (stable for a given TFDS version of the data).
    citation: short citation.
  """
  name: str
  tfds_name: str
  domain: str
  num_classes: int
  train_split: str = "train"
  test_split: str | None = "test"
  test_fraction: float = 0.0
  image_size: int | str = 256
  augment: str = "none"
  image_key: str = "image"
  label_key: str = "label"
  id_key: str | None = None
  citation: str = ""

  # The seed of the paper-style derived test split is a property of the dataset, not of
  # a run: every run, seed and backbone must be tested on the same images.
  test_split_seed: int = 0
  # A feature naming the patient/case of an example: the validation split then keeps
  # every group on one side (no patient in both train and val).
  group_key: str | None = None
  # fn(data_dir) -> TFDS builder, for builders made at run time (`folder:/path`).
  builder_factory: Callable | None = dataclasses.field(default=None, compare=False,
                                                          repr=False)


_REGISTRY: dict[str, DatasetSpec] = {}


class UnknownDatasetError(ValueError):
  """Raised for a dataset name that is not in the catalog."""


def register(spec: DatasetSpec) -> DatasetSpec:
  if spec.name in _REGISTRY:
    raise ValueError(f"dataset {spec.name!r} is registered twice")
  if spec.test_split is None and not 0.0 < spec.test_fraction < 1.0:
    raise ValueError(f"{spec.name}: a derived test split needs 0 < test_fraction < 1")
  imagesize.require(spec.image_size)  # a typo fails at registration, not mid-run
  _REGISTRY[spec.name] = spec
  return spec


def names() -> list[str]:
  return sorted(_REGISTRY)


FOLDER_PREFIX = "folder:"


def get(name: str) -> DatasetSpec:
  """Returns the spec for `name`, or raises UnknownDatasetError listing the valid names.

  `folder:/path` is the user's own class-per-subfolder images (optional train/ and test/
  subfolders, else a stratified 80/20 split keyed on file paths), prepared through the
  `image_folder` TFDS builder like every other dataset.
  """
  if name in _REGISTRY:
    return _REGISTRY[name]
  if name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX):
    return folder_spec(name[len(FOLDER_PREFIX):])
  close = difflib.get_close_matches(str(name).lower().replace("-", "_"), names(), n=3,
                                    cutoff=0.6)
  hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
  raise UnknownDatasetError(
      f"unknown dataset {name!r}.{hint} Valid datasets: {', '.join(names())}, or "
      "folder:/path/to/class_folders. List them with `python -m tfbackbones.datasets`.")


def folder_spec(path: str) -> DatasetSpec:
  """The spec of a user's image folder (classes are known once it is prepared)."""
  def factory(data_dir):
    from tfds_builders.image_folder import image_folder_dataset_builder
    return image_folder_dataset_builder.make_builder(path, data_dir)
  return DatasetSpec(name=FOLDER_PREFIX + path, tfds_name="image_folder", domain="custom",
                     num_classes=0, id_key="id", builder_factory=factory,
                     citation="the user's own images")


def specs() -> list[DatasetSpec]:
  return [_REGISTRY[n] for n in names()]


# The offline quickstart dataset: real handwriting shipped inside scikit-learn.
register(DatasetSpec(
    name="sklearn_digits", tfds_name="sklearn_digits", domain="handwriting",
    num_classes=10, image_size=32, augment="none", id_key="id",
    citation="Alpaydin & Kaynak 1998, UCI Optical Recognition of Handwritten Digits"))
# Offline real photographs (tfds_builders/lfw_subset): scikit-image's 200 25x25 grayscale
# LFW crops, 100 faces / 100 non-faces; 100 train / 100 test (2.0.0). Default 96 px: the
# pretrained EfficientNet-Lite's stem needs more than 25 px to see a face (quickstart).
register(DatasetSpec(
    name="lfw_subset", tfds_name="lfw_subset", domain="faces (real photos)",
    num_classes=2, image_size=96, augment="flip", id_key="id",
    citation="Huang et al. 2012 (LFW, Huang et al. 2007); scikit-image data.lfw_subset"))

# Catalog datasets of the paper that TFDS already builds (docs/protocol.md, "Datasets").
register(DatasetSpec("cifar10", "cifar10", "natural", 10, augment="trivial",
                     id_key="id", citation="Krizhevsky 2009"))
register(DatasetSpec("cifar100", "cifar100", "natural", 100, augment="trivial",
                     id_key="id", citation="Krizhevsky 2009"))
register(DatasetSpec("stanford_dogs", "stanford_dogs", "natural", 120, augment="none",
                     citation="Khosla et al. 2011"))
register(DatasetSpec("oxford_flowers102", "oxford_flowers102", "natural", 102,
                     train_split="train+validation", augment="trivial",
                     citation="Nilsback & Zisserman 2008"))
register(DatasetSpec("caltech_birds2011", "caltech_birds2011", "natural", 200,
                     citation="Wah et al. 2011"))
# TFDS's cars196 downloads from a URL that is dead: ours reads the same files from the
# manual dir (tfds_builders/cars196_manual).
register(DatasetSpec("cars196", "cars196_manual", "natural", 196, id_key="id",
                     citation="Krause et al. 2013"))
register(DatasetSpec("food101", "food101", "natural", 101, train_split="train",
                     test_split="validation", augment="trivial",
                     citation="Bossard et al. 2014"))
register(DatasetSpec("dtd", "dtd", "texture", 47, train_split="train+validation",
                     augment="trivial", citation="Cimpoi et al. 2014"))
register(DatasetSpec("uc_merced", "uc_merced", "remote sensing", 21, test_split=None,
                     test_fraction=0.2, citation="Yang & Newsam 2010"))
register(DatasetSpec("eurosat_rgb", "eurosat/rgb", "remote sensing", 10, test_split=None,
                     test_fraction=0.3, image_size=224, id_key="filename",
                     citation="Helber et al. 2019"))
register(DatasetSpec("plant_village", "plant_village", "plant", 38, test_split=None,
                     test_fraction=0.2, citation="Hughes & Salathe 2015"))

# Datasets with no TFDS builder anywhere: ours, in tfds_builders/. Augmentation follows
# docs/protocol.md (TrivialAugment where the reference code used it: CIFAR, DTD, Food-101,
# Flowers); the paper's text says it was tried everywhere but kept only where it helped.
register(DatasetSpec("tiny_imagenet", "tiny_imagenet", "natural", 200,
                     train_split="train", test_split="validation", id_key="id",
                     citation="Le & Yang 2015, Tiny ImageNet"))
register(DatasetSpec("neu_surface_defects", "neu_surface_defects", "surface defect", 6,
                     id_key="id", citation="Song & Yan 2013"))
register(DatasetSpec("galaxy10_decals", "galaxy10_decals", "astronomy", 10, id_key="id",
                     citation="Leung & Bovy 2019, Galaxy10 DECaLS (astroNN)"))
# BreakHis: one dataset per magnification, split by case (no case in both train and
# test). The paper resizes its 700x460 slides to 672x448 (W x H): not square.
for _mag in ("40x", "100x", "200x", "400x"):
  register(DatasetSpec(f"breakhis_{_mag}", f"breakhis/{_mag}", "medical", 2,
                       image_size="672x448",
                       id_key="id", group_key="patient_id",
                       citation="Spanhol et al. 2016, BreaKHis"))
register(DatasetSpec("rsna_pneumonia", "rsna_pneumonia", "medical", 2, id_key="id",
                     citation="Shih et al. 2019, RSNA Pneumonia Detection Challenge 2018"))
register(DatasetSpec("plantclef", "plantclef", "plant", 20, id_key="id",
                     citation="Goeau, Bonnet & Joly, PlantCLEF (the paper's 20-class subset)"))
