"""Trials across devices: one program, each device stepping its own share of the trials.

Trials never interact, so the windowed stepper runs unchanged on each device's trials
(``jax.shard_map`` over a one-axis mesh named ``trials``); only the connectome and model are
replicated. Every trial draws its input noise from its global trial number, so a sharded run
gives the same spikes as a single-device run. Multi-host runs work the same way once
``jax.distributed.initialize()`` has been called: the mesh then spans every host's devices,
every process runs the same program on the same inputs, and each chunk's outputs are
gathered from all processes (:func:`to_host`), so every process holds the whole result
(tested with two CPU processes on 127.0.0.1, ``tests/test_multihost.py``).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from brainsim.sim._chunk import ChunkOutput
from brainsim.sim._protocol import Drive
from brainsim.sim._windowed import WindowedState, windowed_chunk

AXIS = "trials"


def to_host(x) -> np.ndarray:
    """A device array as numpy. One that spans other processes' devices (a multi-host mesh)
    is gathered from every process first: a collective, so every process must call this for
    the same arrays in the same order (they do: each runs the same loop)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def trial_mesh(n_devices: int) -> Mesh:
    devices = jax.devices()
    if n_devices > len(devices):
        raise ValueError(f"asked for {n_devices} devices, JAX sees {len(devices)}: {devices}")
    return Mesh(np.asarray(devices[:n_devices]), (AXIS,))


def _drive_spec(has_silenced: bool, has_removed: bool, stream: int) -> Drive:
    """Which Drive fields have a trial axis (split) and which are shared (replicated)."""
    t, r = P(AXIS), P()
    return Drive(
        trial_ids=t,
        input_idx=r,
        rate_hz=t,
        cur_pos=r,
        cur_amp_mv=t,
        cur_start=r,
        cur_stop=r,
        silenced=t if has_silenced else None,
        removed=t if has_removed else None,
        poisson_level=t,
        poisson_table=r,
        stream=stream,
    )


_STATE_SPEC = WindowedState(*(P(AXIS),) * 4)


def place(mesh: Mesh, state: WindowedState, drive: Drive):
    """Put the state and drive on the mesh, trial axis split."""
    put = lambda x, spec: jax.device_put(x, NamedSharding(mesh, spec))  # noqa: E731
    state = jax.tree.map(put, state, _STATE_SPEC)
    spec = _drive_spec(drive.silenced is not None, drive.removed is not None, drive.stream)
    drive = jax.tree.map(put, drive, spec)
    return state, drive


@functools.lru_cache(maxsize=32)
def _sharded(
    mesh: Mesh,
    budgets,
    peak: float,
    has_silenced: bool,
    has_removed: bool,
    stream: int,
    static_model,
    native: bool,
):
    t, r = P(AXIS), P()
    drive_spec = _drive_spec(has_silenced, has_removed, stream)

    def local(model_arrays, net, drive, rfc, always, state, w0, replay, key, rec):
        # Python-number parameters stay concrete, as under windowed_chunk's filter_jit, so
        # the propagator constants are the same float64-rounded values as on one device
        model = eqx.combine(model_arrays, static_model)
        # every state field carries a leading shard axis (length 1 here)
        st = jax.tree.map(lambda x: x[0], state)
        out = windowed_chunk(
            model, net, drive, rfc, always, st, w0, replay, key, rec, budgets, peak, native
        )
        lift = lambda x: x[None]  # noqa: E731
        # (a tuple across shard_map; named again by sharded_windowed_chunk)
        return (
            jax.tree.map(lift, out.state),
            lift(out.spike_flat),
            lift(out.spike_step),
            jax.tree.map(lift, out.counts),
            out.traces["u_mv"],
            out.traces["g_mv"],
        )

    return jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(r, r, drive_spec, r, r, _STATE_SPEC, r, P(None, None, AXIS), r, r),
            out_specs=(_STATE_SPEC, t, t, t, P(None, None, AXIS), P(None, None, AXIS)),
            check_vma=False,
        )
    )


def sharded_windowed_chunk(
    mesh, model, net, drive, rfc, always, state, w0, replay, key, rec, budgets, peak, native=False
):
    """:func:`windowed_chunk` with the trials split over ``mesh``. Outputs carry a leading
    shard axis: ``flat``/``k`` [shards, windows, S], ``counts`` [shards, windows, 5]; flat
    indices are local to their shard."""
    arrays, static = eqx.partition(model, eqx.is_array)
    fn = _sharded(
        mesh,
        budgets,
        peak,
        drive.silenced is not None,
        drive.removed is not None,
        drive.stream,
        static,
        native,
    )
    state, flat, k, counts, u_rec, g_rec = fn(
        arrays, net, drive, rfc, always, state, w0, replay, key, rec
    )
    return ChunkOutput(state, flat, k, counts, {"u_mv": u_rec, "g_mv": g_rec})
