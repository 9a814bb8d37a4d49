"""flyvis's parameters on a lattice: per cell type and per type pair, and what they set.

flyvis (``PPNeuronIGRSynapses``, Lappalainen et al. 2024) shares its parameters by type:

- ``bias`` per cell type: the resting potential (the neuron's input without synapses);
- ``time_const_s`` per cell type: the membrane time constant in seconds, clamped below at
  ``dt`` when integrating;
- ``strength`` per type pair: a non-negative scale; a connection's weight is
  ``sign x n_syn x strength`` of its pair, ``n_syn`` its mean synapse count.

:func:`trained` reads one of the 50 trained networks of the shipped ensemble ``flow/0000``;
:func:`initial` gives flyvis's initialisation before training (``Network`` defaults:
bias ``N(0.5, 0.05)`` per type with seed 0, time constant 0.05 s, strength 0.01 /
``mean n_syn`` of the pair). :func:`cell_values` and :func:`connection_weights` spread them
over a :class:`~brainsim.flyvis.Lattice`.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from brainsim.flyvis._data import ENSEMBLES, PREFIX, ensemble_file
from brainsim.flyvis._lattice import Lattice, LatticeSpec

N_MODELS = 50


@dataclasses.dataclass(frozen=True)
class TypeParams:
    """Per-type and per-pair parameters, in the order of a :class:`LatticeSpec`'s types and
    pairs; ``name`` says where they came from."""

    name: str
    bias: np.ndarray  # [types]
    time_const_s: np.ndarray  # [types], > 0
    strength: np.ndarray  # [pairs], >= 0

    def __post_init__(self):
        for f in ("bias", "time_const_s", "strength"):
            a = np.asarray(getattr(self, f), np.float64)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{self.name}: {f} has a non-finite value")
        if np.any(np.asarray(self.time_const_s) <= 0):
            raise ValueError(f"{self.name}: time constants must be > 0")
        if np.any(np.asarray(self.strength) < 0):
            raise ValueError(f"{self.name}: strengths must be >= 0")


def parse_name(params: str) -> tuple[str, int]:
    """``"flyvis:flow/0000/000"`` -> (``"flow/0000"``, 0)."""
    m = re.fullmatch(r"flyvis:(.+)/(\d{3})", params)
    if not m or m.group(1) not in ENSEMBLES:
        raise ValueError(
            f"params {params!r}: expected {PREFIX}<ensemble>/<model>, e.g. "
            f'"flyvis:flow/0000/000" (ensembles: {", ".join(ENSEMBLES)}; models 000-049)'
        )
    idx = int(m.group(2))
    if idx >= N_MODELS:
        raise ValueError(f"params {params!r}: the ensemble has models 000-{N_MODELS - 1:03d}")
    return m.group(1), idx


def trained(spec: LatticeSpec, params: str) -> TypeParams:
    """One trained network of a shipped ensemble, matched to ``spec`` by type names and
    type pairs; a pair of ``spec`` that the ensemble lacks gets strength 0 (flyvis has no
    parameter for a pair without connections at its extent), a type it lacks is an error."""
    ensemble, idx = parse_name(params)
    with np.load(ensemble_file(ensemble), allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    names = [str(x) for x in a["type_names"]]
    missing = [t for t in spec.type_names if t not in names]
    if missing:
        raise ValueError(f"params {params!r}: no parameters for cell types {missing}")
    t_of = np.array([names.index(t) for t in spec.type_names])
    pair_of = {
        (names[s], names[t]): i
        for i, (s, t) in enumerate(zip(a["pair_source"], a["pair_target"], strict=True))
    }
    strength = np.zeros(spec.pair_source.size)
    for p, (s, t) in enumerate(zip(spec.pair_source, spec.pair_target, strict=True)):
        i = pair_of.get((spec.type_names[s], spec.type_names[t]))
        if i is not None:
            if int(a["pair_sign"][i]) != int(spec.pair_sign[p]):
                raise ValueError(
                    f"params {params!r}: pair {spec.type_names[s]} -> {spec.type_names[t]} "
                    "has another sign in the ensemble than in the connectome file"
                )
            strength[p] = float(a["strength"][idx, i])
    return TypeParams(
        name=params,
        bias=a["bias"][idx, t_of].astype(np.float64),
        time_const_s=a["time_const_s"][idx, t_of].astype(np.float64),
        strength=strength,
    )


def initial(lattice: Lattice, seed: int = 0) -> TypeParams:
    """flyvis's initial parameters (before training): see the module docstring."""
    spec = lattice.spec
    n_types, n_pairs = len(spec.type_names), spec.pair_source.size
    bias = np.random.default_rng(seed).normal(0.5, 0.05, n_types)
    mean_syn = np.ones(n_pairs)
    if lattice.n_connections:
        tot = np.bincount(lattice.pair, weights=lattice.n_syn, minlength=n_pairs)
        cnt = np.bincount(lattice.pair, minlength=n_pairs)
        mean_syn = np.where(cnt > 0, tot / np.maximum(cnt, 1), 1.0)
    return TypeParams(
        name=f"flyvis-initial(seed={seed})",
        bias=bias,
        time_const_s=np.full(n_types, 0.05),
        strength=0.01 / mean_syn,
    )


