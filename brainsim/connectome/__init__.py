"""Connectomes: neuron tables and CSR synapse tables, loaders for public formats, a cache.

numpy and pyarrow only; nothing here imports JAX.
"""

from brainsim.connectome._cache import load_file, save
from brainsim.connectome._connectome import (
    INHIBITORY_TRANSMITTERS,
    Connectome,
    Provenance,
    from_edges,
    transmitter_sign,
)
from brainsim.connectome._errors import ConnectomeError
from brainsim.connectome._registry import FORMATS, load, loader

__all__ = [
    "FORMATS",
    "INHIBITORY_TRANSMITTERS",
    "Connectome",
    "ConnectomeError",
    "Provenance",
    "from_edges",
    "load",
    "load_file",
    "loader",
    "save",
    "transmitter_sign",
]
