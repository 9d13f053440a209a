"""Catalog data files (models.yaml, gpus.yaml)."""
