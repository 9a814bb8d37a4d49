"""On-disk cache of parsed connectomes: one ``.npz`` file per source checksum.

The file holds the CSR arrays, the neuron table as Arrow IPC bytes and the provenance as
JSON. It is written to a temporary name and renamed, so a crash never leaves a half file.

A file is only trusted if it proves itself on load: its format version, the cache key it was
written for (so a file copied under another key is refused), a sha256 over all its arrays
(so an edited or corrupted file is refused) and the CSR invariants. A cached file that fails
is reported and parsed again from the sources (:func:`load_cached`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from brainsim.connectome._checksum import file_sha256
from brainsim.connectome._connectome import Connectome, Provenance

# 2: the file names its cache key and carries a checksum of its arrays
CACHE_VERSION = 2

_log = logging.getLogger("brainsim.connectome")


class CacheFileError(ValueError):
    """A cache file that cannot be trusted: other version, other key, damaged or edited."""


def _table_to_bytes(table: pa.Table) -> np.ndarray:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return np.frombuffer(sink.getvalue(), dtype=np.uint8)


def _table_from_bytes(buf: np.ndarray) -> pa.Table:
    return pa.ipc.open_file(pa.BufferReader(buf.tobytes())).read_all()


def _content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every array of a cache file but the checksum itself: name, dtype, shape
    and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == "content_sha256":
            continue
        a = np.asarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
    return h.hexdigest()


def _text(s: str) -> np.ndarray:
    return np.frombuffer(s.encode(), dtype=np.uint8)


def save(conn: Connectome, path: str | Path, *, key: str = "") -> Path:
    """Write ``conn`` to ``path`` (.npz) atomically; ``key`` is the cache key it is for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        "version": np.array(CACHE_VERSION),
        "key": _text(key),
        "indptr": conn.indptr,
        "indices": conn.indices,
        "counts": conn.counts,
        "neurons": _table_to_bytes(conn.neurons),
        "provenance": _text(conn.provenance_json()),
    }
    if conn.gap_junctions is not None:
        arrays["gap_junctions"] = _table_to_bytes(conn.gap_junctions)
    if conn.n_syn is not None:
        arrays["n_syn"] = conn.n_syn
    arrays["content_sha256"] = _text(_content_sha256(arrays))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_file(path: str | Path, *, key: str | None = None) -> Connectome:
    """Read a connectome written by :func:`save`.

    Raises :class:`CacheFileError` for a file of another cache version, one written for
    another ``key`` (when given) or one whose arrays do not match their stored checksum, and
    :class:`~brainsim.connectome.ConnectomeError` for arrays that break the CSR invariants.
    """
    with np.load(path, allow_pickle=False) as z:
        version = int(z["version"]) if "version" in z.files else None
        if version != CACHE_VERSION:
            raise CacheFileError(f"{path}: cache version {version}, expected {CACHE_VERSION}")
        arrays = {name: z[name] for name in z.files}
    if "content_sha256" not in arrays:
        raise CacheFileError(f"{path}: no content checksum")
    if arrays["content_sha256"].tobytes().decode() != _content_sha256(arrays):
        raise CacheFileError(f"{path}: content does not match its checksum (edited or damaged)")
    written_for = arrays["key"].tobytes().decode()
    if key is not None and written_for != key:
        raise CacheFileError(
            f"{path}: written for cache key {written_for[:16] or '(none)'}…, not {key[:16]}…"
        )
    gap = _table_from_bytes(arrays["gap_junctions"]) if "gap_junctions" in arrays else None
    # Connectome() checks the CSR invariants (dtypes, lengths, index ranges, nonzero counts)
    return Connectome(
        neurons=_table_from_bytes(arrays["neurons"]),
        indptr=arrays["indptr"],
        indices=arrays["indices"],
        counts=arrays["counts"],
        provenance=Provenance.from_json(json.loads(arrays["provenance"].tobytes().decode())),
        gap_junctions=gap,
        n_syn=arrays.get("n_syn"),
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
    if fmt == "flyvis" and not files:
        from brainsim.flyvis._data import connectome_file

        files = [connectome_file(str(source))]
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


def load_cached(cache_dir: str | Path, key: str) -> tuple[Connectome | None, str | None]:
    """``(connectome, None)`` for a trusted file under ``key``, ``(None, None)`` where there
    is none, ``(None, reason)`` for a file there that fails a check of :func:`load_file` or
    cannot be read (it is logged; the caller parses the sources again and overwrites it)."""
    path = Path(cache_dir) / f"{key}.npz"
    if not path.exists():
        return None, None
    try:
        return load_file(path, key=key), None
    except Exception as e:
        # stale, foreign, edited or damaged: never used
        reason = f"{type(e).__name__}: {e}"
        _log.warning("brainsim: cached connectome rejected, parsing the sources again: %s", reason)
        return None, reason


def save_cached(conn: Connectome, cache_dir: str | Path, key: str) -> Path:
    return save(conn, Path(cache_dir) / f"{key}.npz", key=key)
