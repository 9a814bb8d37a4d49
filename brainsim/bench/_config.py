"""``brainsim bench --config FILE``: time any ``brainsim run`` config (its connectome, model,
stepper, stimuli, experiment and ``[simulation]``) as the built-in workloads are timed.

Two measurements, in this order:

- *first run*: ``brainsim run FILE --out TMP --quiet`` in a fresh process, timed end to end
  (Python and JAX start-up, loading the connectome, compilation, budget growth, simulating,
  writing the results): what a user waits for at the command line. Its manifest gives the
  load and simulate times, the chunks re-run to grow budgets (each a compilation) and
  whether budgets remembered by an earlier run of the job were used; the files in JAX's
  compilation cache beforehand say whether compiled programs could be reused. The run
  remembers its budgets, as any ``brainsim run`` does, and the next measurement starts
  from them.
- *steady state*: in this process, the config's conditions simulated again with the code of
  ``brainsim run`` (:func:`brainsim.experiments._run.simulate_conditions`, the network
  already on the device), once to compile (``wall_s_first``), then ``repeats`` times
  (``wall_s`` the best, ``wall_s_median``). Results are not written.

A *trial-second* is one trial of one simulated second: conditions x trials x duration.
Synaptic events are counted as the workloads count them (each spike x the out-degree of the
neuron that fired, :func:`brainsim.bench._common.synaptic_events`).
"""

from __future__ import annotations

import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from brainsim.bench._common import Log, environment, no_log, synaptic_events


class BenchError(ValueError):
    """A config that ``brainsim bench --config`` cannot time; the message says why."""


def _refuse(raw: dict, path: Path, against_brian2: bool) -> None:
    from brainsim.flyvis._experiment import uses_visual

    if "fit" in raw:
        raise BenchError(
            f"{path}: a [fit] config; brainsim bench --config times `brainsim run` configs "
            "(time a fit's gradient steps with benchmarks/bench_fit.py, or leave out [fit] "
            "to time the run it starts from)"
        )
    if uses_visual(raw):
        raise BenchError(
            f'{path}: a flyvis config (format "flyvis", a visual stimulus or kind); its runner '
            "(brainsim.flyvis) is not timed by brainsim bench --config yet: time flyvis's "
            "network with benchmarks/bench_flyvis.py, or `brainsim run` it (its manifest "
            "holds the load and simulate times)"
        )
    if against_brian2:
        raise BenchError(_brian2_refusal(raw, path))


def _brian2_refusal(raw: dict, path: Path) -> str:
    """Why ``--against-brian2`` is not wired for configs, and the harness command that
    compares Brian2 on this config's network (with the protocol the harness builds)."""
    conn = raw.get("connectome", {})
    sim = raw.get("simulation", {})
    cmd = ["python benchmarks/reference/compare_brian2.py", f"--network {conn.get('path')}"]
    if conn.get("format") != "synthetic":
        cmd.append(f"--network-format {conn.get('format')}")
    for key, flag in (("trials", "--trials"), ("duration_ms", "--duration-ms")):
        if key in sim:
            cmd.append(f"{flag} {sim[key]}")
    stimuli = raw.get("stimulus", [])
    if len(stimuli) == 1 and stimuli[0].get("kind") == "poisson":
        neurons = stimuli[0].get("neurons", {})
        if list(neurons) == ["cell_type"] and isinstance(neurons["cell_type"], str):
            cmd.append(f"--input-type {neurons['cell_type']}")
        if isinstance(stimuli[0].get("rate_hz"), int | float):
            cmd.append(f"--rate-hz {stimuli[0]['rate_hz']}")
    whole = ""
    one_rate = len(stimuli) == 1 and isinstance(stimuli[0].get("rate_hz"), int | float)
    if (
        one_rate
        and stimuli[0].get("kind") == "poisson"
        and not raw.get("perturbation")
        and "experiment" not in raw
        and raw.get("model", {}).get("kind", "lif") == "lif"
    ):
        whole = (
            "; this config as it stands, whole processes side by side (Brian2 drawing its "
            "own PoissonInput): python benchmarks/bench_process_vs_brian2.py --config "
            f"{path}"
        )
    return (
        f"{path}: --against-brian2 is not wired for configs: the Brian2 harness "
        "(benchmarks/reference/compare_brian2.py, in a source checkout) builds its own protocol "
        "(LIF with Shiu et al.'s parameters, Poisson input into one cell type, replayed in both "
        "simulators) and needs its own environment (benchmarks/reference/.venv-brian2, made by "
        "benchmarks/reference/setup_brian2.sh), so it cannot run a config's stimuli, "
        "perturbations, experiment or [model]. On this config's network, spike for spike: "
        + " ".join(cmd)
        + whole
    )


