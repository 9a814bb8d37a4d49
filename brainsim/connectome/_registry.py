"""Loaders selected by format name, and the cached entry point :func:`load`."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brainsim.connectome._connectome import Connectome
from brainsim.connectome._errors import ConnectomeError

# format name -> "module:function"; imported on first use so that optional extras (cect)
# are only needed by the format that uses them.
_LOADERS = {
    "shiu": "brainsim.connectome._shiu:load_shiu",
    "flywire": "brainsim.connectome._flywire:load_flywire",
    "flywire_feather": "brainsim.connectome._flywire_feather:load_flywire_feather",
    "neuprint": "brainsim.connectome._neuprint:load_neuprint",
    "neuprint_flat": "brainsim.connectome._neuprint_flat:load_neuprint_flat",
    "banc": "brainsim.connectome._banc:load_banc",
    "edgelist": "brainsim.connectome._edgelist:load_edgelist",
    "celegans": "brainsim.connectome._celegans:load_celegans",
    "synthetic": "brainsim.connectome._synthetic:load_synthetic",
    "flyvis": "brainsim.connectome._flyvis:load_flyvis",
}

FORMATS = tuple(_LOADERS)


def loader(fmt: str) -> Callable[..., Connectome]:
    if fmt not in _LOADERS:
        raise ConnectomeError(f"unknown connectome format {fmt!r}; known: {', '.join(FORMATS)}")
    module, func = _LOADERS[fmt].split(":")
    return getattr(importlib.import_module(module), func)


def load(
    source: str | Path,
    fmt: str,
    *,
    cache_dir: str | Path | None = None,
    **options: Any,
) -> Connectome:
    """Load a connectome with the loader named ``fmt``.

    With ``cache_dir``, the parsed connectome is saved there under the checksum of its
    sources and options, and later loads of unchanged sources read that file instead. A
    cached file that fails its checks is logged, parsed again and overwritten; the
    connectome returned then counts it under ``cache_file_rejected`` in its provenance.
    """
    fn = loader(fmt)
    if cache_dir is None:
        return fn(source, **options)
    from brainsim.connectome._cache import cache_key, load_cached, save_cached

    key = cache_key(source, fmt, options)
    hit, rejected = load_cached(cache_dir, key)
    if hit is not None:
        return hit
    conn = fn(source, **options)
    save_cached(conn, cache_dir, key)
    if rejected is not None:
        counts = {**conn.provenance.counts, "cache_file_rejected": 1}
        conn = dataclasses.replace(
            conn, provenance=dataclasses.replace(conn.provenance, counts=counts)
        )
    return conn
