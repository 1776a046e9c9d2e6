"""`breakhis` dataset: BreaKHis v1 breast-tumour histology, patient-level split."""
