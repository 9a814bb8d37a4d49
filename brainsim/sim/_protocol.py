"""What a run does to the network: input drive, silencing and removal, per trial.

A :class:`Protocol` is host-side (numpy) and says, for B trials, which neurons receive
input events (Poisson at a rate, or replayed from a table), current steps, and which neurons
are silenced (outgoing synapses zeroed, as in Shiu et al.) or removed (outgoing and
incoming). :meth:`Protocol.device` turns it into the arrays the kernels read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, UInt32

from brainsim.kernels import (
    DEFAULT_STREAM,
    STREAMS,
    poisson_block,
    poisson_events,
    stream_keys,
    window_block,
    window_thresholds,
)
from brainsim.sim._units import to_device

# indices, rates, amplitudes or masks: arrays, scalars or (nested) lists of numbers
Values = ArrayLike | Sequence


@dataclasses.dataclass
class Protocol:
    """Per-trial drive and perturbations of a run of ``n_trials`` trials.

    Attributes:
        n_trials, n_neurons: sizes.
        input_idx: int32 [n_in], neurons that receive input events or currents (unique).
        rate_hz: float [n_trials, n_in], Poisson rate per trial and input neuron (0 = none).
        replay_events: optional int array [n_events, 3] of (trial, step, input position):
            replayed input events, each acting like one Poisson event.
        current: list of (input position, amplitude_mv [n_trials], start_step, stop_step):
            an external drive ``i_ext`` in mV on ``[start, stop)``.
        silenced: bool [n_trials, n_neurons] or None: outgoing synapses zeroed.
        removed: bool [n_trials, n_neurons] or None: outgoing and incoming synapses zeroed.
        trial_ids: int [n_trials] or None: the number that keys each trial's input noise
            (default ``0..n_trials-1``). An experiment gives trial t of condition c the
            number ``c x trials + t``, so its answers do not depend on how it is batched.
        no_refractory: bool [n_in]: inputs without refractory period (Poisson and replayed
            inputs, as in the reference code).
    """

    n_trials: int
    n_neurons: int
    input_idx: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))
    rate_hz: np.ndarray | None = None
    replay_events: np.ndarray | None = None
    current: list = dataclasses.field(default_factory=list)
    silenced: np.ndarray | None = None
    removed: np.ndarray | None = None
    no_refractory: np.ndarray | None = None
    trial_ids: np.ndarray | None = None

    def __post_init__(self):
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.trial_ids is None:
            self.trial_ids = np.arange(self.n_trials, dtype=np.int64)
        self.trial_ids = np.asarray(self.trial_ids, np.int64).reshape(-1)
        if self.trial_ids.size != self.n_trials:
            raise ValueError(f"trial_ids: {self.trial_ids.size} numbers for {self.n_trials} trials")
        if self.n_trials and (self.trial_ids.min() < 0 or self.trial_ids.max() >= 2**31):
            raise ValueError("trial_ids must lie in [0, 2**31)")
        self.input_idx = np.asarray(self.input_idx, np.int32)
        n_in = self.input_idx.size
        if np.unique(self.input_idx).size != n_in:
            raise ValueError("input_idx must be unique")
        if self.rate_hz is None:
            self.rate_hz = np.zeros((self.n_trials, n_in))
        self.rate_hz = np.broadcast_to(np.asarray(self.rate_hz, np.float64), (self.n_trials, n_in))
        if not np.all(np.isfinite(self.rate_hz)) or np.any(self.rate_hz < 0):
            raise ValueError("Poisson rates must be finite and >= 0 Hz")
        if self.no_refractory is None:
            self.no_refractory = np.zeros(n_in, bool)
        for name in ("silenced", "removed"):
            m = getattr(self, name)
            if m is not None:
                setattr(
                    self,
                    name,
                    np.broadcast_to(np.asarray(m, bool), (self.n_trials, self.n_neurons)),
                )

    # ---------------------------------------------------------------- builders
    @classmethod
    def build(
        cls,
        n_trials: int,
        n_neurons: int,
        *,
        poisson: Sequence[tuple[Values, Values]] = (),
        replay: tuple[Values, Values, Values] | None = None,
        current: Sequence[tuple[Values, Values, int, int]] = (),
        silence: Values | None = None,
        remove: Values | None = None,
        trial_ids: Values | None = None,
    ) -> Protocol:
        """Assemble a protocol from neuron index sets.

        Args:
            poisson: list of (neuron indices, rate_hz scalar or per-trial [n_trials]).
            replay: (trial [n], step [n], neuron index [n]) of replayed input events.
            current: list of (neuron indices, amplitude_mv scalar or [n_trials], start_step,
                stop_step).
            silence, remove: bool [n_neurons] or [n_trials, n_neurons] masks.
            trial_ids: the numbers that key each trial's input noise (default 0..B-1).
        """
        groups = [np.asarray(ix, np.int32) for ix, _ in poisson]
        if replay is not None:
            groups.append(np.unique(np.asarray(replay[2], np.int32)))
        groups += [np.asarray(ix, np.int32) for ix, *_ in current]
        input_idx = np.unique(np.concatenate(groups)) if groups else np.zeros(0, np.int32)
        pos = {int(i): p for p, i in enumerate(input_idx)}
        rate = np.zeros((n_trials, input_idx.size))
        no_ref = np.zeros(input_idx.size, bool)
        for ix, r in poisson:
            cols = [pos[int(i)] for i in np.atleast_1d(ix)]
            rate[:, cols] += np.broadcast_to(np.asarray(r, np.float64), (n_trials,))[:, None]
            no_ref[cols] = True
        events = None
        if replay is not None:
            trial, step, neuron = (np.asarray(a, np.int64) for a in replay)
            if trial.size and (trial.min() < 0 or trial.max() >= n_trials):
                raise ValueError(f"replayed event trial out of range 0..{n_trials - 1}")
            cols = np.array([pos[int(i)] for i in neuron], np.int64)
            events = (
                np.stack([trial, step, cols], axis=1) if trial.size else np.zeros((0, 3), np.int64)
            )
            no_ref[np.unique(cols)] = True
        cur = []
        for ix, amp, start, stop in current:
            amp = np.broadcast_to(np.asarray(amp, np.float64), (n_trials,))
            for i in np.atleast_1d(ix):
                cur.append((pos[int(i)], amp, int(start), int(stop)))
        return cls(
            n_trials=n_trials,
            n_neurons=n_neurons,
            input_idx=input_idx,
            rate_hz=rate,
            replay_events=events,
            current=cur,
            silenced=silence,
            removed=remove,
            no_refractory=no_ref,
            trial_ids=trial_ids,
        )

    @property
    def n_inputs(self) -> int:
        return int(self.input_idx.size)

    def refractory_steps(self, model_steps: np.ndarray) -> np.ndarray:
        """Per-neuron refractory steps with the protocol's no-refractory inputs set to 0."""
        out = np.array(model_steps, np.int32, copy=True)
        out[self.input_idx[self.no_refractory]] = 0
        return out

    def replay_dense(self, t0: int, n_steps: int) -> np.ndarray:
        """float32 [n_steps, n_trials, n_in]: replayed event counts of steps [t0, t0+n);
        [n_steps, n_trials, 1] zeros (broadcasting over the inputs) when nothing is
        replayed, so that a run driving every neuron moves no large array of zeros."""
        if self.replay_events is None or not len(self.replay_events):
            return np.zeros((n_steps, self.n_trials, 1), np.float32)
        out = np.zeros((n_steps, self.n_trials, self.n_inputs), np.float32)
        ev = self.replay_events
        sel = (ev[:, 1] >= t0) & (ev[:, 1] < t0 + n_steps)
        np.add.at(out, (ev[sel, 1] - t0, ev[sel, 0], ev[sel, 2]), 1.0)
        return out

    def replay_windows(self, w0: int, n_windows: int, d: int) -> tuple[np.ndarray, np.ndarray]:
        """The replayed events of windows ``[w0, w0 + n_windows)`` of ``d`` steps, sparse:
        ``(offsets int32 [n_windows x n_trials + 1], events int32 [E, 2])``, the events of
        window ``w`` (from ``w0``) and trial ``b`` being rows ``offsets[w n_trials + b]`` up
        to the next offset of ``events`` (step within the window, input position). ``E`` is
        padded to a power of two (rows past the last offset), so that chunks share a
        compiled program."""
        offsets = np.zeros(n_windows * self.n_trials + 1, np.int32)
        ev = self.replay_events
        if ev is None or not len(ev):
            return offsets, np.zeros((1, 2), np.int32)
        t0 = w0 * d
        sel = (ev[:, 1] >= t0) & (ev[:, 1] < t0 + n_windows * d)
        trial, step, pos = ev[sel, 0], ev[sel, 1] - t0, ev[sel, 2]
        slot = (step // d) * self.n_trials + trial
        order = np.lexsort((pos, step, slot))
        np.cumsum(np.bincount(slot, minlength=n_windows * self.n_trials), out=offsets[1:])
        size = 1 << max(0, int(order.size) - 1).bit_length()
        events = np.zeros((max(1, size), 2), np.int32)
        events[: order.size, 0] = step[order] % d
        events[: order.size, 1] = pos[order]
        return offsets, events

    def device(
        self, dtype, *, dt_ms: float, block_steps: int, stream: int = DEFAULT_STREAM
    ) -> Drive:
        """The device form, drawing Poisson events from ``stream`` (1 or 2, see
        :mod:`brainsim.kernels._poisson`) in blocks of ``block_steps`` steps of ``dt_ms``."""
        if stream not in STREAMS:
            raise ValueError(f"poisson_stream must be one of {STREAMS}, got {stream!r}")
        k = len(self.current)
        levels, table = window_thresholds(self.rate_hz, dt_ms, block_steps)
        return Drive(
            trial_ids=to_device(self.trial_ids, np.int32),
            input_idx=to_device(self.input_idx, np.int32),
            rate_hz=to_device(self.rate_hz, dtype),
            cur_pos=to_device(np.array([c[0] for c in self.current], np.int32).reshape(k)),
            cur_amp_mv=to_device(
                np.stack([c[1] for c in self.current], 1) if k else np.zeros((self.n_trials, 0)),
                dtype,
            ),
            cur_start=to_device(np.array([c[2] for c in self.current], np.int32).reshape(k)),
            cur_stop=to_device(np.array([c[3] for c in self.current], np.int32).reshape(k)),
            silenced=None if self.silenced is None else to_device(self.silenced),
            removed=None if self.removed is None else to_device(self.removed),
            poisson_level=to_device(levels),
            poisson_table=to_device(table),
            stream=stream,
        )


class Drive(eqx.Module):
    """Device form of a :class:`Protocol` (without the replayed events, fed per chunk).

    Every field with a trial axis has it first, so that trials can be split across devices;
    ``trial_ids`` are the global trial numbers that seed each trial's input noise.
    ``poisson_level`` and ``poisson_table`` are stream 2's thresholds
    (:func:`brainsim.kernels.window_thresholds`); ``stream`` says which stream draws the
    Poisson events."""

    trial_ids: Int[Array, " trials"]
    input_idx: Int[Array, " inputs"]
    rate_hz: Float[Array, "trials inputs"]
    cur_pos: Int[Array, " currents"]
    cur_amp_mv: Float[Array, "trials currents"]
    cur_start: Int[Array, " currents"]
    cur_stop: Int[Array, " currents"]
    silenced: Bool[Array, "trials neurons"] | None
    removed: Bool[Array, "trials neurons"] | None
    poisson_level: Int[Array, "trials inputs"]
    poisson_table: UInt32[Array, "levels steps"]
    stream: int = eqx.field(static=True, default=DEFAULT_STREAM)

    def outputs_cut(self) -> Bool[Array, "trials neurons"] | None:
        """Neurons whose outgoing synapses are zeroed: silenced or removed (None: none)."""
        if self.removed is None:
            return self.silenced
        return self.removed if self.silenced is None else self.silenced | self.removed

    def flat_masks(self):
        """``(outputs cut, removed)``, each flattened to [trials x neurons] or None: the
        masks as the native kernels take them."""
        cut = self.outputs_cut()
        return (
            None if cut is None else cut.ravel(),
            None if self.removed is None else self.removed.ravel(),
        )

    def incoming(self, syn_in_mv):
        """Synaptic input with removed neurons' incoming synapses zeroed."""
        return syn_in_mv if self.removed is None else jnp.where(self.removed, 0, syn_in_mv)

    def dense_inputs_at(self, key, step, replay_counts, dt_ms: float, block_steps: int, like):
        """:meth:`inputs_at` scattered onto every neuron: (events, i_ext), shape of ``like``
        [trials, neurons]; the dense steppers' form."""
        events, i_ext = self.inputs_at(key, step, replay_counts, dt_ms, block_steps)
        zeros = jnp.zeros_like(like)
        return (
            zeros.at[:, self.input_idx].set(events),
            zeros.at[:, self.input_idx].set(i_ext),
        )

    def inputs_at(self, key, step, replay_counts, dt_ms: float, block_steps: int):
        """(events, i_ext_mv), each [trials, inputs], for absolute ``step``; Poisson events
        are drawn in blocks of ``block_steps`` (see :mod:`brainsim.kernels`)."""
        if self.stream == 1:
            events = poisson_events(key, self.trial_ids, step, self.rate_hz, dt_ms, block_steps)
        else:
            events = self.poisson(key, step // block_steps, block_steps)[step % block_steps]
        return events + replay_counts.astype(events.dtype), self.current_at(step)

    def block_inputs(self, key, block, replay_counts, dt_ms: float, block_steps: int):
        """(events, i_ext_mv), each [block_steps, trials, inputs], for the steps of one
        block: the same values :meth:`inputs_at` gives step by step, drawn at once."""
        if self.stream == 1:
            events = poisson_block(key, self.trial_ids, block, self.rate_hz, dt_ms, block_steps)
        else:
            events = self.poisson(key, block, block_steps)
        steps = block * block_steps + jnp.arange(block_steps, dtype=jnp.int32)
        return events + replay_counts.astype(events.dtype), jax.vmap(self.current_at)(steps)

    def poisson(self, key, block, block_steps: int) -> Float[Array, "steps trials inputs"]:
        """Stream 2's events of one block (in the rates' dtype)."""
        if block_steps != self.poisson_table.shape[1]:
            raise ValueError(
                f"Poisson blocks of {block_steps} steps, but the drive's thresholds were made "
                f"for {self.poisson_table.shape[1]} (Protocol.device's block_steps)"
            )
        keys = stream_keys(key, self.trial_ids, block_steps)
        events = window_block(keys, self.input_idx, block, self.poisson_level, self.poisson_table)
        return events.astype(self.rate_hz.dtype)

    def native_args(self, key, block_steps: int, replay_offsets, replay_events) -> tuple:
        """The drive as the native chunks take it (``brainsim.kernels.dense_lif_chunk``,
        ``windowed_lif_chunk``): stream 2's per-trial keys, levels and thresholds, the
        replayed events (per window and trial), the currents."""
        keys = stream_keys(key, self.trial_ids, block_steps)
        return (
            *(keys, self.poisson_level, self.poisson_table),
            *(replay_offsets, replay_events),
            *(self.cur_pos, self.cur_amp_mv, self.cur_start, self.cur_stop),
        )

    def current_at(self, step) -> Float[Array, "trials inputs"]:
        """External drive in mV of each (trial, input) at absolute ``step``."""
        on = (step >= self.cur_start) & (step < self.cur_stop)
        amp = self.cur_amp_mv * on.astype(self.cur_amp_mv.dtype)
        return jax.vmap(
            lambda a: jax.ops.segment_sum(a, self.cur_pos, num_segments=self.input_idx.shape[0])
        )(amp)