def cell_values(lattice: Lattice, params: TypeParams, dt_s: float):
    """(tau_ms, v_rest) per cell: the type's time constant clamped below at ``dt`` (in ms),
    the type's bias."""
    tau_s = np.maximum(params.time_const_s, dt_s)[lattice.cell_type]
    return tau_s * 1000.0, params.bias[lattice.cell_type]


def connection_weights(lattice: Lattice, params: TypeParams) -> np.ndarray:
    """float64 [connections]: ``sign x n_syn x strength`` of each connection's pair."""
    return lattice.sign * lattice.n_syn.astype(np.float64) * params.strength[lattice.pair]


def load(lattice: Lattice, params: str | None, *, seed: int = 0, base_dir=None) -> TypeParams:
    """The parameters a ``[model] params`` names: ``"flyvis:flow/0000/NNN"`` (a trained
    network of the shipped ensemble), ``"flyvis:initial"`` (flyvis's initialisation,
    ``seed``; also the default when ``params`` is None) or the path of a ``params.npz``
    that ``brainsim fit`` wrote (relative to ``base_dir``)."""
    if params is None or params == f"{PREFIX}initial":
        return initial(lattice, seed)
    if params.startswith(PREFIX):
        return trained(lattice.spec, params)
    from pathlib import Path

    path = Path(params)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return read_npz(lattice.spec, path)


def write_npz(spec: LatticeSpec, params: TypeParams, path) -> None:
    """``params`` with the names of its types and pairs, readable by :func:`read_npz`."""
    names = np.array(spec.type_names)
    np.savez(
        path,
        type_names=names,
        pair_source=names[spec.pair_source],
        pair_target=names[spec.pair_target],
        bias=np.asarray(params.bias, np.float64),
        time_const_s=np.asarray(params.time_const_s, np.float64),
        strength=np.asarray(params.strength, np.float64),
    )


def read_npz(spec: LatticeSpec, path) -> TypeParams:
    """Parameters written by :func:`write_npz`, matched to ``spec`` by names; a type or a
    pair of ``spec`` the file lacks is an error naming it."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"params file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a params .npz file: {e}") from None
    need = ("type_names", "pair_source", "pair_target", "bias", "time_const_s", "strength")
    lacking = [k for k in need if k not in a]
    if lacking:
        raise ValueError(f"{path}: missing arrays {lacking}")
    types = {str(t): i for i, t in enumerate(a["type_names"])}
    pairs = {
        (str(s), str(t)): i
        for i, (s, t) in enumerate(zip(a["pair_source"], a["pair_target"], strict=True))
    }
    missing = [t for t in spec.type_names if t not in types]
    if missing:
        raise ValueError(f"{path}: no parameters for cell types {missing}")
    strength = np.zeros(spec.pair_source.size)
    for p, (s, t) in enumerate(zip(spec.pair_source, spec.pair_target, strict=True)):
        key = (spec.type_names[s], spec.type_names[t])
        if key not in pairs:
            raise ValueError(f"{path}: no strength for the type pair {key[0]} -> {key[1]}")
        strength[p] = a["strength"][pairs[key]]
    t_of = np.array([types[t] for t in spec.type_names])
    return TypeParams(str(path), a["bias"][t_of], a["time_const_s"][t_of], strength)
