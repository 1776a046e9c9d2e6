"""`sklearn_digits` dataset: scikit-learn's bundled 8x8 handwritten digits (offline)."""
