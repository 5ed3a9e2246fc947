"""Granule ingest, features, inference and products: the science path, free of orchestration."""
