"""`neu_surface_defects` dataset: NEU-CLS steel surface defects (1,800 BMPs, 6 classes; manual)."""
