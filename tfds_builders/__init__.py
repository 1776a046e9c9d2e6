"""Local TFDS builders (the `tfds new` layout, one sub-package per dataset).

`import tfds_builders` registers every builder of this folder with TFDS, after which
`tfds.builder("<name>", data_dir=...)` finds it. Builders must keep their heavy, dataset
specific imports (scikit-learn, archives, ...) inside `_split_generators` /
`_generate_examples`, so that importing this package costs no more than importing
`tensorflow_datasets` itself.

To add a builder: create `tfds_builders/<name>/<name>_dataset_builder.py` with a
`class Builder(tfds.core.GeneratorBasedBuilder)`, then add one import line below.
"""

# One line per builder; importing the module registers its `Builder` class.
from tfds_builders.breakhis import breakhis_dataset_builder  # noqa: F401
from tfds_builders.cars196_manual import cars196_manual_dataset_builder  # noqa: F401
from tfds_builders.galaxy10_decals import galaxy10_decals_dataset_builder  # noqa: F401
from tfds_builders.image_folder import image_folder_dataset_builder  # noqa: F401
from tfds_builders.lfw_subset import lfw_subset_dataset_builder  # noqa: F401
from tfds_builders.neu_surface_defects import neu_surface_defects_dataset_builder  # noqa: F401
from tfds_builders.plantclef import plantclef_dataset_builder  # noqa: F401
from tfds_builders.rsna_pneumonia import rsna_pneumonia_dataset_builder  # noqa: F401
from tfds_builders.sklearn_digits import sklearn_digits_dataset_builder  # noqa: F401
from tfds_builders.tiny_imagenet import tiny_imagenet_dataset_builder  # noqa: F401
