"""brainsim: whole-brain spiking simulation from connectomes, in JAX.

Layers (each imports only those before it): ``brainsim.connectome`` (neuron and CSR synapse
tables, loaders, cache; no JAX), ``brainsim.models`` (the LIF model), ``brainsim.kernels``
(propagation kernels), ``brainsim.sim`` (the engine), ``brainsim.io`` (results on disk) and
``brainsim.cli``.
"""

__version__ = "0.2.0"
