"""flyvis's visual-system model (Lappalainen et al., Nature 2024) in brainsim.

- :mod:`~brainsim.flyvis._lattice`: the type-level connectome file expanded on the
  hexagonal lattice (:func:`read_spec`, :func:`expand`, :class:`Lattice`); the connectome
  loader ``flyvis`` wraps it;
- :mod:`~brainsim.flyvis._params`: per-type and per-pair parameters (:func:`trained` for
  the shipped ensemble ``flow/0000``, :func:`initial` for flyvis's initialisation,
  :func:`load_params` for a config's ``params``);
- :mod:`~brainsim.flyvis._simulate`: the network stepped on visual input (brainsim's graded
  model and graded synapses, flyvis's explicit Euler);
- :mod:`~brainsim.flyvis._stimuli`: flashes, moving edges, gratings, movies on the lattice;
- :mod:`~brainsim.flyvis._analysis`: flyvis's DSI, preferred direction and FRI;
- :mod:`~brainsim.flyvis._experiment`: ``brainsim run`` kinds ``moving_edge`` and ``flash``.
"""

from brainsim.flyvis._analysis import (
    KNOWN_POLARITY,
    KNOWN_PREFERRED_DEG,
    direction_selectivity,
    edge_peaks,
    flash_response_index,
    t4t5_pattern,
)
from brainsim.flyvis._lattice import Lattice, LatticeSpec, columns, expand, read_spec
from brainsim.flyvis._params import TypeParams, initial, trained
from brainsim.flyvis._params import load as load_params
from brainsim.flyvis._simulate import VisualNetwork, build, integrate, steady_state
from brainsim.flyvis._stimuli import flash, grating, movie, moving_edge, read_movie

__all__ = [
    "KNOWN_POLARITY",
    "KNOWN_PREFERRED_DEG",
    "Lattice",
    "LatticeSpec",
    "TypeParams",
    "VisualNetwork",
    "build",
    "columns",
    "direction_selectivity",
    "edge_peaks",
    "expand",
    "flash",
    "flash_response_index",
    "grating",
    "initial",
    "integrate",
    "load_params",
    "moving_edge",
    "movie",
    "read_movie",
    "read_spec",
    "steady_state",
    "t4t5_pattern",
    "trained",
]
