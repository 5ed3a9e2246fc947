"""MT-HCCAR models: the artifact contract here, the training wing and the synthetic granules beside it.

* ``models`` itself: the artifact format (``artifact``), feature spec (``spec``), band tables
  (``bands``), the network definition (``mthccar``), surface and climatology look-ups (``earth``),
  atomic file output (``fileio``) and the shipped-model list (``registry``): all the pipeline uses;
* ``models.training``: simulated training data, training, evaluation, export, the default-model
  build, and the offline radiative-transfer simulator (``models.training.simulate``);
* ``models.synthetic``: synthetic scenes written in the real L1b formats, with truth files.
"""

MODEL_NAME = "MT-HCCAR"
