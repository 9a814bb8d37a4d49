"""Kernel budgets remembered between runs of the same job, so that a repeated run needs no
budget re-runs (each one re-runs a chunk and recompiles it).

The windowed stepper sizes its lists by budgets that grow when a chunk overflows them; a
run reports the sizes it needed (``stats["budgets"]``, with headroom). They are kept in
``$BRAINSIM_CACHE/budgets/<key>.json``, keyed by everything that shapes the activity: the
config's content without its output and seed, the connectome checksum, the trials each
device holds in a batch (budgets size one device's lists), brainsim's version and the JAX
backend. Budgets only size arrays: a remembered size that is too small grows as before, so
results never depend on this file (tested).
A damaged or foreign file is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from brainsim._paths import cache_dir


def budget_key(raw_config: dict, connectome_checksum: str, batch_trials: int, backend: str):
    from brainsim import __version__

    job = {k: v for k, v in raw_config.items() if k != "output"}
    job["simulation"] = {k: v for k, v in job.get("simulation", {}).items() if k != "seed"}
    text = json.dumps(
        [job, connectome_checksum, batch_trials, __version__, backend], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _path(key: str) -> Path:
    return cache_dir("budgets") / f"{key}.json"


def recall(key: str, fields: tuple[str, ...]) -> dict | None:
    """The remembered budgets of a job (a dict of the Budgets fields), or None."""
    try:
        data = json.loads(_path(key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or set(data) != set(fields):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in data.values()):
        return None
    return data


def remember(key: str, budgets: dict) -> None:
    """Keep a job's needed budgets (best effort: a cache that cannot be written is
    skipped; the next run then grows its budgets again)."""
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(budgets, f)
        os.replace(tmp, path)
    except OSError:
        pass
