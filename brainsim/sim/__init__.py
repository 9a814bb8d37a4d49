"""The engine: jit-compiled runs of B trials, stimuli, perturbations, monitors."""

from brainsim.sim._network import Network
from brainsim.sim._protocol import Drive, Protocol
from brainsim.sim._simulate import KERNELS, NonFiniteError, SimResult, seed_key, simulate
from brainsim.sim._windowed import Budgets

__all__ = [
    "KERNELS",
    "Budgets",
    "Drive",
    "Network",
    "NonFiniteError",
    "Protocol",
    "SimResult",
    "seed_key",
    "simulate",
]
