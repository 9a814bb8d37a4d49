"""The benchmark workloads: each a function returning one JSON-able record.

Every record holds ``workload``, the network (``spec``, ``n_neurons``, ``n_connections``,
``n_synapses``), the run size and the environment (``device``, ``jax``, ``date``, ...).
Wall times are seconds on the host clock around :func:`brainsim.sim.simulate` (results
copied back included; the network is copied to the device once beforehand, untimed).
``wall_s_first`` includes compilation and budget growth; ``wall_s`` is the best of
``repeats`` later runs started with the grown budgets (``wall_s_median`` their median).
A *trial-second* is one trial of one simulated second.
"""

from __future__ import annotations

import time

import numpy as np

from brainsim.bench._common import (
    BRIAN2_CYTHON_S_PER_TRIAL_SECOND,
    Log,
    activity_fields,
    device_network,
    environment,
    load_network,
    memory_bandwidth,
    network_fields,
    no_log,
    run_timed,
    spec_for,
    sugar_protocol,
)
from brainsim.models import LIF
from brainsim.sim import Protocol

SCALING_TRIALS = (1, 2, 4, 8, 16, 32, 64, 128)
SCALING_SCALES = (0.07, 0.25, 0.5, 1.0)
SCALING_RATES_HZ = (25.0, 50.0, 100.0, 150.0, 200.0)

# the columns each sweep keeps per point (the full record's activity fields, less budgets)
_POINT_KEYS = (
    "wall_s_first",
    "reruns_first",
    "wall_s",
    "wall_s_median",
    "s_per_trial_second",
    "spikes_per_trial_second",
    "synaptic_events_per_trial_second",
    "synaptic_events_per_second",
    "neurons_firing",
    "mean_rate_hz",
)


def _network(spec: str | None, scale: float, seed: int, cache: bool):
    spec = spec or spec_for(scale, seed)
    conn, load_s = load_network(spec, cache=cache)
    return spec, conn, load_s


def _scale(spec: str, scale: float, seed: int) -> float | None:
    """The scale a record states: None when an explicit spec was given."""
    return scale if spec == spec_for(scale, seed) else None


def sugar(
    *,
    trials: int = 30,
    duration_ms: float = 1000.0,
    rate_hz: float = 150.0,
    scale: float = 1.0,
    seed: int = 0,
    spec: str | None = None,
    repeats: int = 2,
    precision: str = "float32",
    cache: bool = True,
    log: Log = no_log,
) -> dict:
    """The sugar experiment on the synthetic brain: the 21 ``sugar_like_GRN`` neurons driven
    by Poisson trains at ``rate_hz``, ``trials`` trials at once, windowed kernel.

    Keys (besides the common ones): ``trials``, ``duration_ms``, ``rate_hz``, ``n_inputs``,
    ``precision``, ``kernel``, ``wall_s_first``, ``wall_s``, ``wall_s_median``,
    ``s_per_trial_second``, ``spikes_per_trial_second``, ``synaptic_events_per_trial_second``,
    ``synaptic_events_per_second`` (events delivered per second of wall time: spikes x the
    out-degree of the neuron that fired), ``spikes_per_second``, ``neurons_firing``,
    ``mean_rate_hz``, ``reruns_first`` (chunks re-run to grow budgets in the first run, each a
    compilation), ``reruns_timed``, ``budgets``, ``load_s`` and
    ``brian2_cython_over_brainsim`` (Brian2's time on the project's 2-core CPU, measured by
    ``benchmarks/reference``, over ``s_per_trial_second``: only comparable on that machine).
    """
    spec, conn, load_s = _network(spec, scale, seed, cache)
    proto = sugar_protocol(conn, trials, rate_hz)
    net = device_network(conn, precision)
    log(f"sugar: {conn.n_neurons} neurons, {trials} trials x {duration_ms:g} ms")
    timed = run_timed(
        conn, net, proto, duration_ms=duration_ms, repeats=repeats, precision=precision
    )
    act = activity_fields(conn, timed, trials, duration_ms)
    return {
        "workload": "sugar",
        **network_fields(spec, conn),
        "scale": _scale(spec, scale, seed),
        "trials": trials,
        "duration_ms": duration_ms,
        "rate_hz": rate_hz,
        "n_inputs": proto.n_inputs,
        "precision": precision,
        "kernel": timed.result.stats["kernel"],
        **act,
        "brian2_cython_over_brainsim": BRIAN2_CYTHON_S_PER_TRIAL_SECOND / act["s_per_trial_second"],
        "load_s": load_s,
        **environment(),
    }


