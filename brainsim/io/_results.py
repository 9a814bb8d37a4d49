"""Result tables: spikes, rates and traces per condition, and the neurons they name.

Numeric columns are built from their numpy buffers (``brainsim._arrow``: no pandas import
in a process that writes results)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from brainsim._arrow import column, strings, table, values


def spikes_table(condition, trial, t_ms, neuron_id) -> pa.Table:
    """One row per spike: ``condition``, ``trial`` (int32; trial within its condition),
    ``t_ms`` (float64, the spike step's start time), ``neuron_id`` (int64)."""
    return table(
        {
            "condition": column(condition, np.int32),
            "trial": column(trial, np.int32),
            "t_ms": column(t_ms, np.float64),
            "neuron_id": column(neuron_id, np.int64),
        }
    )


def rates_table(condition, trial, neuron, ids, n_trials: int, duration_ms: float) -> pa.Table:
    """Per condition and neuron that fired in it: mean rate over the condition's trials
    (Hz; trials without spikes count as 0), its standard deviation and standard error
    across trials, and the spike count."""
    condition = np.asarray(condition, np.int64)
    trial = np.asarray(trial, np.int64)
    neuron = np.asarray(neuron, np.int64)
    cols = ["condition", "neuron_id", "rate_hz", "rate_hz_std", "rate_hz_sem", "n_spikes"]
    if condition.size == 0:
        return table({c: pa.array([], t) for c, t in zip(cols, _RATE_TYPES, strict=True)})
    n = int(neuron.max()) + 1
    # spikes per (condition, trial, neuron), then moments over trials per (condition, neuron)
    key3 = (condition * n_trials + trial) * n + neuron
    k3, per_trial = np.unique(key3, return_counts=True)
    cn = (k3 // (n_trials * n)) * n + k3 % n
    key2, inv = np.unique(cn, return_inverse=True)
    total = np.bincount(inv, weights=per_trial)
    total_sq = np.bincount(inv, weights=per_trial.astype(np.float64) ** 2)
    seconds = duration_ms * 1e-3
    mean = total / n_trials
    var = (total_sq - n_trials * mean**2) / (n_trials - 1) if n_trials > 1 else np.zeros_like(mean)
    std = np.sqrt(np.maximum(var, 0)) / seconds
    return table(
        {
            "condition": column(key2 // n, np.int32),
            "neuron_id": column(np.asarray(ids)[key2 % n], np.int64),
            "rate_hz": column(mean / seconds, np.float64),
            "rate_hz_std": column(std, np.float64),
            "rate_hz_sem": column(std / np.sqrt(n_trials), np.float64),
            "n_spikes": column(total, np.int64),
        }
    )


_RATE_TYPES = (pa.int32(), pa.int64(), pa.float64(), pa.float64(), pa.float64(), pa.int64())


def traces_table(condition, trial, dt_ms: float, rec_ids, traces: dict) -> pa.Table:
    """Long table of recorded traces: one column per trace name of the model (LIF:
    ``v_mv``, ``g_mv``; graded: ``v_mv``; PQN: ``v``, ``n``), each [steps, trials,
    recorded]; ``condition``/``trial``: [trials] labels of the trial axis."""
    t, b, r = next(iter(traces.values())).shape
    step, tr, col = np.meshgrid(np.arange(t), np.arange(b), np.arange(r), indexing="ij")
    cols = {
        "condition": column(np.asarray(condition)[tr.ravel()], np.int32),
        "trial": column(np.asarray(trial)[tr.ravel()], np.int32),
        "t_ms": column(step.ravel() * dt_ms, np.float64),
        "neuron_id": column(np.asarray(rec_ids)[col.ravel()], np.int64),
    }
    for name, x in traces.items():
        cols[name] = column(x, np.float64)
    return table(cols)


def neurons_table(neurons: pa.Table, idx) -> pa.Table:
    """Labels of the given neurons: ``neuron_id``, ``name`` (cell type where known, else
    the id) and whichever of ``cell_type``, ``class``, ``side`` the connectome has."""
    idx = np.asarray(idx, np.int64)
    sub = neurons.take(column(idx, np.int64))
    ids = values(sub.column("id"))
    out = {"neuron_id": column(ids, np.int64)}
    types = (
        sub.column("cell_type").to_pylist()
        if "cell_type" in sub.column_names
        else [None] * len(ids)
    )
    out["name"] = strings([t if t else str(i) for t, i in zip(types, ids, strict=True)])
    for col in ("cell_type", "class", "side"):
        if col in sub.column_names:
            out[col] = sub.column(col).combine_chunks()
    return table(out)
