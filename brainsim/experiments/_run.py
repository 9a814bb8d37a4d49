"""``brainsim run``: a config in, a results folder out."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from brainsim import __version__
from brainsim.connectome import Connectome, load
from brainsim.experiments._config import RunConfig
from brainsim.experiments._errors import ConfigError
from brainsim.experiments._selectors import select


def default_cache_dir() -> Path:
    return (
        Path(os.environ.get("BRAINSIM_CACHE", Path.home() / ".cache" / "brainsim")) / "connectomes"
    )


def load_connectome(cfg: RunConfig) -> Connectome:
    c = cfg.connectome
    source = c["path"]
    if not source.startswith("synthetic") and not Path(source).is_absolute():
        source = str(cfg.base_dir / source)
    cache = c.get("cache", True)
    cache_dir = None if cache is False else (default_cache_dir() if cache is True else Path(cache))
    return load(source, c["format"], cache_dir=cache_dir, **c.get("options", {}))


def build_model(cfg: RunConfig):
    from brainsim.models import LIF

    try:
        return LIF(dt_ms=cfg.simulation["dt_ms"], **cfg.model)
    except ValueError as e:
        raise ConfigError(f"{cfg.path}: [model]: {e}") from None


def read_spike_times(path: Path, conn: Connectome, n_trials: int, dt_ms: float, n_steps: int):
    """(trial, step, neuron index) of replayed input events from a Parquet or CSV table with
    columns ``trial``, ``t_ms``, ``neuron_id``. Events are placed at step round(t_ms / dt)."""
    if not path.exists():
        raise ConfigError(f"spike_times: {path} does not exist")
    table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    for col in ("trial", "t_ms", "neuron_id"):
        if col not in table.column_names:
            raise ConfigError(f"{path}: missing column {col!r} (have {table.column_names})")
    trial = np.asarray(table.column("trial").to_numpy(zero_copy_only=False), dtype=np.float64)
    t_ms = np.asarray(table.column("t_ms").to_numpy(zero_copy_only=False), dtype=np.float64)
    nid = table.column("neuron_id").to_numpy(zero_copy_only=False)
    for name, arr in (("trial", trial), ("t_ms", t_ms)):
        bad = np.nonzero(~np.isfinite(arr))[0]
        if bad.size:
            raise ConfigError(f"{path}: row {bad[0] + 1}: {name} is not a finite number")
    bad = np.nonzero((trial < 0) | (trial >= n_trials) | (trial != np.round(trial)))[0]
    if bad.size:
        raise ConfigError(
            f"{path}: row {bad[0] + 1}: trial {trial[bad[0]]} not in 0..{n_trials - 1}"
        )
    step = np.round(t_ms / dt_ms).astype(np.int64)
    bad = np.nonzero((step < 0) | (step >= n_steps))[0]
    if bad.size:
        raise ConfigError(
            f"{path}: row {bad[0] + 1}: t_ms {t_ms[bad[0]]} outside the run [0, {n_steps * dt_ms})"
        )
    try:
        idx = conn.index_of(np.asarray(nid, np.int64), what=f"neuron_id values in {path}")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return trial.astype(np.int64), step, idx


def build_protocol(cfg: RunConfig, conn: Connectome):
    from brainsim.sim import Protocol

    b = cfg.simulation["trials"]
    dt = cfg.simulation["dt_ms"]
    n_steps = int(round(cfg.simulation["duration_ms"] / dt))
    poisson, current, replay = [], [], []
    for i, st in enumerate(cfg.stimuli):
        where = f"{cfg.path}: [[stimulus]] #{i + 1}"
        if st["kind"] == "poisson":
            idx = select(conn, st["neurons"], where=f"{where} neurons", base_dir=cfg.base_dir)
            rate = st["rate_hz"]
            if isinstance(rate, list) and len(rate) != b:
                raise ConfigError(f"{where} rate_hz: {len(rate)} rates for {b} trials")
            poisson.append((idx, np.asarray(rate, np.float64)))
        elif st["kind"] == "current":
            idx = select(conn, st["neurons"], where=f"{where} neurons", base_dir=cfg.base_dir)
            start = int(round(st.get("start_ms", 0.0) / dt))
            stop_ms = st.get("stop_ms", float("inf"))
            stop = n_steps if stop_ms == float("inf") else int(round(stop_ms / dt))
            current.append((idx, st["amplitude_mv"], start, stop))
        else:
            path = Path(st["path"])
            path = path if path.is_absolute() else cfg.base_dir / path
            replay.append(read_spike_times(path, conn, b, dt, n_steps))
    silence = np.zeros(conn.n_neurons, bool)
    remove = np.zeros(conn.n_neurons, bool)
    for i, p in enumerate(cfg.perturbations):
        where = f"{cfg.path}: [[perturbation]] #{i + 1} neurons"
        idx = select(conn, p["neurons"], where=where, base_dir=cfg.base_dir)
        (silence if p["kind"] == "silence" else remove)[idx] = True
    rep = None
    if replay:
        rep = tuple(np.concatenate([r[j] for r in replay]) for j in range(3))
    return Protocol.build(
        b,
        conn.n_neurons,
        poisson=poisson,
        replay=rep,
        current=current,
        silence=silence if silence.any() else None,
        remove=remove if remove.any() else None,
    )


def run_config(cfg: RunConfig, out_dir: Path | None = None, *, progress=None, log=print) -> Path:
    """Run a config and write its results folder atomically. Returns the folder."""
    import jax

    if cfg.simulation["precision"] == "float64":
        jax.config.update("jax_enable_x64", True)
    from brainsim.io import (
        atomic_dir,
        rates_table,
        spikes_table,
        traces_table,
        write_json,
        write_table,
    )
    from brainsim.sim import simulate

    out_dir = Path(out_dir or cfg.output_dir)
    t0 = time.perf_counter()
    conn = load_connectome(cfg)
    t_load = time.perf_counter() - t0
    log(f"connectome: {conn}")
    model = build_model(cfg)
    protocol = build_protocol(cfg, conn)
    rec = None
    if cfg.record:
        rec = select(
            conn,
            cfg.record["neurons"],
            where=f"{cfg.path}: [record] neurons",
            base_dir=cfg.base_dir,
        )
    sim = cfg.simulation
    t1 = time.perf_counter()
    result = simulate(
        conn,
        protocol,
        model=model,
        duration_ms=sim["duration_ms"],
        seed=sim["seed"],
        kernel=sim["kernel"],
        precision=sim["precision"],
        record=rec,
        chunk_ms=sim["chunk_ms"],
        progress=progress,
    )
    t_sim = time.perf_counter() - t1
    with atomic_dir(out_dir) as tmp:
        write_table(spikes_table(result), tmp / "spikes.parquet")
        write_table(rates_table(result), tmp / "rates.parquet")
        traces = traces_table(result)
        if traces is not None:
            write_table(traces, tmp / "traces.parquet")
        write_json(manifest(cfg, conn, result, model, t_load, t_sim), tmp / "manifest.json")
    log(
        f"{result.n_spikes} spikes in {result.n_trials} trial(s) x {result.duration_ms:g} ms; "
        f"simulated in {t_sim:.2f} s; results in {out_dir}"
    )
    return out_dir


def manifest(cfg: RunConfig, conn: Connectome, result, model, t_load: float, t_sim: float) -> dict:
    import equinox
    import jax
    import pyarrow

    dev = jax.devices()[0]
    return {
        "config": cfg.raw,
        "config_path": str(cfg.path) if cfg.path else None,
        "connectome": conn.summary() | {"provenance": conn.provenance.to_json()},
        "seed": cfg.simulation["seed"],
        "n_trials": result.n_trials,
        "duration_ms": result.duration_ms,
        "dt_ms": result.dt_ms,
        "n_spikes": result.n_spikes,
        "kernel": result.stats,
        "versions": {
            "brainsim": __version__,
            "jax": jax.__version__,
            "numpy": np.__version__,
            "equinox": equinox.__version__,
            "pyarrow": pyarrow.__version__,
            "python": platform.python_version(),
        },
        "device": {"platform": dev.platform, "kind": dev.device_kind, "count": jax.device_count()},
        "host": platform.node(),
        "wall_time_s": {"load": t_load, "simulate": t_sim},
        "model": {f.name: _plain(getattr(model, f.name)) for f in dataclasses.fields(model)},
    }


def _plain(x):
    a = np.asarray(x)
    return a.item() if a.ndim == 0 else a.tolist()