def dense(
    *,
    trials: int = 2,
    duration_ms: float = 100.0,
    input_rate_hz: float = 6.0,
    scale: float = 0.25,
    seed: int = 0,
    spec: str | None = None,
    repeats: int = 2,
    precision: str = "float32",
    cache: bool = True,
    bandwidth: dict | None = None,
    log: Log = no_log,
) -> dict:
    """Every neuron driven by its own Poisson train at ``input_rate_hz``: the worst case of
    an event-driven kernel (every neuron is stepped every step), compared with the
    memory-bandwidth limit. Recurrence adds little here: the mean rate is about the input
    rate (6 Hz in, about 6.3 Hz out). The default network is a quarter of the whole brain,
    2 trials x 100 ms: on a 2-core CPU this workload costs about 100 s per trial-second at
    that size; pass ``scale=1.0`` on an accelerator.

    The limit: per trial-second, every neuron's state (v and g in the run's precision, the
    int32 refractory counter) read and written at every step, and every synaptic event's
    target index (4 bytes) and weight (4 or 8 bytes) read once, at the measured copy
    bandwidth. Keys (besides the sugar ones): ``input_rate_hz``, ``mean_rate_hz`` (spikes
    per neuron per simulated second), ``state_bytes_per_step`` (per trial),
    ``bytes_per_trial_second``, ``bandwidth_bytes_per_s``, ``bandwidth_method``,
    ``bound_s_per_trial_second``, ``over_bandwidth_bound`` (measured over limit; 1 = at
    the limit), ``event_bound_s_per_trial_second`` and ``over_event_bound`` (the events'
    bytes only, the limit of a kernel that touches only neurons with input).
    """
    spec, conn, load_s = _network(spec, scale, seed, cache)
    n = conn.n_neurons
    proto = Protocol.build(trials, n, poisson=[(np.arange(n, dtype=np.int32), input_rate_hz)])
    net = device_network(conn, precision)
    log(f"dense: {n} neurons, {trials} trials x {duration_ms:g} ms at {input_rate_hz:g} Hz")
    timed = run_timed(
        conn, net, proto, duration_ms=duration_ms, repeats=repeats, precision=precision
    )
    act = activity_fields(conn, timed, trials, duration_ms)
    bw = bandwidth or memory_bandwidth()
    item = 8 if precision == "float64" else 4
    steps_per_s = 1000.0 / LIF().dt_ms
    state_bytes = 2 * n * (2 * item + 4)
    event_bytes = act["synaptic_events_per_trial_second"] * (4 + item)
    total = state_bytes * steps_per_s + event_bytes
    bound = total / bw["bandwidth_bytes_per_s"]
    event_bound = event_bytes / bw["bandwidth_bytes_per_s"]
    return {
        "workload": "dense",
        **network_fields(spec, conn),
        "scale": _scale(spec, scale, seed),
        "trials": trials,
        "duration_ms": duration_ms,
        "input_rate_hz": input_rate_hz,
        "note": ""
        if spec != spec_for(scale, seed) or scale >= 1.0
        else f"scale {scale:g} of the whole brain (scale 1.0)",
        "precision": precision,
        "kernel": timed.result.stats["kernel"],  # windowed hands dense runs to dense_window
        **act,
        "state_bytes_per_step": state_bytes,
        "bytes_per_trial_second": total,
        **bw,
        "bound_s_per_trial_second": bound,
        "over_bandwidth_bound": act["s_per_trial_second"] / bound,
        "event_bound_s_per_trial_second": event_bound,
        "over_event_bound": act["s_per_trial_second"] / event_bound if event_bound else None,
        "load_s": load_s,
        **environment(),
    }


