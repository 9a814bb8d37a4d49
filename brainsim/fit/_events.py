"""Synaptic propagation for gradients that follow the spikes (``propagation = "events"``).

A window's propagation in a differentiable run: every synaptic input arrives one delay
(``d`` steps) after it was sent, so the outputs of ``d`` consecutive steps are propagated
together, as one call on ``d x trials`` rows, and make the next window's input (the
windowed structure of the plain kernels; ``d``-fold fewer, larger operations). The
propagation ``I[r, j] = sum over connections e with post[e] = j of out[r, pre[e]] w[e]`` is
computed from its events instead of every connection, with a custom backward pass whose
cost also follows the activity:

- forward: only the rows ``(trial, neuron)`` with ``out != 0`` (the spikes) are expanded to
  their outgoing connections and scattered, as the plain kernels deliver events;
- weight gradient: ``dL/dw[e] = sum over spikes of pre[e] of dL/dI[b, post[e]]``: the same
  spike rows and connections;
- output gradient ``dL/dout[b, i] = sum over outgoing e of w[e] dL/dI[b, post[e]]``: only
  at the rows of ``near``, the neurons whose surrogate derivative is nonzero this step. The
  spikes' gradient reaches the parameters only through that derivative (``out`` is the
  surrogate of ``v - v_th``), so with a surrogate of compact support (``straight_through``:
  zero beyond ``1 / slope`` mV of threshold) the entries left out are multiplied by exactly
  zero: the gradient is the dense path's, not an approximation.

On the CPU the same propagation runs in C++ (:func:`propagate_events_native`,
``kernels/native/events_grad.cc``): loops over the spikes and the near entries alone, no
capacities (nothing is laid out in slots), the rows split over XLA's threads.

Sizes are static in JAX: :class:`EventCapacity` gives how many spike rows, their
connections, near rows and theirs one window may hold. :func:`step_counts` measures the
four figures of a window; a run returns their maximum (``DiffResult.event_peaks``) and a
fit whose step exceeded a capacity grows it and repeats the step
(``brainsim.fit._loop.fit``), so a result is never computed with events left out.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from brainsim.kernels import events_backward, events_forward, native_choice


class EventCapacity(NamedTuple):
    """Per-window sizes: spike rows, their connections, near-threshold rows, theirs."""

    spikes: int = 256
    spike_edges: int = 16384
    near: int = 4096
    near_edges: int = 262144

    def grown(self, peaks) -> EventCapacity:
        """Capacities that hold ``peaks`` (the four measured maxima) with 50% headroom."""
        pairs = zip(self, peaks, strict=True)
        return EventCapacity(*(max(c, int(1.5 * int(p)) + 1) for c, p in pairs))

    def holds(self, peaks) -> bool:
        return all(int(p) <= c for c, p in zip(self, peaks, strict=True))

    @classmethod
    def for_peaks(cls, peaks) -> EventCapacity:
        """Capacities for measured peaks: 50% headroom, at least 1 each."""
        return cls(*(max(1, int(1.5 * int(p)) + 1) for p in peaks))


def step_counts(out, near, degree) -> Int[Array, " 4"]:
    """The spike rows of ``out``, their connections, the near rows and theirs (int32 [4])."""
    spk = out != 0
    deg = degree[None, :]
    return jnp.stack(
        [spk.sum(), jnp.where(spk, deg, 0).sum(), near.sum(), jnp.where(near, deg, 0).sum()]
    ).astype(jnp.int32)


def _rows(mask: Bool[Array, " flat"], cap: int) -> Int[Array, " cap"]:
    """Flat indices of the set entries, padded with ``mask.size`` (out of range)."""
    return jnp.nonzero(mask, size=cap, fill_value=mask.shape[0])[0].astype(jnp.int32)


def _gather_targets(rows, slot, edge, post, n: int, flat: int):
    r = rows[slot]
    return jnp.where(r < flat, (r // n) * n + post[edge], flat)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def propagate_events(
    out: Float[Array, "trials neurons"],
    near: Bool[Array, "trials neurons"],
    weight: Float[Array, " connections"],
    indptr: Int[Array, " n_plus_1"],
    post: Int[Array, " connections"],
    cap: EventCapacity,
) -> Float[Array, "trials neurons"]:
    """``I[b, j] = sum_e out[b, pre[e]] w[e]`` over the connections of the spiking rows
    (``weight`` and ``post`` in CSR order with one trailing padding connection)."""
    return _forward(out, weight, indptr, post, cap)


def _forward(out, weight, indptr, post, cap):
    b, n = out.shape
    flat_n = b * n
    flat = out.reshape(-1)
    rows = _rows(flat != 0, cap.spikes)
    slot, edge, ok = _edges(rows, n, flat_n, indptr, cap.spike_edges, weight.shape[0] - 1)
    tgt = _gather_targets(rows, slot, edge, post, n, flat_n)
    val = jnp.where(ok, weight[edge] * flat[jnp.minimum(rows[slot], flat_n - 1)], 0)
    return jnp.zeros(flat_n, out.dtype).at[tgt].add(val, mode="drop").reshape(b, n)


def _edges(rows, n: int, flat_n: int, indptr, cap_edges: int, pad_edge: int):
    """Each listed row's outgoing connections laid end to end in ``cap_edges`` slots:
    (row slot, connection, valid) per slot."""
    valid = rows < flat_n
    i = jnp.where(valid, rows % n, 0)
    deg = jnp.where(valid, indptr[i + 1] - indptr[i], 0)
    ends = jnp.cumsum(deg)
    starts = ends - deg
    k = jnp.arange(cap_edges, dtype=ends.dtype)
    # the row of edge slot k: how many rows end at or before k (a running count of row
    # ends, O(cap_edges), instead of a binary search per slot)
    marks = jnp.zeros(cap_edges, jnp.int32).at[ends].add(1, mode="drop")
    slot = jnp.minimum(jnp.cumsum(marks), rows.shape[0] - 1)
    ok = k < ends[-1]
    edge = jnp.where(ok, indptr[i[slot]] + (k - starts[slot]), pad_edge)
    return slot, edge, ok


def _fwd(out, near, weight, indptr, post, cap):
    return _forward(out, weight, indptr, post, cap), (out, near, weight, indptr, post)


def _bwd(cap, res, g):
    out, near, weight, indptr, post = res
    b, n = out.shape
    flat_n = b * n
    flat = out.reshape(-1)
    gf = g.reshape(-1)
    pad = weight.shape[0] - 1
    # the weights: every connection of every spike
    rows = _rows(flat != 0, cap.spikes)
    slot, edge, ok = _edges(rows, n, flat_n, indptr, cap.spike_edges, pad)
    tgt = _gather_targets(rows, slot, edge, post, n, flat_n)
    src_val = flat[jnp.minimum(rows[slot], flat_n - 1)]
    d_w = jnp.where(ok, gf[jnp.minimum(tgt, flat_n - 1)] * src_val, 0)
    d_weight = jnp.zeros_like(weight).at[edge].add(d_w)
    # the outputs: only where the surrogate derivative is nonzero
    rows = _rows(near.reshape(-1), cap.near)
    slot, edge, ok = _edges(rows, n, flat_n, indptr, cap.near_edges, pad)
    tgt = _gather_targets(rows, slot, edge, post, n, flat_n)
    contrib = jnp.where(ok, weight[edge] * gf[jnp.minimum(tgt, flat_n - 1)], 0)
    d_rows = jax.ops.segment_sum(contrib, slot, num_segments=cap.near, indices_are_sorted=True)
    d_out = jnp.zeros(flat_n, out.dtype).at[rows].add(d_rows, mode="drop").reshape(b, n)
    return d_out, None, d_weight, None, None


propagate_events.defvjp(_fwd, _bwd)


@jax.custom_vjp
def propagate_events_native(
    out: Float[Array, "trials neurons"],
    near: Bool[Array, "trials neurons"],
    weight: Float[Array, " connections"],
    indptr: Int[Array, " n_plus_1"],
    post: Int[Array, " connections"],
) -> Float[Array, "trials neurons"]:
    """:func:`propagate_events` in C++ (``brainsim.kernels.events_forward`` and
    ``events_backward``), with the same values and gradients (to rounding: sums in CSR
    order) and no capacity. ``weight`` must have ``out``'s dtype."""
    return _native_forward(out, weight, indptr, post)


def _native_forward(out, weight, indptr, post):
    if weight.dtype != out.dtype:
        raise ValueError(f"weight is {weight.dtype}, out {out.dtype}: give both one dtype")
    return events_forward(out, weight, indptr, post)


def _native_fwd(out, near, weight, indptr, post):
    return _native_forward(out, weight, indptr, post), (out, near, weight, indptr, post)


def _native_bwd(res, g):
    out, near, weight, indptr, post = res
    d_out, d_weight = events_backward(out, near, weight, indptr, post, g.astype(out.dtype))
    return d_out, None, d_weight, None, None


propagate_events_native.defvjp(_native_fwd, _native_bwd)


def native_events_choice(native: bool | None) -> bool:
    """Whether ``propagation="events"`` runs :func:`propagate_events_native`: ``None``
    where the backend is the CPU and the native kernels are built, ``True`` or an error
    saying why not, ``False`` never."""
    return native_choice(native, "native event kernels")
