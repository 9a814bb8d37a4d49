"""The ``perturbation_map`` of a graded model: responses read from voltage traces.

A graded neuron emits no spikes, so its response to a driven neuron is a change of
voltage, not of rate. Each condition drives one neuron (or group) with a current step of
``amplitude_mv`` from ``start_ms`` to ``stop_ms`` (an optogenetic-like stimulation); the
baseline condition (condition 0) has no drive. For every responder ``j`` and driven
condition ``c`` the voltage difference from the baseline, trials averaged first,

    d_cj(t) = <V_cj(t)>_trials - <V_0j(t)>_trials,   t in [start, start + window]

is read at its largest magnitude: ``response = d_cj(t*)`` with ``t* = argmax_t |d_cj(t)|``
(mV, signed: a hyperpolarised responder gives a negative response), ``peak_ms = t* -
start``. The window holds the steps whose end time ``(k + 1) dt`` lies in ``(start,
start + window]``; an open-ended window runs to the end of the run. Differences from the
same trial's baseline keep the input noise common (trial t of every condition draws the
same noise only when the conditions share one batch layout; graded models here take no
noise, so the baseline is exact).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

COLUMNS = ["driven_label", "driven_id", "neuron_id", "response", "peak_ms"]


def trace_neurons(p, n_neurons: int) -> np.ndarray:
    """The neurons a graded map records: its responders, or every neuron."""
    if "responders" in p.info:
        return np.asarray(p.info["responders"], np.int32)
    return np.arange(n_neurons, dtype=np.int32)


def window_steps(step: dict, n_steps: int, dt_ms: float) -> tuple[int, int]:
    """First and last+1 recorded step of the response window (see the module docstring)."""
    start = int(round(step["start_ms"] / dt_ms))
    window = step["window_ms"]
    stop = n_steps if window is None else start + int(round(window / dt_ms))
    stop = min(stop, n_steps)
    if stop <= start:
        raise ValueError(
            f"the response window starts at {step['start_ms']:g} ms, at or after the end of "
            f"the run ({n_steps * dt_ms:g} ms)"
        )
    return start, stop


def mean_traces(parts, trials: int, positions: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """float64 [conditions, steps in window, responders]: ``v_mv`` averaged over trials."""
    out = []
    for _, r in parts:
        v = np.asarray(r.traces["v_mv"][lo:hi][:, :, positions], np.float64)
        n_cond = r.n_trials // trials
        out.append(v.reshape(v.shape[0], n_cond, trials, -1).mean(axis=2).transpose(1, 0, 2))
    return np.concatenate(out, axis=0)


def signed_peaks(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value at the largest magnitude, its step index) along axis 1 of [c, steps, j]."""
    k = np.argmax(np.abs(diff), axis=1)
    return np.take_along_axis(diff, k[:, None, :], axis=1)[:, 0, :], k


def summary(p, parts, trials: int, rec_sim: np.ndarray, ids: np.ndarray) -> pa.Table:
    """The graded ``perturbation_map`` summary (columns :data:`COLUMNS`)."""
    responders = trace_neurons(p, ids.size)
    positions = np.searchsorted(rec_sim, responders)
    r0 = parts[0][1]
    lo, hi = window_steps(p.info["step"], r0.n_steps, r0.dt_ms)
    v = mean_traces(parts, trials, positions, lo, hi)
    peak, k = signed_peaks(v[1:] - v[:1])
    n_driven = peak.shape[0]
    conds = p.conditions[1:]
    return pa.table(
        {
            "driven_label": pa.array(
                np.repeat([c.columns["driven_label"] for c in conds], responders.size), pa.string()
            ),
            "driven_id": pa.array(
                np.repeat([c.columns["driven_id"] for c in conds], responders.size), pa.int64()
            ),
            "neuron_id": pa.array(np.tile(ids[responders], n_driven), pa.int64()),
            "response": pa.array(peak.reshape(-1), pa.float64()),
            "peak_ms": pa.array(((k + lo + 1) * r0.dt_ms - p.info["step"]["start_ms"]).reshape(-1)),
        }
    )