def _sweep_point(conn, net, proto, trials, duration_ms, repeats, precision, log) -> dict:
    timed = run_timed(
        conn, net, proto, duration_ms=duration_ms, repeats=repeats, precision=precision
    )
    act = activity_fields(conn, timed, trials, duration_ms)
    # the figures also go to the log, so that a sweep cut short still leaves its points
    log(
        f"  -> {act['s_per_trial_second']:.4g} s per trial-second, "
        f"{act['spikes_per_trial_second']:.4g} spikes per trial-second, "
        f"first run {act['wall_s_first']:.3g} s"
    )
    return {k: act[k] for k in _POINT_KEYS}


def scaling_trials(
    *,
    trials: tuple[int, ...] = SCALING_TRIALS,
    duration_ms: float = 200.0,
    rate_hz: float = 150.0,
    scale: float = 1.0,
    seed: int = 0,
    spec: str | None = None,
    repeats: int = 2,
    precision: str = "float32",
    cache: bool = True,
    log: Log = no_log,
) -> dict:
    """The sugar run at each batch size in ``trials``: what batching trials buys.

    ``points``: one dict per batch size with ``trials`` and the sweep columns
    (``wall_s_first``, ``reruns_first``, ``wall_s``, ``wall_s_median``, ``s_per_trial_second``,
    ``spikes_per_trial_second``, ``synaptic_events_per_trial_second``,
    ``synaptic_events_per_second``, ``neurons_firing``, ``mean_rate_hz``) and
    ``speedup_vs_first``: s per trial-second of the first batch size over that of the point.
    """
    spec, conn, load_s = _network(spec, scale, seed, cache)
    net = device_network(conn, precision)
    points = []
    for b in trials:
        log(f"scaling_trials: {b} trials x {duration_ms:g} ms")
        proto = sugar_protocol(conn, b, rate_hz)
        point = _sweep_point(conn, net, proto, b, duration_ms, repeats, precision, log)
        points.append({"trials": b, **point})
    base = points[0]["s_per_trial_second"]
    for p in points:
        p["speedup_vs_first"] = base / p["s_per_trial_second"]
    return {
        "workload": "scaling_trials",
        **network_fields(spec, conn),
        "scale": _scale(spec, scale, seed),
        "duration_ms": duration_ms,
        "rate_hz": rate_hz,
        "precision": precision,
        "repeats": repeats,
        "points": points,
        "load_s": load_s,
        **environment(),
    }


def scaling_size(
    *,
    scales: tuple[float, ...] = SCALING_SCALES,
    trials: int = 8,
    duration_ms: float = 200.0,
    rate_hz: float = 150.0,
    seed: int = 0,
    repeats: int = 2,
    precision: str = "float32",
    cache: bool = True,
    log: Log = no_log,
) -> dict:
    """The sugar run on synthetic networks of each size in ``scales`` (1.0 = FlyWire; 4.0 = four
    times FlyWire, minutes to generate the first time). The pathway and so the activity stay
    about the same, so the time should grow with spikes, not with the number of neurons.

    ``points``: one dict per scale with ``scale``, ``n_neurons``, ``n_connections``,
    ``load_s`` and the sweep columns.
    """
    points = []
    for s in scales:
        spec, conn, load_s = _network(None, s, seed, cache)
        log(f"scaling_size: scale {s:g}, {conn.n_neurons} neurons, {trials} trials")
        net = device_network(conn, precision)
        proto = sugar_protocol(conn, trials, rate_hz)
        point = _sweep_point(conn, net, proto, trials, duration_ms, repeats, precision, log)
        points.append(
            {
                "scale": s,
                "n_neurons": conn.n_neurons,
                "n_connections": conn.n_connections,
                "load_s": load_s,
                **point,
            }
        )
        del net, conn
    return {
        "workload": "scaling_size",
        "spec": f"synthetic:seed={seed},scale=*",
        "trials": trials,
        "duration_ms": duration_ms,
        "rate_hz": rate_hz,
        "precision": precision,
        "repeats": repeats,
        "points": points,
        **environment(),
    }


