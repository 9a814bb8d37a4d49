"""The engine's entry point: run a protocol on a network for B trials, in chunks."""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from brainsim.connectome import Connectome
from brainsim.kernels import DEFAULT_STREAM, native_choice
from brainsim.models import LIF, MAX_RUN_STEPS, AbstractNeuron
from brainsim.sim._chunk import windowed_traces
from brainsim.sim._dense_window import (
    dense_lif_native_chunk,
    dense_window_chunk,
    dense_window_init,
    fused_supported,
)
from brainsim.sim._network import Network, build_synapses, synapse_kinds
from brainsim.sim._protocol import Drive, Protocol
from brainsim.sim._reference import noise_block_steps, reference_chunk, reference_init
from brainsim.sim._sharding import place, sharded_windowed_chunk, to_host, trial_mesh
from brainsim.sim._steppers import DenseWindow, Reference, Windowed, stepper_for
from brainsim.sim._units import dtype_of, n_steps_of, to_device
from brainsim.sim._windowed import (
    Budgets,
    always_active,
    native_chunk_supported,
    native_supported,
    windowed_chunk,
    windowed_init,
    windowed_native_chunk,
)

FIELDS = [f.name for f in dataclasses.fields(Budgets)]
# budgets the native kernels never size anything with (their active and event lists are
# unbounded): fixed at 1 in the compiled call, and never grown
NATIVE_UNSIZED = ("active", "events")


def _native_choice(native: bool | None, model: LIF, dtype, *, dense: bool = False) -> bool:
    """Whether the windowed (or, with ``dense``, the dense-window) stepper runs its native
    CPU form (see :func:`simulate`)."""
    if native is False:
        return False
    reasons = []
    if not dense and not native_supported(model, dtype):
        reasons.append("the model has per-neuron time constants or thresholds")
    return native_choice(native, "native window kernel", reasons)


@dataclasses.dataclass
class SimResult:
    """Spikes as events and optional traces of one run.

    Attributes:
        trial, step, neuron: int arrays [n_spikes], one entry per spike, ordered by step,
            then trial, then neuron. ``neuron`` is the internal index; ``ids[neuron]`` the
            external id. A spike at step s happened at time ``s x dt_ms``.
        n_trials, n_steps, dt_ms: run size.
        ids: int64 [n_neurons] external ids.
        rec_idx: recorded neuron indices; ``traces`` maps each of the model's trace names
            (LIF: ``v_mv``, ``g_mv``; graded: ``v_mv``) to float [steps, trials, rec];
            ``v_rec``/``g_rec`` are LIF's two (``g_rec`` None for a model without g).
        stats: kernel figures: ``kernel`` (the stepper that ran), ``budgets_used`` (array
            sizes at the end), ``budgets`` (the sizes this run needed, with headroom: where
            to start a similar run), ``reruns`` (chunks re-run to grow them), ``wall_s``,
            ``gap_junctions`` (directed junction rows used).
    """

    trial: np.ndarray
    step: np.ndarray
    neuron: np.ndarray
    n_trials: int
    n_steps: int
    dt_ms: float
    ids: np.ndarray
    rec_idx: np.ndarray
    v_rec: np.ndarray | None
    g_rec: np.ndarray | None
    stats: dict
    traces: dict | None = None
    spiking: bool = True

    @property
    def n_spikes(self) -> int:
        return int(self.trial.size)

    @property
    def duration_ms(self) -> float:
        return self.n_steps * self.dt_ms

    def spike_counts(self) -> np.ndarray:
        """int64 [n_trials, n_neurons]: spikes per trial and neuron."""
        n = self.ids.size
        flat = np.bincount(self.trial * n + self.neuron, minlength=self.n_trials * n)
        return flat.reshape(self.n_trials, n)

    def rates_hz(self) -> np.ndarray:
        """float [n_trials, n_neurons]: mean firing rate over the run."""
        return self.spike_counts() / (self.duration_ms * 1e-3)

    def t_ms(self) -> np.ndarray:
        return self.step * self.dt_ms


class NonFiniteError(FloatingPointError):
    """A run's state became NaN or infinite: its spikes would be silently wrong."""


@jax.jit
def _all_finite(*arrays):
    return jnp.all(jnp.stack([jnp.isfinite(a).all() for a in arrays]))


