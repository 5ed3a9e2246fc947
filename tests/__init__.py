"""Test suite of the MT-HCCAR pipeline."""
