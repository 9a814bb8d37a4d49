"""How big a run is, before it runs: memory per batch on the device, memory on the host for
what is recorded, the engine's step counter, and a refusal of what cannot fit.

The estimates are upper-bound style where the size is known before the run (state, masks,
the network, the kernel's lists, traces) and are stated as unknown where it is not (the
number of spikes: 24 bytes each while held, a few bytes each in Parquet).
"""

from __future__ import annotations

import dataclasses
import os

from brainsim.connectome import Connectome
from brainsim.experiments._errors import ConfigError
from brainsim.models import MAX_RUN_STEPS as MAX_STEPS  # the step counters bound a run

# fraction of the available memory a run may plan to use: the rest is for XLA's own
# buffers, Python, and the tables written at the end
USABLE_FRACTION = 0.8


@dataclasses.dataclass(frozen=True)
class JobSize:
    n_steps: int
    batch_trials: int
    n_batches: int
    device_bytes: int  # peak of one batch on the device
    host_bytes: int  # traces of the whole job, held until written

    def describe(self) -> str:
        return (
            f"about {self.device_bytes / 2**20:,.0f} MiB of device memory per batch and "
            f"{self.host_bytes / 2**20:,.0f} MiB of host memory for traces, plus 24 bytes "
            "per spike"
        )


def job_size(
    sim: dict, conn: Connectome, n_conditions: int, max_batch_trials: int, n_recorded: int
) -> JobSize:
    trials = sim["trials"]
    per = max(1, max_batch_trials // trials)
    batch_trials = min(n_conditions, per) * trials
    n_batches = -(-n_conditions // per)
    from brainsim.sim._units import n_steps_of

    n_steps = n_steps_of(sim["duration_ms"], sim["dt_ms"])
    item = 8 if sim["precision"] == "float64" else 4
    n = conn.n_neurons
    state = batch_trials * n * (2 * item + 4)  # v, g, steps since the last spike
    masks = batch_trials * n  # silencing mask, when used
    net = conn.n_connections * (4 + item) + (n + 1) * 4
    lists = batch_trials * n * 4  # the windowed kernel's neuron lists, at their cap
    if sim["kernel"] == "reference":
        delay_ring = 18 * batch_trials * n * item
        state += delay_ring + batch_trials * conn.n_connections * item
    chunk_steps = min(n_steps, max(1, int(round(sim["chunk_ms"] / sim["dt_ms"]))))
    chunk_traces = chunk_steps * batch_trials * n_recorded * 2 * item
    device = state + masks + net + lists + chunk_traces
    # traces are kept on the host until written: float arrays and then the long table
    # (condition, trial, t_ms, neuron_id, v_mv, g_mv: 36 bytes a row)
    rows = n_steps * trials * n_conditions * n_recorded
    host = rows * (2 * item + 36)
    return JobSize(n_steps, batch_trials, n_batches, int(device), int(host))


def available_bytes() -> tuple[int | None, int | None]:
    """(device memory, host memory) available now, None where it cannot be told."""
    import jax

    host = _host_available()
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return host, host
    try:
        stats = dev.memory_stats() or {}
        limit = stats.get("bytes_limit")
        used = stats.get("bytes_in_use", 0)
        return (None if limit is None else int(limit - used)), host
    except Exception:  # (not every backend reports its memory)
        return None, host


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(size: JobSize, where: str, *, is_experiment: bool) -> None:
    """Refuse a job that cannot run here, naming the limit and the key to change."""
    if size.n_steps > MAX_STEPS:
        raise ConfigError(
            f"{where} [simulation] duration_ms / dt_ms = {size.n_steps:,} steps; the engine "
            f"runs at most {MAX_STEPS:,}: shorten duration_ms "
            "(or split the run into several configs)"
        )
    device, host = available_bytes()
    batch_key = (
        "[experiment] max_batch_trials or [simulation] trials"
        if is_experiment
        else "[simulation] trials (or run the trials as several configs with other seeds)"
    )
    if device is not None and size.device_bytes > USABLE_FRACTION * device:
        raise ConfigError(
            f"{where} one batch of {size.batch_trials:,} trials needs about "
            f"{size.device_bytes / 2**20:,.0f} MiB of device memory, but "
            f"{device / 2**20:,.0f} MiB are available ({USABLE_FRACTION:.0%} usable): "
            f"lower {batch_key}"
        )
    if host is not None and size.host_bytes > USABLE_FRACTION * host:
        raise ConfigError(
            f"{where} the [record] traces need about {size.host_bytes / 2**20:,.0f} MiB of "
            f"host memory, but {host / 2**20:,.0f} MiB are available: record fewer neurons "
            "([record] neurons), fewer trials or a shorter duration_ms"
        )