@functools.partial(jax.jit, static_argnums=1)
def _cells_finite(cells, none: int):
    return jnp.isfinite(cells[..., :none, :2]).all()


def _check_finite(state, t_step: int, dt_ms: float, ids, none: int | None = None) -> None:
    """Raise :class:`NonFiniteError` if a chunk left NaN or inf in the state (one device
    bool to the host per chunk). ``none``: the entries per shard of a windowed state (its
    cells); else ``state`` is a model's state, every float leaf [trials, neurons]."""
    if _finite(state, none):
        return
    if none is None:
        leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
        trial, neuron = _first_bad(*leaves)
    else:
        trial, neuron = _first_bad_cell(state, none, len(ids))
    raise NonFiniteError(
        f"the simulation's state became non-finite (NaN or inf) by t = "
        f"{t_step * dt_ms:g} ms (trial {trial}, neuron id {ids[neuron]}): the model's "
        "parameters or the stimuli put the float arithmetic out of range"
    )


def _finite(state, none: int | None = None) -> bool:
    """Whether a chunk left the state finite (as :func:`_check_finite` judges it)."""
    if none is None:
        leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
        if all(_on_host(x) for x in leaves):  # read in place: no program to compile
            return all(bool(np.isfinite(np.asarray(x)).all()) for x in leaves)
        return bool(_all_finite(*leaves))
    if _on_host(state.cells):
        return bool(np.isfinite(np.asarray(state.cells)[..., :none, :2]).all())
    return bool(_cells_finite(state.cells, none))


def _chunk_finite(out, *, dense: bool, none: int | None) -> bool:
    """Whether a chunk of the windowed or dense-window stepper left its state finite: from
    the rows the kernel counted non-finite where it counts them, else by a scan."""
    if out.nonfinite is not None:
        return int(to_host(out.nonfinite).sum()) == 0
    return _finite(out.state.neurons if dense else out.state, none)


def _on_host(x) -> bool:
    """Whether a device array lives in this process's CPU memory (numpy reads it in
    place)."""
    return (
        isinstance(x, jax.Array)
        and x.is_fully_addressable
        and all(d.platform == "cpu" for d in x.devices())
    )


def _first_bad(*arrays) -> tuple[int, int]:
    """(trial, neuron) of the first non-finite entry of [trials, neurons] arrays."""
    bad = np.logical_or.reduce([~np.isfinite(np.asarray(a)) for a in arrays])
    b, i = np.argwhere(bad)[0]
    return int(b), int(i)


