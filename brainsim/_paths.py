"""The one home of brainsim's cache root: ``$BRAINSIM_CACHE``, else ``~/.cache/brainsim``.

Parsed connectomes, fetched data, compiled native kernels, JAX's compilation cache and the
locks on results folders all live under it, each in a subfolder named here.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$BRAINSIM_CACHE`` if set, else ``~/.cache/brainsim``."""
    return Path(os.environ.get("BRAINSIM_CACHE", Path.home() / ".cache" / "brainsim"))


def cache_dir(kind: str) -> Path:
    """A subfolder of the cache root: ``connectomes``, ``data``, ``native``, ``jax``, ``locks``."""
    return cache_root() / kind
