"""On-disk cache of parsed connectomes: one ``.npz`` file per source checksum.

The file holds the CSR arrays, the neuron table as Arrow IPC bytes and the provenance as
JSON. It is written to a temporary name and renamed, so a crash never leaves a half file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from brainsim.connectome._checksum import file_sha256
from brainsim.connectome._connectome import Connectome, Provenance

CACHE_VERSION = 1


def _table_to_bytes(table: pa.Table) -> np.ndarray:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return np.frombuffer(sink.getvalue(), dtype=np.uint8)


def _table_from_bytes(buf: np.ndarray) -> pa.Table:
    return pa.ipc.open_file(pa.BufferReader(buf.tobytes())).read_all()


def save(conn: Connectome, path: str | Path) -> Path:
    """Write ``conn`` to ``path`` (.npz) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        "version": np.array(CACHE_VERSION),
        "indptr": conn.indptr,
        "indices": conn.indices,
        "counts": conn.counts,
        "neurons": _table_to_bytes(conn.neurons),
        "provenance": np.frombuffer(conn.provenance_json().encode(), dtype=np.uint8),
    }
    if conn.gap_junctions is not None:
        arrays["gap_junctions"] = _table_to_bytes(conn.gap_junctions)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_file(path: str | Path) -> Connectome:
    """Read a connectome written by :func:`save`."""
    with np.load(path, allow_pickle=False) as z:
        if int(z["version"]) != CACHE_VERSION:
            raise ValueError(f"{path}: cache version {int(z['version'])}, expected {CACHE_VERSION}")
        gap = _table_from_bytes(z["gap_junctions"]) if "gap_junctions" in z.files else None
        return Connectome(
            neurons=_table_from_bytes(z["neurons"]),
            indptr=z["indptr"],
            indices=z["indices"],
            counts=z["counts"],
            provenance=Provenance.from_json(json.loads(z["provenance"].tobytes().decode())),
            gap_junctions=gap,
        )


def cache_key(source: str | Path, fmt: str, options: dict[str, Any]) -> str:
    """Checksum of the source's bytes (every file of a folder), the format and the options.

    A source that is not a path (a ``synthetic:...`` spec) is keyed by its text.
    """
    h = hashlib.sha256(f"v{CACHE_VERSION}|{fmt}|".encode())
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    p = Path(str(source))
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file())
    elif p.is_file():
        files = [p]
    else:
        files = []
        h.update(str(source).encode())
        if fmt == "synthetic":
            # key on the resolved spec and generator version, so that new defaults miss
            from brainsim.connectome._synthetic import GENERATOR_VERSION, parse_spec

            spec = dataclasses.asdict(parse_spec(str(source), **options))
            h.update(json.dumps([GENERATOR_VERSION, spec], sort_keys=True).encode())
    if p.is_file():
        # loaders that take one file read their companion tables beside it
        files += sorted(
            f
            for f in p.parent.iterdir()
            if f.is_file() and f != p and f.name.startswith(("neurons", "classification"))
        )
    # files named by options (transmitter tables, neuron tables) are sources too
    files += sorted(
        Path(v) for v in options.values() if isinstance(v, str | Path) and Path(v).is_file()
    )
    if fmt == "celegans":
        from importlib.metadata import PackageNotFoundError, version

        try:
            h.update(version("cect").encode())
        except PackageNotFoundError:
            pass
    for f in files:
        h.update(f.name.encode())
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def load_cached(cache_dir: str | Path, key: str) -> Connectome | None:
    path = Path(cache_dir) / f"{key}.npz"
    if not path.exists():
        return None
    try:
        return load_file(path)
    except Exception:
        # A stale or foreign file under our name: parse the sources again and overwrite it.
        return None


def save_cached(conn: Connectome, cache_dir: str | Path, key: str) -> Path:
    return save(conn, Path(cache_dir) / f"{key}.npz")