def _first_bad_cell(state, none: int, n: int) -> tuple[int, int]:
    """(trial, neuron) of the first non-finite u or g of a windowed state."""
    cells = to_host(state.cells)
    cells = cells.reshape(-1, *cells.shape[-2:])[:, :none, :2]  # [shards, entries, (u, g)]
    shard, e = np.argwhere(~np.all(np.isfinite(cells), axis=-1))[0]
    return int(shard * (none // n) + e // n), int(e % n)


def seed_key(seed: int) -> jax.Array:
    """The PRNG key of a run's ``seed``: any integer in [-2**63, 2**63) (a TOML integer),
    each its own key, whatever JAX's 64-bit mode.

    Seeds in [0, 2**32) give ``jax.random.PRNGKey(seed)`` bit for bit (published spike
    counts depend on them). The others give the key ``PRNGKey`` gives them in JAX's 64-bit
    mode (threefry: the high and low 32-bit words of the seed's 64-bit two's complement);
    without that mode ``PRNGKey`` keeps only the low 32 bits, so that 2**32 and -2**32 ran
    as seed 0 and -1 as 2**32 - 1.
    """
    seed = operator.index(seed)
    if not -(2**63) <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [-2**63, 2**63), got {seed}")
    word = seed % 2**64
    hi, lo = word >> 32, word & 0xFFFFFFFF
    if jax.config.jax_default_prng_impl == "threefry2x32":
        # (PRNGKey's threefry key, made on the host: PRNGKey compiles a program)
        return to_device(np.array([hi, lo], np.uint32))
    if 0 <= seed < 2**32:
        return jax.random.PRNGKey(seed)
    return jax.random.fold_in(jax.random.PRNGKey(lo), hi)  # other key layouts


def _x64_guard(precision: str):
    dtype = dtype_of(precision)
    if precision == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "float64 needs JAX's 64-bit mode: call jax.config.update('jax_enable_x64', True) "
            'before any JAX work (the CLI does this for precision = "float64")'
        )
    return dtype


def padded_chunk(left: int, per_chunk: int, total: int) -> int:
    """Length to run for a chunk of ``left`` windows (or steps) when full chunks have
    ``per_chunk`` and the run ``total``. A shorter last chunk is a new shape, so a new
    compilation (1.5 s for the whole-brain windowed kernel on a 2-core CPU, more than a
    whole 4-trial second of simulation); it runs as a full chunk instead, its extra windows
    simulated past the end and discarded, whenever they add at most a quarter to the run."""
    if left < per_chunk and total > per_chunk and per_chunk - left <= total // 4:
        return per_chunk
    return left


def padded_or_exact(run, m: int, m_run: int, finite, lengths: list | None = None):
    """``(run(m_run), m_run)``, or ``(run(m), m)`` when a padded chunk (``m_run > m``)
    left a state that ``finite`` rejects: its extra steps, past the run's end, may be where
    it failed, and the run is judged on its own. ``lengths`` records each length run."""
    out = run(m_run)
    if lengths is not None and m_run not in lengths:
        lengths.append(m_run)
    if m_run != m and not finite(out):
        out, m_run = run(m), m
        if lengths is not None:
            lengths.append(m)
    return out, m_run


def initial_budgets(n_trials: int, n_inputs: int, n_rec: int, n_neurons: int) -> Budgets:
    """Small first sizes (they grow as a run needs); never more than one entry per
    (trial, neuron), which a window cannot exceed for its neuron lists."""
    always = n_trials * (n_inputs + n_rec + 16)  # inputs and recorded: stepped every window
    base = max(1024, 2 ** math.ceil(math.log2(4 * always)))
    few = max(256, 2 ** math.ceil(math.log2(2 * always)))
    cap = n_trials * n_neurons
    return Budgets(
        active=min(base, cap),
        stepped=min(few, cap),
        spikes=min(max(256, base // 4), cap),
        events=base * 4,
        awake=min(few, cap),
    )


# Starting sizes of the windowed stepper's lists, per trial, before anything has run (see
# predicted_budgets). Measured on the whole-brain synthetic connectome (FlyWire v783
# statistics: seeds 0-2, scales 0.2-1.0) under sugar-like drive (21 inputs, 50-200 Hz),
# the needs per trial and window were: stepped 128-384, awake 128-288, spikes 64-68, and
# events 8.5-14x those of the input spikes alone. Sizes are set at about 1.5-4x those
# needs: a list too small costs a re-run and a compilation (1.5-2 s for the whole brain on
# a 2-core CPU), one twice too large about 40% more stepping work (benchmarks/RESULTS.md).
PREDICTED_STEPPED_PER_TRIAL = 512
PREDICTED_AWAKE_PER_TRIAL = 512
PREDICTED_SPIKES_PER_TRIAL = 128
PREDICTED_EVENT_AMPLIFICATION = 16.0


def predicted_budgets(
    net: Network, protocol: Protocol, model, n_trials: int, n_rec: int, n_steps: int
) -> Budgets:
    """The windowed stepper's first budgets, before the first chunk: from the driven
    neurons' out-degrees and drive, and per-trial sizes of sugar-like activity (the
    constants above). Synaptic events per window are predicted as
    ``PREDICTED_EVENT_AMPLIFICATION`` times those the inputs' own spikes send (Poisson rate
    or replayed events; a current-driven input counted as one spike per window), active
    neurons as those events' targets plus the always-active ones. The lists the native CPU
    kernel sizes (stepped, spikes, awake) do not depend on the rates unless the inputs alone
    would fill the spike list, so configs that differ only in drive values share one
    compiled program there. Budgets only size arrays:
    a run whose activity exceeds them grows them as before (re-runs counted in
    ``stats["reruns"]``), so results never depend on this estimate."""
    n = net.n_neurons
    window_s = model.delay_steps * model.dt_ms / 1000.0
    n_trials_all = protocol.n_trials
    # expected spikes of each input per window, per trial of the whole protocol
    per_window = np.array(protocol.rate_hz, np.float64) * window_s
    if protocol.replay_events is not None and len(protocol.replay_events):
        ev = np.asarray(protocol.replay_events)
        n_windows = max(1, -(-n_steps // model.delay_steps))
        np.add.at(per_window, (ev[:, 0], ev[:, 2]), 1.0 / n_windows)
    for pos, *_ in protocol.current:
        per_window[:, pos] = np.maximum(per_window[:, pos], 1.0)
    out_degree = np.diff(np.asarray(net.indptr, np.int64))
    # events per window from the inputs' spikes, in this batch of trials (trials alike)
    input_events = float(np.sum(per_window @ out_degree[protocol.input_idx]))
    input_events *= n_trials / n_trials_all
    # (at most every connection once per trial: a neuron spikes about once per window)
    events = min(PREDICTED_EVENT_AMPLIFICATION * input_events, n_trials * max(out_degree.sum(), 1))
    always = n_trials * (protocol.n_inputs + n_rec)
    input_spikes = float(per_window.sum(axis=1).max()) if per_window.size else 0.0
    guess = Budgets(
        active=int(events) + always,
        stepped=always + n_trials * PREDICTED_STEPPED_PER_TRIAL,
        spikes=n_trials * int(max(PREDICTED_SPIKES_PER_TRIAL, 2 * input_spikes)),
        events=int(events),
        awake=n_trials * PREDICTED_AWAKE_PER_TRIAL,
    )
    floor = initial_budgets(n_trials, protocol.n_inputs, n_rec, n)
    need = np.maximum(dataclasses.astuple(guess), dataclasses.astuple(floor))
    return floor.grown(need, extrapolate=False).capped(n_trials * n)


def dense_budgets(net: Network, protocol: Protocol, model, n_trials: int, n_steps: int) -> Budgets:
    """The dense-window stepper's first budgets (it sizes only the spike and event lists):
    four times the spikes per window that the inputs' own events cause (Poisson rates and
    replayed events; recurrent spikes add to them, each input event alone fires a LIF
    neuron of the reference model) and the events those spikes send, in powers of two. A
    list too small costs a re-run of the chunk; the native chunk's spike list is only its
    output, so a generous one costs little."""
    window_s = model.delay_steps * model.dt_ms / 1000.0
    per_window = float(np.sum(protocol.rate_hz)) * window_s
    if protocol.replay_events is not None and len(protocol.replay_events):
        per_window += len(protocol.replay_events) / max(1, -(-n_steps // model.delay_steps))
    per_window *= n_trials / protocol.n_trials
    degree = np.diff(np.asarray(net.indptr, np.int64))
    mean_degree = float(degree.mean()) if degree.size else 0.0
    pow2 = lambda x: 2 ** math.ceil(math.log2(max(x, 1.0)))  # noqa: E731
    spikes = max(1024, pow2(4 * per_window))
    return Budgets(
        active=1,
        stepped=1,
        spikes=min(spikes, n_trials * net.n_neurons),
        events=max(65536, pow2(2 * per_window * mean_degree)),
        awake=1,
    )


def simulate(
    network: Connectome | Network,
    protocol: Protocol,
    *,
    model: AbstractNeuron | None = None,
    duration_ms: float,
    seed: int = 0,
    kernel: str | object = "auto",
    stepper=None,
    precision: str = "float32",
    record: np.ndarray | list[int] | None = None,
    chunk_ms: float = 100.0,
    budgets: Budgets | None = None,
    progress: Callable[[int, int], None] | None = None,
    ids: np.ndarray | None = None,
    devices: int | str = 1,
    native: bool | None = None,
    gap_junctions: bool = True,
    poisson_stream: int = DEFAULT_STREAM,
) -> SimResult:
    """Simulate ``protocol.n_trials`` trials of ``duration_ms`` each.

    Args:
        network: a Connectome (moved to the device here) or a prepared :class:`Network`.
        protocol: drive and perturbations (internal neuron indices).
        model: a neuron model (``brainsim.models``: LIF, Graded, PQN); default LIF with
            the parameters of Shiu et al. 2024.
        stepper: a stepper object (``Reference()``, ``Windowed(native=..., budgets=...)``,
            ``DenseWindow()``, see :mod:`brainsim.sim._steppers`), or None to take it from
            ``kernel``: ``"auto"`` (default: windowed where it applies, else reference),
            ``"windowed"`` (event-driven, fast; on one device it runs the dense-window
            stepper when a quarter or more of the neurons are driven or recorded),
            ``"dense_window"`` (every neuron stepped every dt, synapses event-driven per
            window: for dense activity; one device) or ``"reference"`` (every neuron and
            connection every step: any model, graded synapses, gap junctions; validation).
            A stepper that cannot run the model or its synapses raises a ValueError that
            says what would.
        precision: ``"float32"`` or ``"float64"`` (needs JAX 64-bit mode).
        record: neuron indices whose traces (the model's ``trace_names``) are returned at
            every step.
        chunk_ms: simulated time per compiled call; bounds memory and paces ``progress``.
        budgets: initial array sizes of the windowed kernel; they grow as needed.
        progress: called as ``progress(steps_done, steps_total)`` after each chunk.
        devices: number of devices to split the trials over (windowed kernel), or
            ``"all"``; the number of trials must be a multiple of it. Results equal a
            one-device run.
        native: on the CPU, deliver each window's synaptic events with a compiled C++
            kernel (``brainsim.kernels.window_deliver`` for the windowed stepper,
            ``dense_deliver`` for the dense-window one; same results as their JAX forms,
            tested). None (default): wherever it applies (CPU backend, a C++ compiler; for
            the windowed stepper also time constants and thresholds shared by all neurons);
            False: never; True: required (an error says why it cannot run).
        gap_junctions: use the network's electrical synapses (default); False leaves them
            out (``stats["gap_junctions"]`` records 0 then).
        poisson_stream: which random stream draws the Poisson input events: 2 (default:
            geometric gaps, one Threefry call per input and delay window without events) or
            1 (one uniform per input and step, brainsim 0.1.0's stream). Both have the law
            of independent Bernoulli steps; the same seed gives different events in each
            (:mod:`brainsim.kernels._poisson`). Recorded in ``stats["poisson_stream"]``.

    Raises:
        NonFiniteError: the state (v or g) became NaN or infinite; checked after every
            chunk, so that no run returns spikes of a broken arithmetic.
    """
    model = model or LIF()
    dtype = _x64_guard(precision)
    if not (duration_ms > 0 and math.isfinite(duration_ms)):
        raise ValueError(f"duration_ms must be a positive number, got {duration_ms}")
    has_gaps = _has_gaps(network) and gap_junctions
    kinds = synapse_kinds(model, has_gaps)
    stepper = stepper_for(
        stepper if stepper is not None else kernel, model, kinds, native=native, budgets=budgets
    )
    reference = isinstance(stepper, Reference)
    if isinstance(network, Connectome):
        ids = network.ids
        net = Network.from_connectome(network, dtype, with_pre=reference)
    else:
        net = network
        if reference and net.pre is None:
            raise ValueError("the reference kernel needs a Network built with with_pre=True")
    n = net.n_neurons
    if ids is None:
        ids = np.arange(n, dtype=np.int64)
    if protocol.n_neurons != n:
        raise ValueError(f"protocol is for {protocol.n_neurons} neurons, network has {n}")
    if "events" not in model.inputs and (
        np.any(protocol.rate_hz > 0)
        or (protocol.replay_events is not None and len(protocol.replay_events))
    ):
        raise ValueError(
            f"the {model.kind} model takes no input events (Poisson or replayed); drive it "
            "with currents"
        )
    n_steps = n_steps_of(duration_ms, model.dt_ms)
    if n_steps > MAX_RUN_STEPS:
        raise ValueError(
            f"duration_ms={duration_ms} is {n_steps} steps of dt_ms={model.dt_ms}; a run has "
            f"at most {MAX_RUN_STEPS} (split it into several runs)"
        )
    rec_idx = np.asarray(record if record is not None else [], np.int32).reshape(-1)
    if rec_idx.size and (rec_idx.min() < 0 or rec_idx.max() >= n):
        raise ValueError("record: neuron index out of range")
    key = seed_key(seed)
    t_wall = time.perf_counter()
    stats: dict = {"kernel": stepper.name, "precision": precision, "reruns": 0}
    stats["poisson_stream"] = poisson_stream
    stats["gap_junctions"] = int(net.gap_a.shape[0]) if has_gaps else 0
    drive = protocol.device(
        dtype, dt_ms=model.dt_ms, block_steps=noise_block_steps(model), stream=poisson_stream
    )
    spec = _RunSpec(
        model, net, protocol, drive, dtype, n_steps, key, rec_idx, chunk_ms, progress, ids
    )
    if reference:
        if jax.process_count() > 1 and devices != 1:
            raise ValueError(
                f"the reference stepper runs in one process; a run over "
                f"{jax.process_count()} processes needs the windowed one (LIF, no gap "
                "junctions)"
            )
        run = _run_reference(spec, has_gaps)
    else:
        run = _run_windowed(spec, stepper, devices, stats)
    stats["wall_s"] = time.perf_counter() - t_wall
    sp_trial, sp_step, sp_neuron, trace_parts = run
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    trial, step, neuron = cat(sp_trial), cat(sp_step), cat(sp_neuron)
    order = slice(None) if _in_order(step, trial, neuron) else np.lexsort((neuron, trial, step))
    traces = None
    if rec_idx.size:
        # (in the model's order: JAX returns dicts sorted by key)
        traces = {k: np.concatenate(trace_parts[k])[:n_steps] for k in model.trace_names}
    return SimResult(
        trial=trial[order],
        step=step[order],
        neuron=neuron[order],
        n_trials=protocol.n_trials,
        n_steps=n_steps,
        dt_ms=model.dt_ms,
        ids=np.asarray(ids),
        rec_idx=rec_idx,
        v_rec=None if traces is None else traces.get("v_mv"),
        g_rec=None if traces is None else traces.get("g_mv"),
        stats=stats,
        traces=traces,
        spiking=model.spiking,
    )


def _in_order(step, trial, neuron) -> bool:
    """Whether spikes are already ordered by step, then trial, then neuron (each chunk of a
    one-device run lists them so): checked in linear time, which saves a lexsort."""
    if step.size < 2:
        return True
    ds, dt, dn = np.diff(step), np.diff(trial), np.diff(neuron)
    return bool(np.all((ds > 0) | ((ds == 0) & ((dt > 0) | ((dt == 0) & (dn > 0))))))


def _has_gaps(network) -> bool:
    if isinstance(network, Connectome):
        return network.gap_junctions is not None and network.gap_junctions.num_rows > 0
    return network.gap_a is not None and network.gap_a.shape[0] > 0


@dataclasses.dataclass(frozen=True)
class _RunSpec:
    """What every stepper's run loop reads."""

    model: AbstractNeuron
    net: Network
    protocol: Protocol
    drive: Drive
    dtype: object
    n_steps: int
    key: jax.Array
    rec_idx: np.ndarray
    chunk_ms: float
    progress: Callable[[int, int], None] | None
    ids: np.ndarray

    def all(self) -> tuple:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))


def _run_reference(spec: _RunSpec, gaps: bool):
    """The reference stepper: any model, any synapse kind, every step."""
    model, net, protocol, drive, dtype, n_steps, key, rec_idx, chunk_ms, progress, ids = spec.all()
    n, b = net.n_neurons, protocol.n_trials
    no_ref = np.zeros(n, bool)
    no_ref[protocol.input_idx[protocol.no_refractory]] = True
    aux = model.prepare(
        n, dtype, no_refractory=no_ref, gap_conductance=net.gap_conductance() if gaps else None
    )
    synapses = build_synapses(model, net, gaps)
    rec_dev = to_device(rec_idx, np.int32)
    chunk = max(1, int(round(chunk_ms / model.dt_ms)))
    state = reference_init(model, synapses, b, n, dtype)

    def run_steps(t: int, state, length: int):
        replay = jnp.asarray(protocol.replay_dense(t, length), dtype)
        return reference_chunk(
            model, aux, synapses, drive, state, jnp.int32(t), replay, key, rec_dev
        )

    sp_trial, sp_step, sp_neuron = [], [], []
    traces: dict = {k: [] for k in model.trace_names}
    t = 0
    while t < n_steps:
        m = min(chunk, n_steps - t)
        (state, spikes, tr), _ = padded_or_exact(
            functools.partial(run_steps, t, state),
            m,
            padded_chunk(m, chunk, n_steps),
            lambda out: _finite(out[0].neurons),
        )
        if spikes is not None:
            st, tri, ne = np.nonzero(np.asarray(spikes)[:m])
            sp_step.append(st + t)
            sp_trial.append(tri)
            sp_neuron.append(ne)
        for k in traces:
            traces[k].append(np.asarray(tr[k])[:m])
        t += m
        _check_finite(state.neurons, t, model.dt_ms, ids)
        if progress:
            progress(t, n_steps)
    return sp_trial, sp_step, sp_neuron, traces


def _run_windowed(spec: _RunSpec, stepper, devices, stats: dict):
    """The windowed (LIF) and dense-window (spiking models) steppers: one delay window per
    iteration."""
    model, net, protocol, drive, dtype, n_steps, key, rec_idx, chunk_ms, progress, ids = spec.all()
    n, b = net.n_neurons, protocol.n_trials
    d = model.delay_steps
    budgets = stepper.budgets
    native = stepper.native
    rec_dev = to_device(rec_idx, np.int32)
    sp_trial, sp_step, sp_neuron, trace_parts = [], [], [], {}
    n_windows = -(-n_steps // d)
    wpc = max(1, int(round(chunk_ms / (model.dt_ms * d))))
    n_dev = jax.device_count() if devices == "all" else int(devices)
    if n_dev < 1 or b % n_dev:
        raise ValueError(f"{b} trials cannot be split evenly over {n_dev} device(s)")
    b_local = b // n_dev
    always = always_active(protocol.input_idx, rec_idx)
    if isinstance(stepper, DenseWindow) and n_dev > 1:
        raise ValueError("the dense_window kernel runs on one device (devices = 1)")
    handed = (
        isinstance(stepper, Windowed)
        and stepper.dense_fraction is not None
        and n_dev == 1
        and always.size >= stepper.dense_fraction * n
    )
    dense = isinstance(stepper, DenseWindow) or handed
    if handed:
        stats["handed_to_dense_window"] = (
            f"{always.size} of {n} neurons driven or recorded (>= dense_fraction "
            f"{stepper.dense_fraction})"
        )
    if budgets is None and dense:  # only the spike and event lists are used
        budgets = dense_budgets(net, protocol, model, b_local, n_steps)
    budgets = budgets or predicted_budgets(net, protocol, model, b_local, rec_idx.size, n_steps)
    # (sizes given for more trials per device than this run's would exceed its lists)
    budgets = budgets.capped(b_local * n)
    start_budgets, peak_need = budgets, np.zeros(len(FIELDS), np.int64)
    if dense:
        stats["kernel"] = "dense_window"
        every_input = bool(np.array_equal(protocol.input_idx, np.arange(n)))
        no_ref = np.zeros(n, bool)
        no_ref[protocol.input_idx[protocol.no_refractory]] = True
        aux = model.prepare(n, dtype, no_refractory=no_ref)
        state = dense_window_init(model, b, n, dtype, budgets)
    else:
        rfc = jnp.asarray(protocol.refractory_steps(model.refractory_steps(n)))
        peak = model.psp_peak_factor()
        # the windowed stepper holds u = v - v_0: the recorded neurons' v_0, to report mV
        v_0_rec = np.broadcast_to(np.asarray(model.v_0_mv, np.float64), (n,))[rec_idx]
        state = windowed_init(model, b, n, dtype, budgets, n_dev)
    none = b_local * n
    use_native = _native_choice(native, model, dtype, dense=dense)
    stats["native"] = use_native
    # the whole chunk in one native call (LIF with shared time constants, Poisson stream 2;
    # the windowed stepper on one device), else the native delivery with the JAX step
    fused = dense and use_native and fused_supported(model, aux, drive)
    chunked = not dense and use_native and n_dev == 1 and native_chunk_supported(drive)
    stats["native_chunk"] = fused or chunked
    # budgets the native forms never size anything with: fixed at 1 in the compiled call
    unsized_names = (*NATIVE_UNSIZED, "stepped") if chunked else NATIVE_UNSIZED
    checked = np.array([f not in unsized_names for f in FIELDS], np.int64)
    if n_dev > 1:
        mesh = trial_mesh(n_dev)
        state, drive = place(mesh, state, drive)
        stats["devices"] = n_dev
    stats["chunk_windows"] = []

    cut = None if dense else none

    def run_chunk(w: int, m: int, m_run: int, state):
        """The output of ``m_run`` windows from window ``w``, with budgets grown until they
        hold the first ``m`` (a padded chunk's extra windows size nothing)."""
        nonlocal budgets, peak_need
        if fused or chunked:  # (sparse: a table of every input's replayed events is large)
            off, ev = protocol.replay_windows(w, m_run, d)
            replay = (to_device(off), to_device(ev))
        else:
            replay_np = protocol.replay_dense(w * d, m_run * d).reshape(m_run, d, b, -1)
            replay = to_device(replay_np, dtype)
        while True:
            start = state.with_budgets(budgets, none)
            # (unused budgets must not key a recompilation)
            unsized = dict.fromkeys(unsized_names, 1) if use_native else {}
            sized = dataclasses.replace(budgets, **unsized)
            if chunked:
                out = windowed_native_chunk(
                    model, net, drive, rfc, always, start, jnp.int32(w), *replay, key,
                    rec_dev, sized, peak,
                )  # fmt: skip
            elif fused:
                out = dense_lif_native_chunk(
                    model, aux, net, drive, start, jnp.int32(w), *replay, key, rec_dev, sized
                )
            elif dense:
                out = dense_window_chunk(
                    model,
                    aux,
                    net,
                    drive,
                    start,
                    jnp.int32(w),
                    replay,
                    key,
                    rec_dev,
                    sized,
                    every_input,
                    use_native,
                )
            else:
                args = (model, net, drive, rfc, always, start, jnp.int32(w), replay, key, rec_dev)
                if n_dev > 1:
                    out = sharded_windowed_chunk(mesh, *args, sized, peak, use_native)
                else:
                    out = windowed_chunk(*args, sized, peak, use_native)
            need = out.counts.peak(windows=m)
            limits = need * checked if use_native else need
            grown = budgets.grown(limits).capped(none)
            if grown == budgets:
                peak_need = np.maximum(peak_need, need)
                return out
            budgets = grown
            stats["reruns"] += 1

    finite = functools.partial(_chunk_finite, dense=dense, none=cut)
    w = 0
    while w < n_windows:
        m = min(wpc, n_windows - w)
        out, m_run = padded_or_exact(
            functools.partial(run_chunk, w, m, state=state),
            m,
            padded_chunk(m, wpc, n_windows),
            finite,
            stats["chunk_windows"],
        )
        t_end = min((w + m) * d, n_steps)
        state, flat, k, tr = out.state, out.spike_flat, out.spike_step, out.traces
        if not dense:
            tr = windowed_traces(tr["u_mv"], tr["g_mv"], v_0_rec)
        if not finite(out):  # (the scan finds the entry the error names)
            _check_finite(state.neurons if dense else state, t_end, model.dt_ms, ids, cut)
        flat = to_host(flat).reshape(n_dev, m_run, -1)[:, :m]
        k = to_host(k).reshape(n_dev, m_run, -1)[:, :m]
        shard, wi, si = np.nonzero(flat < none)
        step = (w + wi) * d + k[shard, wi, si]
        keep = step < n_steps
        f = flat[shard, wi, si][keep]
        sp_step.append(step[keep])
        sp_trial.append(shard[keep] * b_local + f // n)
        sp_neuron.append(f % n)
        for name, x in tr.items():
            x = to_host(x)[:m].reshape(m * d, b, rec_idx.size)
            trace_parts.setdefault(name, []).append(x)
        w += m
        if progress:
            progress(min(w * d, n_steps), n_steps)
    stats["budgets_used"] = dataclasses.asdict(budgets)
    # what this run needed with headroom (growth may have overshot while extrapolating):
    # the sizes to start a run like it with
    # (from the small floor, not from the start: predicted budgets are generous)
    floor = start_budgets
    if not dense:
        floor = initial_budgets(b_local, protocol.n_inputs, rec_idx.size, n)
    fitted = floor.grown(peak_need, extrapolate=False).capped(none)
    stats["budgets"] = dataclasses.asdict(fitted)
    return sp_trial, sp_step, sp_neuron, trace_parts