def _rss_bytes(ru_maxrss: int) -> int:
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * 1024  # KiB on Linux


def _files_in(folder: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(folder)) if folder.is_dir() else 0


def first_run(path: Path, log: Log = no_log) -> tuple[dict, Path, tempfile.TemporaryDirectory]:
    """``brainsim run PATH --out TMP --quiet`` in a fresh process: its fields and the
    results folder (in a temporary folder the caller cleans up)."""
    from brainsim._paths import cache_dir

    tmp = tempfile.TemporaryDirectory(prefix="brainsim-bench-")
    out = Path(tmp.name) / "results"
    cmd = [sys.executable, "-c", "from brainsim.cli import entry; entry()", "run", str(path)]
    cmd += ["--out", str(out), "--quiet"]
    cache_files = _files_in(cache_dir("jax"))
    log(f"first run: brainsim run {path} --out {out} --quiet")
    err = Path(tmp.name) / "stderr.txt"
    with open(err, "w") as fh:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh)
        # wait4: this child's own peak RSS (RUSAGE_CHILDREN would mix in every earlier child)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = err.read_text().strip().splitlines()[-5:]
        tmp.cleanup()
        raise BenchError(
            f"brainsim run {path} failed (exit status {proc.returncode}): " + " | ".join(tail)
        )
    man = json.loads((out / "manifest.json").read_text())
    stats = man["kernel"]
    fields = {
        "first_run_wall_s": wall,
        "first_run_load_s": man["wall_time_s"]["load"],
        "first_run_simulate_s": man["wall_time_s"]["simulate"],
        "first_run_reruns": sum(int(s.get("reruns", 0)) for s in stats),
        "first_run_budgets_remembered": any(s.get("budgets_remembered") for s in stats),
        "first_run_jax_cache_files_before": cache_files,
        "first_run_peak_rss_bytes": _rss_bytes(usage.ru_maxrss),
        "first_run_n_spikes": man["n_spikes"],
    }
    return fields, out, tmp


def _spike_keys(parts, trials: int, ids) -> np.ndarray:
    """[spikes, 4] (condition, trial, step, neuron id) of a run's parts, sorted."""
    rows = [
        np.stack([first + r.trial // trials, r.trial % trials, r.step, ids[r.neuron]], axis=1)
        for first, r in parts
    ]
    keys = np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 4), np.int64)
    return keys[np.lexsort(keys.T[::-1])]


def _written_spike_keys(folder: Path, dt_ms: float) -> np.ndarray:
    import pyarrow.parquet as pq

    t = pq.read_table(folder / "spikes.parquet")
    cols = [t.column(c).to_numpy() for c in ("condition", "trial", "t_ms", "neuron_id")]
    cols[2] = np.round(cols[2] / dt_ms)
    # (each column to int64 first: neuron ids beyond 2**53 do not survive a float64 stack)
    keys = np.stack([c.astype(np.int64) for c in cols], axis=1)
    return keys[np.lexsort(keys.T[::-1])]


