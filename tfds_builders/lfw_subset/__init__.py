"""`lfw_subset` dataset: scikit-image's bundled 25x25 LFW faces vs non-faces (offline)."""
