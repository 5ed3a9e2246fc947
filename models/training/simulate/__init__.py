"""Offline radiative-transfer simulator: training data and synthetic granules."""