def scaling_activity(
    *,
    rates_hz: tuple[float, ...] = SCALING_RATES_HZ,
    trials: int = 8,
    duration_ms: float = 200.0,
    scale: float = 1.0,
    seed: int = 0,
    spec: str | None = None,
    repeats: int = 2,
    precision: str = "float32",
    cache: bool = True,
    log: Log = no_log,
) -> dict:
    """The sugar run at each input rate in ``rates_hz``: cost against activity on one network.

    ``points``: one dict per rate with ``rate_hz``, the sweep columns and
    ``us_per_synaptic_event`` (wall per event delivered). ``fit``: least squares
    ``s_per_trial_second = intercept_s + slope_s_per_event x synaptic_events_per_trial_second``
    over the points; ``fixed_fraction_at_max`` is the intercept's share at the busiest point
    (small: cost follows events, not neurons x steps).
    """
    spec, conn, load_s = _network(spec, scale, seed, cache)
    net = device_network(conn, precision)
    points = []
    for r in rates_hz:
        log(f"scaling_activity: {r:g} Hz, {trials} trials x {duration_ms:g} ms")
        proto = sugar_protocol(conn, trials, r)
        point = _sweep_point(conn, net, proto, trials, duration_ms, repeats, precision, log)
        ev = point["synaptic_events_per_second"]
        points.append({"rate_hz": r, **point, "us_per_synaptic_event": 1e6 / ev if ev else None})
    fit = None
    if len(points) >= 2:
        x = np.array([p["synaptic_events_per_trial_second"] for p in points])
        y = np.array([p["s_per_trial_second"] for p in points])
        if np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            fit = {
                "intercept_s": float(intercept),
                "slope_s_per_event": float(slope),
                "fixed_fraction_at_max": float(intercept / y[np.argmax(x)]),
            }
    return {
        "workload": "scaling_activity",
        **network_fields(spec, conn),
        "scale": _scale(spec, scale, seed),
        "trials": trials,
        "duration_ms": duration_ms,
        "precision": precision,
        "repeats": repeats,
        "points": points,
        "fit": fit,
        "load_s": load_s,
        **environment(),
    }


def _same_spikes(a, b) -> bool:
    """The same spikes (trial, step and neuron of every one) in two results."""
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("trial", "step", "neuron"))


def _alternate(conn, net, proto, variants: dict, repeats: int, **kw):
    """Side-by-side timing in one process: every variant (keyword arguments of
    :func:`run_timed`) runs once (compilation, budget growth), then all are timed in turn,
    ``repeats`` rounds, each starting from the budgets its first run fitted. Returns
    ``(first, first_s, walls, last)``, keyed like ``variants``: the first runs, the seconds
    they took together, the timed walls and the last results."""
    t = time.perf_counter()
    first = {k: run_timed(conn, net, proto, repeats=0, **v, **kw) for k, v in variants.items()}
    first_s = time.perf_counter() - t
    walls: dict = {k: [] for k in variants}
    last = {}
    for _ in range(max(1, repeats)):
        for k, v in variants.items():
            timed = run_timed(conn, net, proto, repeats=0, budgets=first[k].budgets, **v, **kw)
            walls[k].append(timed.wall_s_first)
            last[k] = timed.result
    return first, first_s, walls, last


