"""`galaxy10_decals` dataset: Galaxy10 DECaLS galaxy morphology (17,736 images, 10 classes)."""
