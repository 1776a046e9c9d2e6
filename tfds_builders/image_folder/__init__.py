"""`image_folder` dataset: any class-per-subfolder image directory ("your own data").

`make_builder(path, data_dir)` is the entry point the engine calls for
`--dataset=folder:/path`; see README.md.
"""

from tfds_builders.image_folder.image_folder_dataset_builder import (
    StaleFolderError,  # noqa: F401
    config_for_path,  # noqa: F401
    make_builder,  # noqa: F401
)
