"""Neuron selectors: the ways a config names a set of neurons.

A selector is a TOML table whose keys each name neurons; several keys form a union:
``ids`` (list of external ids), ``file`` (a text file of ids, one per line, ``#`` comments),
``set`` (a published neuron set, e.g. ``"shiu2024:sugar_right_grn"``, see
:func:`published_sets`), ``cell_type``, ``class``, ``super_class``, ``side`` (a string or a
list of strings, matched exactly against the neuron table's column), ``neuropil`` (the same,
matched against the neuron's main input or output neuropil: the ``input_neuropil`` and
``output_neuropil`` columns of the ``flywire`` and ``flywire_feather`` loaders), ``all =
true`` (every neuron: background drive, a whole-network readout).

An unknown id or a name that matches nothing is an error naming it. With
``allow_missing = true``, ids absent from the loaded connectome (e.g. FlyWire ids of
release 630 that changed by release 783) are left out instead; which ones is reported
through the ``missing`` list that :func:`select` fills.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brainsim.connectome import Connectome, ConnectomeError
from brainsim.experiments._errors import ConfigError

COLUMN_KEYS = ("cell_type", "class", "super_class", "side")
# the FlyWire release of the published sets' root ids (the "note" of the data file)
PUBLISHED_SETS_RELEASE = "630"
REGION_COLUMNS = ("input_neuropil", "output_neuropil")
SELECTOR_KEYS = ("ids", "file", "set", *COLUMN_KEYS, "neuropil", "all", "allow_missing")


def published_sets() -> dict:
    """Neuron sets published with Shiu et al. 2024, by name (``"shiu2024:<name>"``).

    Source: the figures notebook of the paper's model code (FlyWire release 630 root ids),
    as collected in ``brainsim/data/shiu2024_neuron_sets.json``; readouts (MN9, aDN1, aDN2,
    aBN1) are sets of one.
    """
    path = Path(__file__).parent.parent / "data" / "shiu2024_neuron_sets.json"
    raw = json.loads(path.read_text())
    out = {f"shiu2024:{k}": [int(i) for i in v["ids"]] for k, v in raw["sets"].items()}
    out.update({f"shiu2024:{k}": [int(v["id"])] for k, v in raw["readouts"].items()})
    return out


def select(
    conn: Connectome,
    selector: dict,
    *,
    where: str,
    base_dir: Path | None = None,
    missing: list | None = None,
) -> np.ndarray:
    """Internal indices (int32, sorted, unique) of the neurons a selector names.

    Ids left out under ``allow_missing`` are appended to ``missing`` when given."""
    if not isinstance(selector, dict) or not selector:
        raise ConfigError(f"{where}: a neuron selector is a table with one of {SELECTOR_KEYS}")
    unknown = set(selector) - set(SELECTOR_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown selector key(s) {sorted(unknown)}; known: {SELECTOR_KEYS}"
        )
    allow = selector.get("allow_missing", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"{where}.allow_missing: expected true or false")
    by_ids = lambda ids, w, note="": _by_ids(conn, ids, w, allow, missing, note)  # noqa: E731
    parts = []
    if "all" in selector:
        if selector["all"] is not True:
            raise ConfigError(f"{where}.all: expected true (every neuron), got {selector['all']!r}")
        parts.append(np.arange(conn.n_neurons, dtype=np.int32))
    if "ids" in selector:
        ids = selector["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ConfigError(f"{where}.ids: expected a list of integer neuron ids")
        parts.append(by_ids(ids, f"{where}.ids"))
    if "set" in selector:
        names = selector["set"]
        names = [names] if isinstance(names, str) else names
        sets = published_sets()
        for name in names:
            if name not in sets:
                raise ConfigError(f"{where}.set: unknown set {name!r}; known: {', '.join(sets)}")
            parts.append(by_ids(sets[name], f"{where}.set ({name})", _release_note(conn)))
    if "file" in selector:
        path = Path(selector["file"])
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        if not path.exists():
            raise ConfigError(f"{where}.file: {path} does not exist")
        ids = []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                try:
                    ids.append(int(line))
                except ValueError:
                    raise ConfigError(f"{path}:{lineno}: not an integer id: {line!r}") from None
        parts.append(by_ids(ids, f"{where}.file ({path})"))
    for col in (*COLUMN_KEYS, "neuropil"):
        if col not in selector:
            continue
        names = selector[col]
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
            raise ConfigError(f"{where}.{col}: expected a string or a list of strings")
        columns = REGION_COLUMNS if col == "neuropil" else (col,)
        if not set(columns) <= set(conn.neurons.column_names):
            hint = (
                "; the formats flywire and flywire_feather give them" if col == "neuropil" else ""
            )
            raise ConfigError(
                f"{where}.{col}: the connectome's neuron table has no "
                f"{' or '.join(repr(c) for c in columns)} column{hint}"
            )
        values = [np.asarray(conn.neurons.column(c).to_pylist(), dtype=object) for c in columns]
        for name in names:
            hit = np.nonzero(np.logical_or.reduce([v == name for v in values]))[0]
            if hit.size == 0:
                raise ConfigError(f"{where}.{col}: {name!r} matches no neuron")
            parts.append(hit.astype(np.int32))
    if not parts:
        raise ConfigError(f"{where}: a neuron selector needs one of {SELECTOR_KEYS[:-1]}")
    out = np.unique(np.concatenate(parts)).astype(np.int32)
    if out.size == 0:
        raise ConfigError(f"{where}: the selection is empty")
    return out


def _release_note(conn: Connectome) -> str:
    """Why ids of a published set may be missing: they belong to one FlyWire release."""
    release = conn.provenance.options.get("release")
    this = f"release {release}" if release is not None else "of a release brainsim cannot tell"
    return (
        f"; the set lists FlyWire release {PUBLISHED_SETS_RELEASE} root ids and this "
        f"connectome ({conn.provenance.format}) is {this}: root ids change between releases, "
        f"so the missing ids may belong to another release"
    )


def _by_ids(
    conn: Connectome, ids, where: str, allow_missing: bool, missing: list | None, note: str = ""
):
    if not ids:
        raise ConfigError(f"{where}: empty list of ids")
    ids = np.asarray(ids, np.int64)
    if allow_missing:
        present = np.isin(ids, conn.ids)
        if missing is not None:
            missing.extend(int(i) for i in ids[~present])
        ids = ids[present]
        if ids.size == 0:
            return np.zeros(0, np.int32)
    try:
        return conn.index_of(ids, what=f"ids in {where}")
    except ConnectomeError as e:
        raise ConfigError(
            f"{e}{note}; set allow_missing = true in the selector to run without them"
        ) from None
