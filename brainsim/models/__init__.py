"""Neuron models as equinox Modules: parameters and the one place of their equations."""

from brainsim.models._lif import LIF, MAX_RUN_STEPS, SINCE_MAX

__all__ = ["LIF", "MAX_RUN_STEPS", "SINCE_MAX"]
