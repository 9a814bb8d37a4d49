"""Completed batches of a long experiment, kept so that ``brainsim run --resume`` goes on
where an interrupted or crashed run stopped.

An experiment of many conditions runs in batches. After each batch its spikes (and traces)
are saved under ``$BRAINSIM_CACHE/resume/<hash of the results folder>/``; the folder's
``run.json`` names the run they belong to: a hash of the config's content, the connectome
checksum, brainsim's version and the JAX backend. ``--resume`` reuses the saved batches of
that same run, and only those: every condition's input noise is keyed by its own number
(not by its batch), so a resumed run's results equal an uninterrupted one's. A run that
completes removes its saved batches; a run without ``--resume`` starts them anew.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from brainsim._paths import cache_dir
from brainsim.experiments._errors import ConfigError

_ARRAYS = ("trial", "step", "neuron", "rec_idx")


def run_identity(
    raw_config: dict, connectome_checksum: str, backend: str, poisson_stream: int
) -> dict:
    """What a saved batch must share with the run that reuses it (the stream is named
    apart: its default is not in the raw config)."""
    from brainsim import __version__

    text = json.dumps(raw_config, sort_keys=True, default=str)
    return {
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "connectome_checksum": connectome_checksum,
        "brainsim": __version__,
        "backend": backend,
        "poisson_stream": poisson_stream,
    }


class BatchStore:
    """The saved batches of the run writing ``out_dir`` (one ``.npz`` per batch, keyed by
    its first condition and its number of conditions)."""

    def __init__(self, out_dir: Path, identity: dict):
        key = hashlib.sha256(str(Path(os.path.abspath(out_dir))).encode()).hexdigest()[:32]
        self.folder = cache_dir("resume") / key
        self.identity = identity
        self.out_dir = out_dir

    def start(self, resume: bool) -> int:
        """Prepare for a run; returns how many saved batches it may reuse. Without
        ``resume`` any saved batches are discarded. With it, saved batches of another run
        are an error (the config or the connectome changed)."""
        saved = self._saved_identity()
        if not resume or saved is None:
            self.clear()
            return 0
        if saved != self.identity:
            changed = [k for k in self.identity if saved.get(k) != self.identity[k]]
            raise ConfigError(
                f"--resume: the batches saved for {self.out_dir} belong to another run "
                f"({', '.join(changed)} changed); run without --resume to start over"
            )
        return len(list(self.folder.glob("batch-*.npz")))

    def _saved_identity(self) -> dict | None:
        try:
            return json.loads((self.folder / "run.json").read_text())
        except (OSError, ValueError):
            return None

    def _path(self, first: int, n_conditions: int) -> Path:
        return self.folder / f"batch-{first:08d}-{n_conditions:08d}.npz"

    def load(self, first: int, n_conditions: int, ids: np.ndarray):
        """The saved SimResult of this batch, or None."""
        from brainsim.sim import SimResult

        path = self._path(first, n_conditions)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode())
                arrays = {k: z[k] for k in _ARRAYS}
                v_rec = z["v_rec"] if "v_rec" in z.files else None
                g_rec = z["g_rec"] if "g_rec" in z.files else None
        except (OSError, ValueError, KeyError):
            return None  # a damaged file is simulated again
        return SimResult(
            **arrays,
            n_trials=meta["n_trials"],
            n_steps=meta["n_steps"],
            dt_ms=meta["dt_ms"],
            ids=ids,
            v_rec=v_rec,
            g_rec=g_rec,
            stats=meta["stats"] | {"resumed": True},
        )

    def save(self, first: int, n_conditions: int, result) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._saved_identity() is None:
            _atomic_write(self.folder / "run.json", json.dumps(self.identity).encode())
        meta = {
            "n_trials": result.n_trials,
            "n_steps": result.n_steps,
            "dt_ms": result.dt_ms,
            "stats": result.stats,
        }
        arrays = {k: np.asarray(getattr(result, k)) for k in _ARRAYS}
        if result.v_rec is not None:
            arrays["v_rec"], arrays["g_rec"] = result.v_rec, result.g_rec
        arrays["meta"] = np.frombuffer(json.dumps(meta, default=_plain).encode(), np.uint8)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, self._path(first, n_conditions))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
