"""Content checksums of connectome sources: the key of the cache and of provenance."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_CHUNK = 1 << 22


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sources_checksum(fmt: str, files: Iterable[str | Path], options: Mapping[str, Any]) -> str:
    """sha256 over the loader format, its options and the bytes of every source file.

    Files are hashed in name order, so the checksum does not depend on listing order.
    """
    h = hashlib.sha256()
    h.update(fmt.encode())
    h.update(json.dumps(dict(options), sort_keys=True, default=str).encode())
    for p in sorted(Path(f) for f in files):
        h.update(p.name.encode())
        h.update(file_sha256(p).encode())
    return h.hexdigest()
