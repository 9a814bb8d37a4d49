"""Neuron selectors: the ways a config names a set of neurons.

A selector is a TOML table; every key given narrows or adds to the set as follows:
``ids`` (list of external ids), ``file`` (a text file of ids, one per line, ``#`` comments),
``cell_type``, ``class``, ``super_class``, ``side`` (a string or a list of strings, matched
exactly against the neuron table's column). Keys of different kinds combine as a union.
An unknown id or a name that matches nothing is an error naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainsim.connectome import Connectome, ConnectomeError
from brainsim.experiments._errors import ConfigError

COLUMN_KEYS = ("cell_type", "class", "super_class", "side")
SELECTOR_KEYS = ("ids", "file", *COLUMN_KEYS)


def select(
    conn: Connectome, selector: dict, *, where: str, base_dir: Path | None = None
) -> np.ndarray:
    """Internal indices (int32, sorted, unique) of the neurons a selector names."""
    if not isinstance(selector, dict) or not selector:
        raise ConfigError(f"{where}: a neuron selector is a table with one of {SELECTOR_KEYS}")
    unknown = set(selector) - set(SELECTOR_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown selector key(s) {sorted(unknown)}; known: {SELECTOR_KEYS}"
        )
    parts = []
    if "ids" in selector:
        ids = selector["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ConfigError(f"{where}.ids: expected a list of integer neuron ids")
        parts.append(_by_ids(conn, ids, f"{where}.ids"))
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
        parts.append(_by_ids(conn, ids, f"{where}.file ({path})"))
    for col in COLUMN_KEYS:
        if col not in selector:
            continue
        names = selector[col]
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
            raise ConfigError(f"{where}.{col}: expected a string or a list of strings")
        if col not in conn.neurons.column_names:
            raise ConfigError(f"{where}.{col}: the connectome's neuron table has no {col!r} column")
        values = np.asarray(conn.neurons.column(col).to_pylist(), dtype=object)
        for name in names:
            hit = np.nonzero(values == name)[0]
            if hit.size == 0:
                raise ConfigError(f"{where}.{col}: {name!r} matches no neuron")
            parts.append(hit.astype(np.int32))
    out = np.unique(np.concatenate(parts)).astype(np.int32)
    if out.size == 0:
        raise ConfigError(f"{where}: the selection is empty")
    return out


def _by_ids(conn: Connectome, ids: list[int], where: str) -> np.ndarray:
    if not ids:
        raise ConfigError(f"{where}: empty list of ids")
    try:
        return conn.index_of(ids, what=f"ids in {where}")
    except ConnectomeError as e:
        raise ConfigError(str(e)) from None
