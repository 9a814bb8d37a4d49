"""The engine: steppers that advance a neuron model on a network under a protocol."""

from brainsim.sim._network import Network, build_synapses, synapse_kinds
from brainsim.sim._protocol import Drive, Protocol
from brainsim.sim._simulate import NonFiniteError, SimResult, seed_key, simulate
from brainsim.sim._steppers import (
    KERNELS,
    AbstractStepper,
    DenseWindow,
    Reference,
    Windowed,
    auto_stepper,
    stepper_for,
)
from brainsim.sim._windowed import Budgets

__all__ = [
    "KERNELS",
    "AbstractStepper",
    "Budgets",
    "DenseWindow",
    "Drive",
    "Network",
    "NonFiniteError",
    "Protocol",
    "Reference",
    "SimResult",
    "Windowed",
    "auto_stepper",
    "build_synapses",
    "seed_key",
    "simulate",
    "stepper_for",
    "synapse_kinds",
]
