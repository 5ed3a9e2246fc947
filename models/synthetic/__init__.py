"""Synthetic granules in the real L1b formats, with their truth files, for demos, tests and benchmarks."""
