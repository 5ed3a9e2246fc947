"""Prefect flows: when and where the pipeline runs. No science lives here."""