def config(
    path: str | Path,
    *,
    repeats: int = 2,
    with_first_run: bool = True,
    against_brian2: bool = False,
    log: Log = no_log,
) -> dict:
    """Time the ``brainsim run`` config at ``path`` (see the module docstring).

    Keys: ``workload`` ("config"), ``config``, ``kind`` (the experiment kind, "run" for a
    plain run), ``model``, ``kernel`` (the stepper that ran), ``precision``, ``devices``,
    ``format``, ``spec`` (``[connectome] path``), ``n_neurons``, ``n_connections``,
    ``n_synapses``, ``n_conditions``, ``trials`` (per condition), ``duration_ms``,
    ``trial_seconds``, ``n_batches``; the first run's ``first_run_wall_s``,
    ``first_run_load_s``, ``first_run_simulate_s``, ``first_run_reruns``,
    ``first_run_budgets_remembered``, ``first_run_jax_cache_files_before``,
    ``first_run_peak_rss_bytes``, ``first_run_n_spikes`` and ``same_spikes_as_first_run``
    (None without a first run or for a model that does not spike); the steady state's
    ``wall_s_first``, ``wall_s``, ``wall_s_median``, ``repeats``, ``s_per_trial_second``,
    ``trial_seconds_per_second``, ``reruns_first``, ``reruns_timed``, ``n_spikes``,
    ``spikes_per_trial_second``, ``synaptic_events_per_trial_second``,
    ``synaptic_events_per_second``, ``spikes_per_second``, ``neurons_firing``,
    ``mean_rate_hz`` (the spike figures None for a model that does not spike), ``native``;
    ``load_s`` (this process's connectome load), ``peak_rss_bytes`` (this process's peak
    resident memory), ``device_peak_bytes`` (peak device memory where the device reports it,
    e.g. GPUs; else None) and the environment.

    Raises ConfigError (a config that ``brainsim run`` refuses, naming file and key),
    ConnectomeError, or BenchError (a fit or flyvis config, ``against_brian2``, or a first
    run that failed).
    """
    from brainsim.experiments._config import parse_config, read_toml

    if repeats < 1:
        raise BenchError(f"repeats must be at least 1, got {repeats}")
    raw, path = read_toml(path)
    _refuse(raw, path, against_brian2)
    cfg = parse_config(raw, path)
    import jax

    if cfg.simulation["precision"] == "float64":
        jax.config.update("jax_enable_x64", True)
    from brainsim.experiments._run import (
        load_connectome,
        prepare_job,
        prepared_network,
        simulate_conditions,
        use_gap_junctions,
    )

    tmp = None
    first: dict = {}
    if with_first_run:
        first, written, tmp = first_run(path, log)
    try:
        t = time.perf_counter()
        conn = load_connectome(cfg)
        load_s = time.perf_counter() - t
        job = prepare_job(cfg, conn, log=log)
        sim = cfg.simulation
        net = prepared_network(conn, sim, job.model, use_gap_junctions(cfg))

        def once():
            t = time.perf_counter()
            parts = simulate_conditions(
                cfg, conn, job.model, job.base, copy.deepcopy(job.plan), job.rec, None,
                log=no_log, net=net,
            )  # fmt: skip
            return parts, time.perf_counter() - t

        log(f"steady state: compiling, then {repeats} timed run(s) in this process")
        warm, wall_first = once()
        walls = []
        for _ in range(repeats):
            parts, w = once()
            walls.append(w)
        same = None
        if with_first_run and job.model.spiking:
            keys = _spike_keys(parts, job.trials, conn.ids)
            same = bool(np.array_equal(keys, _written_spike_keys(written, job.model.dt_ms)))
    finally:
        if tmp is not None:
            tmp.cleanup()
    stats = [r.stats for _, r in parts]
    r0 = parts[0][1]
    trial_s = sum(r.n_trials * r.duration_ms for _, r in parts) / 1000.0
    wall = min(walls)
    spiking = job.model.spiking
    n_spikes = sum(r.n_spikes for _, r in parts)
    events = sum(synaptic_events(conn, r) for _, r in parts)
    firing = np.unique(np.concatenate([r.neuron for _, r in parts])).size
    dev_stats = jax.devices()[0].memory_stats() or {}

    def spike_figure(x):
        return x if spiking else None

    return {
        "workload": "config",
        "config": str(path),
        "kind": job.plan.kind,
        "model": job.model.kind,
        "kernel": ", ".join(dict.fromkeys(s["kernel"] for s in stats)),
        "precision": sim["precision"],
        "devices": max(int(s.get("devices", 1)) for s in stats),
        "format": cfg.connectome["format"],
        "spec": cfg.connectome["path"],
        "n_neurons": conn.n_neurons,
        "n_connections": conn.n_connections,
        "n_synapses": conn.n_synapses,
        "n_conditions": len(job.plan.conditions),
        "trials": job.trials,
        "duration_ms": r0.duration_ms,
        "trial_seconds": trial_s,
        "n_batches": len(parts),
        **first,
        "same_spikes_as_first_run": same,
        "wall_s_first": wall_first,
        "wall_s": wall,
        "wall_s_median": statistics.median(walls),
        "repeats": repeats,
        "s_per_trial_second": wall / trial_s,
        "trial_seconds_per_second": trial_s / wall,
        "reruns_first": sum(int(r.stats.get("reruns", 0)) for _, r in warm),
        "reruns_timed": sum(int(s.get("reruns", 0)) for s in stats),
        "n_spikes": spike_figure(n_spikes),
        "spikes_per_trial_second": spike_figure(n_spikes / trial_s),
        "synaptic_events_per_trial_second": spike_figure(events / trial_s),
        "synaptic_events_per_second": spike_figure(events / wall),
        "spikes_per_second": spike_figure(n_spikes / wall),
        "neurons_firing": spike_figure(int(firing)),
        "mean_rate_hz": spike_figure(n_spikes / (conn.n_neurons * trial_s)),
        "native": any(bool(s.get("native", False)) for s in stats),
        "load_s": load_s,
        "peak_rss_bytes": _rss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        "device_peak_bytes": dev_stats.get("peak_bytes_in_use"),
        **environment(),
    }
