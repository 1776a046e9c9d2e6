"""Datasets: the catalog, deterministic splits and the tf.data input pipeline."""
