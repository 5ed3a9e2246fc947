"""The training wing: simulated data, training, evaluation, export and the simulator."""
