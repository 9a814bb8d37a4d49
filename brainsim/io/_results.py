"""Tables of a simulation result: spikes, rates, traces."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from brainsim.sim import SimResult


def spikes_table(result: SimResult) -> pa.Table:
    """One row per spike: ``trial`` (int32), ``t_ms`` (float64), ``neuron_id`` (int64)."""
    return pa.table(
        {
            "trial": pa.array(result.trial.astype(np.int32)),
            "t_ms": pa.array(result.t_ms().astype(np.float64)),
            "neuron_id": pa.array(result.ids[result.neuron].astype(np.int64)),
        }
    )


def rates_table(result: SimResult, *, only_active: bool = True) -> pa.Table:
    """Per neuron: mean rate over trials (Hz), its standard deviation and standard error
    across trials, and the spike count. With ``only_active``, neurons that never fired in
    any trial are left out (their rate is 0)."""
    rates = result.rates_hz()
    counts = result.spike_counts().sum(axis=0)
    keep = np.nonzero(counts > 0)[0] if only_active else np.arange(rates.shape[1])
    r = rates[:, keep]
    b = result.n_trials
    std = r.std(axis=0, ddof=1) if b > 1 else np.zeros(keep.size)
    return pa.table(
        {
            "neuron_id": pa.array(result.ids[keep].astype(np.int64)),
            "rate_hz": pa.array(r.mean(axis=0)),
            "rate_hz_std": pa.array(std),
            "rate_hz_sem": pa.array(std / np.sqrt(b)),
            "n_spikes": pa.array(counts[keep].astype(np.int64)),
        }
    )


def traces_table(result: SimResult) -> pa.Table | None:
    """Long table of recorded traces: ``trial``, ``t_ms``, ``neuron_id``, ``v_mv``, ``g_mv``."""
    if result.v_rec is None:
        return None
    t, b, r = result.v_rec.shape
    step, trial, col = np.meshgrid(np.arange(t), np.arange(b), np.arange(r), indexing="ij")
    return pa.table(
        {
            "trial": pa.array(trial.ravel().astype(np.int32)),
            "t_ms": pa.array(step.ravel() * result.dt_ms),
            "neuron_id": pa.array(result.ids[result.rec_idx][col.ravel()].astype(np.int64)),
            "v_mv": pa.array(result.v_rec.ravel().astype(np.float64)),
            "g_mv": pa.array(result.g_rec.ravel().astype(np.float64)),
        }
    )
