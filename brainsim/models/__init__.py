"""Neuron models as equinox Modules: parameters and the one place of their equations."""

from brainsim.models._lif import LIF, SINCE_MAX

__all__ = ["LIF", "SINCE_MAX"]
