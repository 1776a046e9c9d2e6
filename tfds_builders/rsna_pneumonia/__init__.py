"""`rsna_pneumonia` dataset: RSNA Pneumonia Detection Challenge chest X-rays, one per patient."""
