"""MT-HCCAR: the network, its training data, training, evaluation and export."""

MODEL_NAME = "MT-HCCAR"
