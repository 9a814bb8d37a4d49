"""What every workload shares: the environment record, loading a synthetic network once per
process, timing runs after compilation, synaptic event counts and memory bandwidth."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import brainsim
from brainsim._paths import cache_dir
from brainsim.connectome import Connectome, load
from brainsim.sim import Budgets, Network, Protocol, SimResult, simulate
from brainsim.sim._units import dtype_of

INPUT_TYPE = "sugar_like_GRN"
READOUT_TYPE = "MN9_like"
# Brian2 2.9 (Cython runtime, float64) on the whole-brain synthetic network, sugar protocol,
# 30 trials x 1 s, on the project's 2-core CPU: 2.32-2.40 s per trial-second, measured by
# benchmarks/reference/compare_brian2.py (benchmarks/RESULTS.md, 2026-11-25; DESIGN.md had
# guessed 4.6). Only a rough guide on another machine: run the harness there.
BRIAN2_CYTHON_S_PER_TRIAL_SECOND = 2.35


def spec_for(scale: float, seed: int = 0) -> str:
    """The synthetic spec of a network ``scale`` times the size of FlyWire v783."""
    return f"synthetic:seed={seed},scale={scale}"


def default_cache_dir() -> Path:
    """Where ``brainsim run`` caches parsed connectomes (``$BRAINSIM_CACHE/connectomes``)."""
    return cache_dir("connectomes")


# The network of the last call, kept so that the workloads of one process share it; one entry
# only, so that a scaling sweep does not hold every size at once.
_LAST: dict = {}


def load_network(spec: str, *, cache: bool = True) -> tuple[Connectome, float]:
    """The synthetic connectome of ``spec`` and the seconds it took to get it (0 when it was
    already loaded in this process). With ``cache`` it is kept on disk where ``brainsim run``
    keeps it, so that only the first use generates it."""
    key = ("conn", spec, cache)
    if _LAST.get("key") == key:
        return _LAST["conn"], 0.0
    _LAST.clear()
    t = time.perf_counter()
    conn = load(spec, "synthetic", cache_dir=default_cache_dir() if cache else None)
    load_s = time.perf_counter() - t
    _LAST.update(key=key, conn=conn, nets={})
    return conn, load_s


def device_network(conn: Connectome, precision: str, *, with_pre: bool = False) -> Network:
    """The connectome as device arrays, built once per loaded network and precision."""
    nets = _LAST.get("nets") if _LAST.get("conn") is conn else None
    if nets is None:
        nets = {}
    key = (precision, with_pre)
    if key not in nets:
        dtype = dtype_of(precision)
        nets[key] = Network.from_connectome(conn, dtype, with_pre=with_pre)
    if _LAST.get("conn") is conn:
        _LAST["nets"] = nets
    return nets[key]


def cell_type_indices(conn: Connectome, cell_type: str) -> np.ndarray:
    """Internal indices of the neurons of one cell type (an error when there are none)."""
    if "cell_type" not in conn.neurons.column_names:
        raise ValueError("the network has no cell_type column (use a synthetic: spec)")
    types = np.asarray(conn.neurons.column("cell_type").to_pylist(), dtype=object)
    idx = np.nonzero(types == cell_type)[0].astype(np.int32)
    if idx.size == 0:
        raise ValueError(f"the network has no neuron of cell type {cell_type!r}")
    return idx


def sugar_protocol(conn: Connectome, trials: int, rate_hz: float) -> Protocol:
    """The sugar-like inputs driven by independent Poisson trains at ``rate_hz``."""
    return Protocol.build(
        trials, conn.n_neurons, poisson=[(cell_type_indices(conn, INPUT_TYPE), rate_hz)]
    )


def environment() -> dict:
    """Device, versions, host and date: every record carries them."""
    import jaxlib

    dev = jax.devices()[0]
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    return {
        "device": f"{dev.platform}:{dev.device_kind}",
        "n_devices": jax.device_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "brainsim": brainsim.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "cpu_cores": cores,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def network_fields(spec: str, conn: Connectome) -> dict:
    return {
        "spec": spec,
        "n_neurons": conn.n_neurons,
        "n_connections": conn.n_connections,
        "n_synapses": conn.n_synapses,
    }


@dataclasses.dataclass
class Timed:
    """A run timed after compilation.

    ``wall_s_first`` includes compilation and budget growth; ``walls`` are the repeats that
    followed, started with the budgets the first run grew to (so they compile nothing).
    """

    result: SimResult
    wall_s_first: float
    walls: list[float]
    budgets: Budgets | None
    reruns_first: int = 0

    @property
    def wall_s(self) -> float:
        """Best of the repeats (the first run when there were none)."""
        return min(self.walls) if self.walls else self.wall_s_first

    @property
    def wall_s_median(self) -> float:
        return statistics.median(self.walls) if self.walls else self.wall_s_first


def run_timed(
    conn: Connectome,
    net: Network,
    protocol: Protocol,
    *,
    duration_ms: float,
    repeats: int,
    precision: str = "float32",
    kernel: str = "windowed",
    seed: int = 0,
    budgets: Budgets | None = None,
    native: bool | None = None,
) -> Timed:
    """Run once (compile, grow budgets), then ``repeats`` times with the budgets that run
    needed (compiled first when they differ from the sizes it ended with). ``native`` as in
    :func:`brainsim.sim.simulate`."""
    kw = dict(duration_ms=duration_ms, precision=precision, kernel=kernel, seed=seed, ids=conn.ids)
    if kernel == "windowed":
        kw["native"] = native
    t = time.perf_counter()
    r = simulate(net, protocol, budgets=budgets, **kw)
    first = time.perf_counter() - t
    reruns_first = int(r.stats.get("reruns", 0))
    grown = Budgets(**r.stats["budgets"]) if "budgets" in r.stats else None
    if grown is not None and r.stats["budgets"] != r.stats["budgets_used"]:
        simulate(net, protocol, budgets=grown, **kw)  # compiles the fitted sizes, untimed
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = simulate(net, protocol, budgets=grown, **kw)
        walls.append(time.perf_counter() - t)
    return Timed(r, first, walls, grown, reruns_first)


def synaptic_events(conn: Connectome, result: SimResult) -> int:
    """Synaptic events of a run: each spike times the out-degree (connections) of its neuron,
    the number of (target, weight) entries the spike must deliver."""
    return int(conn.out_degree()[result.neuron].sum(dtype=np.int64))


def activity_fields(conn: Connectome, timed: Timed, trials: int, duration_ms: float) -> dict:
    """Wall times and the activity they bought, per trial-second and per second of wall."""
    r = timed.result
    trial_s = trials * duration_ms / 1000.0
    events = synaptic_events(conn, r)
    counts = np.bincount(r.neuron, minlength=conn.n_neurons)
    return {
        "wall_s_first": timed.wall_s_first,
        "wall_s": timed.wall_s,
        "wall_s_median": timed.wall_s_median,
        "repeats": len(timed.walls),
        "s_per_trial_second": timed.wall_s / trial_s,
        "spikes_per_trial_second": r.n_spikes / trial_s,
        "synaptic_events_per_trial_second": events / trial_s,
        "synaptic_events_per_second": events / timed.wall_s,
        "spikes_per_second": r.n_spikes / timed.wall_s,
        "neurons_firing": int((counts > 0).sum()),
        "mean_rate_hz": r.n_spikes / (conn.n_neurons * trial_s),
        "reruns_first": timed.reruns_first,
        "reruns_timed": int(r.stats.get("reruns", 0)),
        "budgets": r.stats.get("budgets"),
        "native": bool(r.stats.get("native", False)),
    }


def memory_bandwidth(nbytes: int = 256 * 2**20, repeats: int = 5) -> dict:
    """Copy bandwidth (bytes read + written per second, best of ``repeats``) of the memory the
    kernels run on: a numpy copy of a large array on CPU, a jitted JAX copy on an accelerator.
    """
    dev = jax.devices()[0]
    n = nbytes // 4
    best = float("inf")
    if dev.platform == "cpu":
        src = np.ones(n, np.float32)
        dst = np.empty_like(src)
        np.copyto(dst, src)  # fault the pages in
        for _ in range(repeats):
            t = time.perf_counter()
            np.copyto(dst, src)
            best = min(best, time.perf_counter() - t)
        method = f"numpy copy of {nbytes / 2**20:.0f} MiB (one thread)"
    else:
        n = max(n, 2**28)  # 1 GiB: large against the accelerator's caches
        copy = jax.jit(lambda x: x + 1.0)
        x = jnp.ones(n, jnp.float32)
        copy(x).block_until_ready()
        for _ in range(repeats):
            t = time.perf_counter()
            copy(x).block_until_ready()
            best = min(best, time.perf_counter() - t)
        nbytes = 4 * n
        method = f"jitted JAX copy of {nbytes / 2**20:.0f} MiB on {dev.platform}"
    return {"bandwidth_bytes_per_s": 2 * nbytes / best, "bandwidth_method": method}


Log = Callable[[str], None]


def no_log(_: str) -> None:
    pass
