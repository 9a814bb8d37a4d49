"""C. elegans functional data: the measured signal-propagation atlas of Randi et al. 2023
(:func:`read_atlas`) and the scoring of a model's perturbation map against it
(:func:`compare`). Needs the optional dependency ``cect``.
"""

from brainsim.celegans._atlas import NAME_MAP, SOURCES, Atlas, AtlasError, read_atlas
from brainsim.celegans._compare import Comparison, compare

__all__ = ["NAME_MAP", "SOURCES", "Atlas", "AtlasError", "Comparison", "compare", "read_atlas"]
