"""flyvis's type-level connectome expanded on a hexagonal lattice of columns.

The connectome file (flyvis's JSON format, e.g. ``fib25-fib19_v2.2.json``) lists cell types
(``nodes``: ``name``, ``pattern = ["stride", [su, sv]]`` or ``["tile", s]`` or
``["single", null]``) and type pairs (``edges``: ``src``, ``tar``, ``alpha`` = sign +1/-1,
``offsets`` = ``[[du, dv], mean synapse count]`` on the lattice). Expanded as flyvis's
``ConnectomeFromAvgFilters`` does (Lappalainen et al., Nature 2024):

- the columns of extent ``n`` are the hexagonal axial coordinates ``(u, v)`` with
  ``|u|, |v|, |u + v| <= n`` (``3n(n + 1) + 1`` columns; 721 at extent 15), u outer, v inner;
- a cell type of strides ``(su, sv)`` has one cell at each column with ``u % su == 0`` and
  ``v % sv == 0``, types in file order;
- each type pair with offset ``(du, dv)`` connects every source cell at ``(u, v)`` to the
  target type's cell at ``(u + du, v + dv)`` if there is one, with that offset's mean
  synapse count; pairs in file order, then offsets, then source cells;
- with ``n_syn_fill > 0`` (flyvis's default 1), a pair of at least 3 offsets first gets
  ``n_syn_fill`` synapses at every lattice offset inside the convex hull of its offsets
  that the file does not list (flyvis's ``fill_hull``).

At extent 15 the shipped file gives flyvis's 45,669 cells and 1,513,231 connections with
the hull filling (1,357,269 without), and 2,355 (type pair, offset) groups that produce
connections, equal to the groups of flyvis's trained ensemble (tested).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from brainsim.connectome._errors import ConnectomeError


@dataclasses.dataclass(frozen=True)
class LatticeSpec:
    """A parsed connectome file: cell types with strides, type pairs with offsets."""

    source: str
    type_names: tuple[str, ...]
    strides: np.ndarray  # int [types, 2]; a "single" type has strides (0, 0)
    pair_source: np.ndarray  # int [pairs] type index
    pair_target: np.ndarray
    pair_sign: np.ndarray  # int8 [pairs]
    offsets: tuple[np.ndarray, ...]  # per pair: int [k, 2] (du, dv)
    n_syn: tuple[np.ndarray, ...]  # per pair: float [k]
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    node_bias: np.ndarray  # float [types]: the file's initial bias (nan where none)
    node_time_const: np.ndarray  # float [types]: the file's time constant (nan where none)


@dataclasses.dataclass(frozen=True)
class Lattice:
    """The expanded network: cells and connections (flyvis's order)."""

    spec: LatticeSpec
    extent: int
    n_syn_fill: float
    cell_type: np.ndarray  # int32 [cells] type index
    u: np.ndarray  # int32 [cells]
    v: np.ndarray
    pre: np.ndarray  # int64 [connections] cell index
    post: np.ndarray
    sign: np.ndarray  # int8 [connections]
    n_syn: np.ndarray  # float32 [connections] mean synapse count
    pair: np.ndarray  # int32 [connections] index into spec's pairs
    du: np.ndarray  # int32 [connections]
    dv: np.ndarray
    filled: int  # connections added by the hull filling

    @property
    def n_cells(self) -> int:
        return int(self.cell_type.size)

    @property
    def n_connections(self) -> int:
        return int(self.pre.size)

    def central_cells(self) -> np.ndarray:
        """int [types]: each type's cell at column (0, 0) (every pattern has one)."""
        central = np.flatnonzero((self.u == 0) & (self.v == 0))
        out = np.full(len(self.spec.type_names), -1, np.int64)
        out[self.cell_type[central]] = central
        return out

    def cells_of(self, type_name: str) -> np.ndarray:
        """int [columns of the type]: the cells of one type, in lattice order."""
        return np.flatnonzero(self.cell_type == self.spec.type_names.index(type_name))


def hex_distance_of(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Hexagonal distance from the centre of the axial coordinates ``(u, v)``."""
    return np.maximum.reduce([np.abs(u), np.abs(v), np.abs(u + v)])


def columns(extent: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) int arrays of the lattice's columns, u outer and v inner (flyvis's order)."""
    check_extent(extent)
    us, vs = [], []
    for u in range(-extent, extent + 1):
        v = np.arange(max(-extent, -extent - u), min(extent, extent - u) + 1)
        us.append(np.full(v.size, u))
        vs.append(v)
    return np.concatenate(us).astype(np.int32), np.concatenate(vs).astype(np.int32)


def check_extent(extent) -> None:
    if isinstance(extent, bool) or not isinstance(extent, int | np.integer) or extent < 1:
        raise ConnectomeError(f"flyvis lattice extent must be an integer >= 1, got {extent!r}")


def read_spec(path: str | Path) -> LatticeSpec:
    """Parse and check a connectome file in flyvis's JSON format; a malformed entry raises
    a :class:`ConnectomeError` naming the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise ConnectomeError(f"{path}: flyvis connectome file not found")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConnectomeError(f"{path}: not a JSON file: {e}") from None
    return parse_spec(raw, str(path))


def parse_spec(raw: dict, where: str) -> LatticeSpec:
    if not isinstance(raw, dict):
        raise ConnectomeError(f"{where}: expected a JSON object with 'nodes' and 'edges'")
    for key in ("nodes", "edges"):
        if not isinstance(raw.get(key), list):
            raise ConnectomeError(f"{where}: missing list {key!r}")
    names: list[str] = []
    strides, bias, tau = [], [], []
    for i, node in enumerate(raw["nodes"]):
        w = f"{where}: nodes[{i}]"
        if not isinstance(node, dict) or not isinstance(node.get("name"), str):
            raise ConnectomeError(f"{w}: expected an object with a string 'name'")
        if node["name"] in names:
            raise ConnectomeError(f"{w}: cell type {node['name']!r} listed twice")
        names.append(node["name"])
        strides.append(_pattern(node.get("pattern"), f"{w} ({node['name']}) pattern"))
        bias.append(_optional_number(node.get("bias"), f"{w} bias"))
        tau.append(_optional_number(node.get("time_constant"), f"{w} time_constant"))
    index = {n: i for i, n in enumerate(names)}
    src, tgt, sign, offs, nsyn = [], [], [], [], []
    seen = set()
    for i, e in enumerate(raw["edges"]):
        w = f"{where}: edges[{i}]"
        if not isinstance(e, dict):
            raise ConnectomeError(f"{w}: expected an object")
        for key in ("src", "tar"):
            if e.get(key) not in index:
                raise ConnectomeError(f"{w}: {key} {e.get(key)!r} is not a cell type of 'nodes'")
        pair = (e["src"], e["tar"])
        if pair in seen:
            raise ConnectomeError(f"{w}: type pair {pair[0]} -> {pair[1]} listed twice")
        seen.add(pair)
        if e.get("alpha") not in (1, -1) or isinstance(e.get("alpha"), bool):
            raise ConnectomeError(f"{w} ({pair[0]} -> {pair[1]}): alpha must be +1 or -1")
        o, n = _offsets(e.get("offsets"), f"{w} ({pair[0]} -> {pair[1]}) offsets")
        src.append(index[pair[0]])
        tgt.append(index[pair[1]])
        sign.append(e["alpha"])
        offs.append(o)
        nsyn.append(n)
    io = {}
    for key in ("input_units", "output_units"):
        units = raw.get(key, [])
        unknown = [u for u in units if u not in index]
        if unknown:
            raise ConnectomeError(f"{where}: {key} names unknown cell types {unknown}")
        io[key] = tuple(units)
    return LatticeSpec(
        source=where,
        type_names=tuple(names),
        strides=np.array(strides, np.int64).reshape(-1, 2),
        pair_source=np.array(src, np.int64),
        pair_target=np.array(tgt, np.int64),
        pair_sign=np.array(sign, np.int8),
        offsets=tuple(offs),
        n_syn=tuple(nsyn),
        input_types=io["input_units"],
        output_types=io["output_units"],
        node_bias=np.array(bias, np.float64),
        node_time_const=np.array(tau, np.float64),
    )


def _pattern(p, w: str) -> tuple[int, int]:
    ok = isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
    if ok and p[0] == "stride":
        s = p[1]
        if isinstance(s, list) and len(s) == 2 and all(_posint(x) for x in s):
            return int(s[0]), int(s[1])
    elif ok and p[0] == "tile" and _posint(p[1]):
        return int(p[1]), int(p[1])
    elif ok and p[0] == "single":
        return 0, 0
    raise ConnectomeError(
        f'{w}: expected ["stride", [su, sv]], ["tile", s] (positive integers) or '
        f'["single", null], got {p!r}'
    )


def _posint(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _optional_number(x, w: str) -> float:
    if x is None:
        return np.nan
    if isinstance(x, bool) or not isinstance(x, int | float) or not np.isfinite(x):
        raise ConnectomeError(f"{w}: expected a finite number or null, got {x!r}")
    return float(x)


def _offsets(offsets, w: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(offsets, list) or not offsets:
        raise ConnectomeError(f"{w}: expected a non-empty list of [[du, dv], n_syn]")
    du_dv, n = [], []
    for j, item in enumerate(offsets):
        good = (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], list)
            and len(item[0]) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in item[0])
            and isinstance(item[1], int | float)
            and not isinstance(item[1], bool)
        )
        if not good:
            raise ConnectomeError(f"{w}[{j}]: expected [[du, dv], n_syn] with integer du, dv")
        if not (np.isfinite(item[1]) and item[1] > 0):
            raise ConnectomeError(f"{w}[{j}]: n_syn must be a finite number > 0, got {item[1]}")
        du_dv.append(item[0])
        n.append(float(item[1]))
    arr = np.array(du_dv, np.int64)
    if np.unique(arr, axis=0).shape[0] != arr.shape[0]:
        raise ConnectomeError(f"{w}: an offset (du, dv) is listed twice")
    return arr, np.array(n, np.float64)


def hull_fill(offsets: np.ndarray, n_syn: np.ndarray, fill: float):
    """The offsets with ``fill`` synapses added at every lattice point inside the convex
    hull of the given ones that they do not list (flyvis's ``fill_hull``: matplotlib's
    ``Path.contains_points`` on the hull polygon, so that points on its boundary are
    classified as flyvis classifies them)."""
    if fill <= 0 or offsets.shape[0] < 3:
        return offsets, n_syn, 0
    from matplotlib.path import Path as MplPath

    hull = _convex_hull(offsets)
    if hull.shape[0] < 3:
        return offsets, n_syn, 0
    (u0, v0), (u1, v1) = offsets.min(axis=0), offsets.max(axis=0)
    gu, gv = np.meshgrid(np.arange(u0, u1 + 1), np.arange(v0, v1 + 1), indexing="ij")
    grid = np.stack([gu.ravel(), gv.ravel()], axis=1)
    inside = grid[MplPath(hull.astype(float)).contains_points(grid)]
    known = {tuple(x) for x in offsets.tolist()}
    new = np.array([p for p in inside.tolist() if tuple(p) not in known], np.int64).reshape(-1, 2)
    return (
        np.concatenate([offsets, new]),
        np.concatenate([n_syn, np.full(new.shape[0], float(fill))]),
        new.shape[0],
    )


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull, counter-clockwise, collinear points left out
    (Andrew's monotone chain)."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return np.array(pts, np.int64).reshape(-1, 2)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], np.int64).reshape(-1, 2)


def expand(spec: LatticeSpec, extent: int = 15, n_syn_fill: float = 1.0) -> Lattice:
    """Cells and connections of ``spec`` on the lattice of ``extent`` (see the module
    docstring)."""
    check_extent(extent)
    if not (np.isfinite(n_syn_fill) and n_syn_fill >= 0):
        raise ConnectomeError(f"n_syn_fill must be a finite number >= 0, got {n_syn_fill!r}")
    cu, cv = columns(extent)
    types, us, vs = [], [], []
    for t, (su, sv) in enumerate(spec.strides.tolist()):
        if su == 0:  # "single": the central column only
            keep = (cu == 0) & (cv == 0)
        else:
            keep = (cu % su == 0) & (cv % sv == 0)
        types.append(np.full(int(keep.sum()), t, np.int32))
        us.append(cu[keep])
        vs.append(cv[keep])
    cell_type, u, v = (np.concatenate(x) for x in (types, us, vs))
    # cell index by (type, u, v): a dense table over the lattice's bounding box
    side = 2 * extent + 1
    n_types = len(spec.type_names)
    lookup = np.full((n_types, side, side), -1, np.int64)
    lookup[cell_type, u + extent, v + extent] = np.arange(cell_type.size)
    by_type = [np.flatnonzero(cell_type == t) for t in range(n_types)]
    parts = {k: [] for k in ("pre", "post", "n_syn", "pair", "du", "dv")}
    filled = 0
    for p in range(spec.pair_source.size):
        offs, nsyn, n_new = hull_fill(spec.offsets[p], spec.n_syn[p], n_syn_fill)
        src = by_type[spec.pair_source[p]]
        su, sv = u[src], v[src]
        for k, ((du, dv), n) in enumerate(zip(offs.tolist(), nsyn.tolist(), strict=True)):
            tu, tv = su + du, sv + dv
            ok = (np.abs(tu) <= extent) & (np.abs(tv) <= extent)
            tgt = np.full(src.size, -1, np.int64)
            tgt[ok] = lookup[spec.pair_target[p], tu[ok] + extent, tv[ok] + extent]
            hit = tgt >= 0
            m = int(hit.sum())
            if not m:
                continue
            if k >= offs.shape[0] - n_new:
                filled += m
            parts["pre"].append(src[hit])
            parts["post"].append(tgt[hit])
            parts["n_syn"].append(np.full(m, n, np.float32))
            parts["pair"].append(np.full(m, p, np.int32))
            parts["du"].append(np.full(m, du, np.int32))
            parts["dv"].append(np.full(m, dv, np.int32))

    def cat(key, dtype):
        return np.concatenate(parts[key]).astype(dtype) if parts[key] else np.zeros(0, dtype)

    pair = cat("pair", np.int32)
    return Lattice(
        spec=spec,
        extent=int(extent),
        n_syn_fill=float(n_syn_fill),
        cell_type=cell_type,
        u=u,
        v=v,
        pre=cat("pre", np.int64),
        post=cat("post", np.int64),
        sign=spec.pair_sign[pair].astype(np.int8),
        n_syn=cat("n_syn", np.float32),
        pair=pair,
        du=cat("du", np.int32),
        dv=cat("dv", np.int32),
        filled=filled,
    )
