"""Read a results folder for plotting: manifest, Parquet tables, neuron names. No JAX."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from brainsim._arrow import read_parquet, values

KINDS = (
    "run",
    "activation_sweep",
    "silencing_screen",
    "pairwise_grid",
    "perturbation_map",
    "parameter_sweep",
    "moving_edge",
    "flash",
)


class Skip(Exception):
    """A plot cannot be drawn from this folder (missing table or column); the message says why."""


Columns = dict[str, np.ndarray]


class Results:
    """Lazy view of a results folder. Tables come back as ``{column: numpy array}``; string
    columns as object arrays, int64 ids stay int64 (FlyWire ids do not fit a float)."""

    def __init__(self, result_dir: str | Path):
        self.dir = Path(result_dir)
        if not self.dir.is_dir():
            raise FileNotFoundError(f"results folder not found: {self.dir}")
        mpath = self.dir / "manifest.json"
        self.manifest: dict = json.loads(mpath.read_text()) if mpath.is_file() else {}
        exp = self.manifest.get("experiment")
        self.experiment: dict = exp if isinstance(exp, dict) else {}
        self.kind: str = str(self.experiment.get("kind") or self._infer_kind())
        self.readout_ids = np.asarray(self.manifest.get("readout_ids") or [], dtype=np.int64)
        self._names: tuple[np.ndarray, np.ndarray] | None = None
        self._cache: dict[str, pa.Table | None] = {}

    # -- manifest -----------------------------------------------------------------------
    def meta(self, key: str, default=None):
        """A manifest value: top level first, then the experiment block, then its config."""
        for src in (self.manifest, self.experiment, self.manifest.get("config") or {}):
            if isinstance(src, dict) and src.get(key) is not None:
                return src[key]
        return default

    def drive_label(self, key: str = "drive") -> str | None:
        """A short name of a drive: ``{key}_label`` from the manifest, else the experiment's
        ``key`` selector (its set, cell type, class or ids)."""
        label = self.meta(f"{key}_label")
        if label is not None:
            return str(label)
        return selector_label(self.experiment.get(key))

    @property
    def duration_ms(self) -> float | None:
        d = self.meta("duration_ms")
        if d is None:
            d = (self.manifest.get("config") or {}).get("simulation", {}).get("duration_ms")
        return float(d) if d is not None else None

    def _infer_kind(self) -> str:
        cols = set(self.schema("conditions") or ())
        if {"rate_a_hz", "rate_b_hz"} <= cols:
            return "pairwise_grid"
        if "silenced_id" in cols:
            return "silencing_screen"
        if "driven_id" in cols:
            return "perturbation_map"
        if "rate_hz" in cols:
            return "activation_sweep"
        return "run"

    # -- tables -------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.dir / f"{name}.parquet"

    def schema(self, name: str) -> list[str] | None:
        p = self.path(name)
        return pq.read_schema(p).names if p.is_file() else None

    def _table(self, name: str) -> pa.Table | None:
        if name not in self._cache:
            p = self.path(name)
            self._cache[name] = read_parquet(p) if p.is_file() else None
        return self._cache[name]

    def table(self, name: str, required: Sequence[str] = ()) -> Columns:
        """The whole table as numpy columns; ``Skip`` if it is missing, empty or lacks one of
        ``required``."""
        t = self._table(name)
        label = f"{name}.parquet"
        if t is None:
            raise Skip(f"{label} is missing")
        missing = [c for c in required if c not in t.column_names]
        if missing:
            raise Skip(f"{label} lacks column(s) {', '.join(missing)}")
        if t.num_rows == 0:
            raise Skip(f"{label} is empty")
        return to_columns(t)

    def spikes(self, condition: int | None, trial: int | None) -> Columns:
        """Spikes of one condition and trial, read with a filter (the table can be large).
        A folder without a ``condition`` column is one condition."""
        cols = self.schema("spikes")
        if cols is None:
            raise Skip("spikes.parquet is missing")
        for c in ("t_ms", "neuron_id"):
            if c not in cols:
                raise Skip(f"spikes.parquet lacks column {c}")
        where = {}
        if condition is not None and "condition" in cols:
            where["condition"] = int(condition)
        if trial is not None and "trial" in cols:
            where["trial"] = int(trial)
        return to_columns(read_parquet(self.path("spikes"), ["t_ms", "neuron_id"], where))

    def rates(self, condition: int | None) -> Columns | None:
        """``rates.parquet`` rows of one condition (``None`` if the table is missing), read
        with a filter (a screen's table holds every condition)."""
        cols = self.schema("rates")
        if cols is None or not {"neuron_id", "rate_hz"} <= set(cols):
            return None
        where = {}
        if condition is not None and "condition" in cols:
            where["condition"] = int(condition)
        return to_columns(read_parquet(self.path("rates"), ["neuron_id", "rate_hz"], where))

    # -- names --------------------------------------------------------------------------
    def names(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Human-readable labels: the ``name`` (else ``cell_type``) of neurons.parquet, else
        the id. Repeated names (several neurons of one cell type) get the id's last digits."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._names is None:
            self._names = self._load_names()
        known_ids, known_names = self._names
        out = [str(int(i)) for i in ids]
        if known_ids.size:
            pos = np.clip(np.searchsorted(known_ids, ids), 0, known_ids.size - 1)
            for k in np.nonzero(known_ids[pos] == ids)[0]:
                n = known_names[pos[k]]
                if n is not None and str(n).strip() and str(n) != "nan":
                    out[k] = str(n)
        counts: dict[str, int] = {}
        for n in out:
            counts[n] = counts.get(n, 0) + 1
        return [
            f"{n} (…{str(int(i))[-5:]})" if counts[n] > 1 and n != str(int(i)) else n
            for n, i in zip(out, ids, strict=True)
        ]

    def _load_names(self) -> tuple[np.ndarray, np.ndarray]:
        cols = self.schema("neurons")
        empty = (np.zeros(0, np.int64), np.zeros(0, object))
        if not cols or "neuron_id" not in cols:
            return empty
        name_col = next((c for c in ("name", "cell_type") if c in cols), None)
        if name_col is None:
            return empty
        t = read_parquet(self.path("neurons"), ["neuron_id", name_col])
        ids = values(t["neuron_id"]).astype(np.int64)
        names = np.asarray(t[name_col].to_pylist(), dtype=object)
        order = np.argsort(ids, kind="stable")
        return ids[order], names[order]

    # -- conditions ---------------------------------------------------------------------
    def conditions(self) -> Columns | None:
        t = self._table("conditions")
        if t is None or t.num_rows == 0 or "condition" not in t.column_names:
            return None
        return to_columns(t)

    def condition_label(self, condition: int | None) -> str:
        conds = self.conditions()
        if conds is None or condition is None:
            return "" if condition in (None, 0) else f"condition {condition}"
        k = np.nonzero(conds["condition"] == condition)[0]
        if k.size and "label" in conds and conds["label"][k[0]] is not None:
            return str(conds["label"][k[0]])
        return f"condition {condition}"

    def raster_condition(self) -> int | None:
        """The condition the raster shows: a sweep's highest drive, a screen's control, a
        grid's max-max corner, a map's first driven neuron, else condition 0."""
        conds = self.conditions()
        if conds is None:
            return 0 if "condition" in (self.schema("spikes") or ()) else None
        c = conds["condition"]
        pick = None
        if self.kind == "activation_sweep" and "rate_hz" in conds:
            pick = int(np.argmax(np.nan_to_num(conds["rate_hz"].astype(float), nan=-np.inf)))
        elif self.kind == "silencing_screen":
            if "is_control" in conds:
                hits = np.nonzero(conds["is_control"].astype(bool))[0]
            elif "silenced_id" in conds:
                hits = np.nonzero(conds["silenced_id"] == -1)[0]
            else:
                hits = np.zeros(0, int)
            pick = int(hits[0]) if hits.size else None
        elif self.kind == "pairwise_grid" and {"rate_a_hz", "rate_b_hz"} <= conds.keys():
            a = conds["rate_a_hz"].astype(float)
            b = conds["rate_b_hz"].astype(float)
            corner = np.nonzero((a == np.nanmax(a)) & (b == np.nanmax(b)))[0]
            pick = int(corner[0]) if corner.size else int(np.nanargmax(a + b))
        elif self.kind == "perturbation_map" and "driven_id" in conds:
            driven = np.nonzero(conds["driven_id"] != -1)[0]
            pick = int(driven[np.argmin(c[driven])]) if driven.size else None
        if pick is None:
            pick = int(np.argmin(c))
        return int(c[pick])


def selector_label(selector) -> str | None:
    """``{"cell_type": "sugar_GRN"}`` -> ``"sugar_GRN"``; a list of ids -> the id or a count."""
    if not isinstance(selector, dict):
        return None
    for key in ("set", "cell_type", "class", "super_class", "side"):
        if key in selector:
            v = selector[key]
            return v if isinstance(v, str) else "+".join(map(str, v))
    ids = selector.get("ids")
    if isinstance(ids, list) and ids:
        return str(ids[0]) if len(ids) == 1 else f"{len(ids)} neurons"
    return None


def to_columns(t: pa.Table) -> Columns:
    out: Columns = {}
    for name in t.column_names:
        col = t[name]
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            out[name] = np.asarray(col.to_pylist(), dtype=object)
        elif pa.types.is_boolean(col.type):
            out[name] = values(col.fill_null(False))
        elif pa.types.is_integer(col.type) and col.null_count == 0:
            out[name] = values(col)
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            out[name] = values(col).astype(float)
        else:
            out[name] = np.asarray(col.to_pylist(), dtype=object)
    return out
