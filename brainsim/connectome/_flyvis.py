"""Loader ``flyvis``: flyvis's type-level connectome expanded on its hexagonal lattice.

``source`` is ``"flyvis:fib25-fib19_v2.2"`` (the copy shipped with brainsim, from flyvis
1.2.0, MIT) or the path of any file in that JSON format. Options: ``extent`` (lattice
radius in columns, default 15 as flyvis) and ``n_syn_fill`` (synapses assumed inside the
convex hull of a type pair's offsets, default 1 as flyvis; 0 turns the filling off). The
expansion is :func:`brainsim.flyvis.expand` (its docstring gives the rules and the counts
at extent 15: 45,669 cells; 1,513,231 connections with the filling, 1,357,269 without).

Neuron table, in flyvis's cell order: ``id`` (the cell's index), ``cell_type``, ``u``,
``v`` (axial hexagonal coordinates of its column), ``role`` (``input``, ``output`` or
``intermediate``, from the file's ``input_units`` and ``output_units``) and ``sign``.
Connections: ``counts`` holds each one's sign (the pair's ``alpha``) and ``n_syn`` its mean
synapse count; counted: ``hull_filled_connections``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from brainsim.connectome._connectome import Connectome
from brainsim.connectome._tables import finish


def load_flyvis(source, *, extent: int = 15, n_syn_fill: float = 1.0) -> Connectome:
    from brainsim.flyvis._data import connectome_file
    from brainsim.flyvis._lattice import expand, read_spec

    path = connectome_file(str(source))
    lat = expand(read_spec(path), extent, n_syn_fill)
    return lattice_connectome(lat, [path], {"extent": extent, "n_syn_fill": n_syn_fill})


def connectome_lattice(conn: Connectome):
    """The :class:`brainsim.flyvis.Lattice` of a connectome this loader built (or its cached
    copy), without expanding the file again: its spec is re-read (types and pairs), the
    cells and connections come from ``conn`` (CSR order)."""
    from brainsim.flyvis._lattice import Lattice, read_spec

    spec = read_spec(conn.provenance.sources[0])
    opts = conn.provenance.options
    names = conn.neurons.column("cell_type").to_pylist()
    cell_type = np.array([spec.type_names.index(t) for t in names], np.int32)
    u = conn.neurons.column("u").to_numpy().astype(np.int32)
    v = conn.neurons.column("v").to_numpy().astype(np.int32)
    pre = conn.pre_indices().astype(np.int64)
    post = conn.indices.astype(np.int64)
    n_types = len(spec.type_names)
    pair_of = np.full((n_types, n_types), -1, np.int64)
    pair_of[spec.pair_source, spec.pair_target] = np.arange(spec.pair_source.size)
    pair = pair_of[cell_type[pre], cell_type[post]]
    if np.any(pair < 0):
        raise ValueError("connectome has connections between types the flyvis file does not pair")
    return Lattice(
        spec=spec,
        extent=int(opts["extent"]),
        n_syn_fill=float(opts["n_syn_fill"]),
        cell_type=cell_type,
        u=u,
        v=v,
        pre=pre,
        post=post,
        sign=conn.counts.astype(np.int8),
        n_syn=conn.n_syn,
        pair=pair.astype(np.int32),
        du=(u[post] - u[pre]).astype(np.int32),
        dv=(v[post] - v[pre]).astype(np.int32),
        filled=int(conn.provenance.counts.get("hull_filled_connections", 0)),
    )


def lattice_connectome(lat, files, options) -> Connectome:
    """The :class:`Connectome` of an expanded :class:`brainsim.flyvis.Lattice`."""
    spec = lat.spec
    names = np.array(spec.type_names, dtype=object)
    role = np.full(len(names), "intermediate", dtype=object)
    role[[spec.type_names.index(t) for t in spec.output_types]] = "output"
    role[[spec.type_names.index(t) for t in spec.input_types]] = "input"
    # a cell's outputs all carry its type's sign where the file is consistent
    out_sign = np.zeros(lat.n_cells, np.int8)
    out_sign[lat.pre] = lat.sign
    neurons = pa.table(
        {
            "id": pa.array(np.arange(lat.n_cells, dtype=np.int64)),
            "cell_type": pa.array(names[lat.cell_type].tolist(), pa.string()),
            "u": pa.array(lat.u),
            "v": pa.array(lat.v),
            "role": pa.array(role[lat.cell_type].tolist(), pa.string()),
            "sign": pa.array(out_sign),
        }
    )
    conn = finish(
        fmt="flyvis",
        neurons=neurons,
        pre=lat.pre,
        post=lat.post,
        counts=lat.sign.astype(np.int64),
        files=files,
        options=options,
        sign_rule="given",
        rule_counts={"hull_filled_connections": lat.filled},
    )
    # finish sorts by (pre, post); the lattice has one connection per pair
    order = np.lexsort((lat.post, lat.pre))
    return dataclasses.replace(conn, n_syn=lat.n_syn[order].astype(np.float32))