def reference_ratio(
    *,
    trials: int = 1,
    duration_ms: float = 20.0,
    rate_hz: float = 150.0,
    scale: float = 1.0,
    seed: int = 0,
    spec: str | None = None,
    repeats: int = 2,
    precision: str = "float32",
    cache: bool = True,
    log: Log = no_log,
) -> dict:
    """The dense reference kernel (every connection every step) against the windowed kernel on
    the same sugar protocol, both compiled first, then timed alternately in this process.

    Keys: ``reference_wall_s``, ``windowed_wall_s`` (medians of ``repeats``, with their lists
    ``..._walls_s``), ``reference_over_windowed``, ``identical_spikes`` (same trial, step and
    neuron for every spike), ``n_spikes_reference``, ``n_spikes_windowed``,
    ``reference_s_per_trial_second``, ``windowed_s_per_trial_second``.
    """
    spec, conn, load_s = _network(spec, scale, seed, cache)
    net = device_network(conn, precision, with_pre=True)
    proto = sugar_protocol(conn, trials, rate_hz)
    kw = dict(duration_ms=duration_ms, precision=precision)
    log(f"reference_ratio: {conn.n_neurons} neurons, {trials} trials x {duration_ms:g} ms")
    variants = {"reference": {"kernel": "reference"}, "windowed": {}}
    _, compile_s, walls, last = _alternate(conn, net, proto, variants, repeats, **kw)
    ref_walls, win_walls = walls["reference"], walls["windowed"]
    a, b = last["reference"], last["windowed"]
    same = _same_spikes(a, b)
    ref_s, win_s = float(np.median(ref_walls)), float(np.median(win_walls))
    trial_s = trials * duration_ms / 1000.0
    return {
        "workload": "reference_ratio",
        **network_fields(spec, conn),
        "scale": _scale(spec, scale, seed),
        "trials": trials,
        "duration_ms": duration_ms,
        "rate_hz": rate_hz,
        "precision": precision,
        "repeats": len(ref_walls),
        "reference_wall_s": ref_s,
        "windowed_wall_s": win_s,
        "reference_walls_s": ref_walls,
        "windowed_walls_s": win_walls,
        "reference_over_windowed": ref_s / win_s,
        "reference_s_per_trial_second": ref_s / trial_s,
        "windowed_s_per_trial_second": win_s / trial_s,
        "identical_spikes": bool(same),
        "n_spikes_reference": a.n_spikes,
        "n_spikes_windowed": b.n_spikes,
        "compile_and_first_runs_s": compile_s,
        "load_s": load_s,
        **environment(),
    }


def native_ratio(
    *,
    trials: int = 30,
    duration_ms: float = 1000.0,
    rate_hz: float = 150.0,
    scale: float = 1.0,
    seed: int = 0,
    spec: str | None = None,
    repeats: int = 2,
    precision: str = "float32",
    cache: bool = True,
    log: Log = no_log,
) -> dict:
    """The windowed kernel's native CPU form (C++ window delivery) against its plain-JAX
    form on the sugar protocol, both compiled first, then timed alternately in this process.

    Keys: ``jax_wall_s``, ``native_wall_s`` (medians of ``repeats``, with their lists
    ``..._walls_s``), ``jax_over_native``, ``identical_spikes``, ``n_spikes``,
    ``jax_s_per_trial_second``, ``native_s_per_trial_second`` and
    ``brian2_cython_over_native`` (see :func:`sugar`).
    """
    spec, conn, load_s = _network(spec, scale, seed, cache)
    net = device_network(conn, precision)
    proto = sugar_protocol(conn, trials, rate_hz)
    kw = dict(duration_ms=duration_ms, precision=precision)
    log(f"native_ratio: {conn.n_neurons} neurons, {trials} trials x {duration_ms:g} ms")
    # native=True: simulate raises, naming why, where the native kernel cannot run
    variants = {False: {"native": False}, True: {"native": True}}
    _, _, walls, last = _alternate(conn, net, proto, variants, repeats, **kw)
    a, b = last[False], last[True]
    same = _same_spikes(a, b)
    jax_s, nat_s = float(np.median(walls[False])), float(np.median(walls[True]))
    trial_s = trials * duration_ms / 1000.0
    return {
        "workload": "native_ratio",
        **network_fields(spec, conn),
        "scale": _scale(spec, scale, seed),
        "trials": trials,
        "duration_ms": duration_ms,
        "rate_hz": rate_hz,
        "precision": precision,
        "repeats": len(walls[True]),
        "jax_wall_s": jax_s,
        "native_wall_s": nat_s,
        "jax_walls_s": walls[False],
        "native_walls_s": walls[True],
        "jax_over_native": jax_s / nat_s,
        "jax_s_per_trial_second": jax_s / trial_s,
        "native_s_per_trial_second": nat_s / trial_s,
        "brian2_cython_over_native": BRIAN2_CYTHON_S_PER_TRIAL_SECOND / (nat_s / trial_s),
        "identical_spikes": bool(same),
        "n_spikes": b.n_spikes,
        "load_s": load_s,
        **environment(),
    }


WORKLOADS = {
    "sugar": sugar,
    "dense": dense,
    "scaling_trials": scaling_trials,
    "scaling_size": scaling_size,
    "scaling_activity": scaling_activity,
    "reference_ratio": reference_ratio,
    "native_ratio": native_ratio,
}
