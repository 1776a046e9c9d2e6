"""`plantclef` dataset: the paper's 20-class PlantCLEF subset, read as a class-per-folder tree."""
