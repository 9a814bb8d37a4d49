"""Neuron models and synapse kinds as equinox Modules: parameters and the one place of
their equations (see ``_base.py`` for the interface a model implements)."""

from brainsim.models._base import AbstractNeuron, NeuronInput, per_neuron
from brainsim.models._graded import Graded
from brainsim.models._lif import LIF, MAX_RUN_STEPS, SINCE_MAX, LIFState
from brainsim.models._pqn import PQN
from brainsim.models._synapses import (
    TRANSFERS,
    AbstractSynapses,
    DelayedEvents,
    GapJunctions,
    GradedChemical,
    SparseGradedChemical,
)

# the `[model] kind` of a config -> its class
MODELS = {m.kind: m for m in (LIF, Graded, PQN)}

__all__ = [
    "LIF",
    "LIFState",
    "MAX_RUN_STEPS",
    "MODELS",
    "SINCE_MAX",
    "TRANSFERS",
    "AbstractNeuron",
    "AbstractSynapses",
    "DelayedEvents",
    "GapJunctions",
    "Graded",
    "GradedChemical",
    "SparseGradedChemical",
    "NeuronInput",
    "PQN",
    "per_neuron",
]
