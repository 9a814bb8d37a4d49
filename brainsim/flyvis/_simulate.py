"""Running a flyvis network on visual input: the graded model and graded synapses of
``brainsim.models`` stepped with the photoreceptors driven by per-column intensities.

Per step, as flyvis's ``Network.forward`` with ``PPNeuronIGRSynapses`` (explicit Euler)::

    V += dt / max(tau, dt) x (-V + bias + sum_j w_ij relu(V_j) + x_i(t))

``x_i(t)`` is the frame's intensity at cell i's column for the input types (R1-R8, every
one of them receiving the same intensity, as flyvis's ``Stimulus.add_input``), 0 for every
other cell. The response recorded at step t is the state after frame t. Conditions (and
trials) run side by side on the batch axis.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from brainsim.flyvis._lattice import Lattice, columns
from brainsim.flyvis._params import TypeParams, cell_values, connection_weights
from brainsim.models import Graded, GradedChemical, NeuronInput, SparseGradedChemical
from brainsim.models._graded import GradedAux, GradedState

# flyvis's grey background (intensities lie in [0, 1])
GREY = 0.5


class VisualNetwork(eqx.Module):
    """A lattice network ready to step: model, its per-run constants, synapses, and where
    the input columns enter."""

    model: Graded
    aux: GradedAux
    synapses: GradedChemical | SparseGradedChemical
    input_cells: Int[Array, " inputs"]
    input_columns: Int[Array, " inputs"]
    n_columns: int = eqx.field(static=True)
    n_cells: int = eqx.field(static=True)


def input_map(lattice: Lattice) -> tuple[np.ndarray, np.ndarray]:
    """(cells, columns): every cell of the input types and its column's index in
    :func:`brainsim.flyvis.columns` order."""
    cu, cv = columns(lattice.extent)
    side = 2 * lattice.extent + 1
    col_of = np.full((side, side), -1, np.int64)
    col_of[cu + lattice.extent, cv + lattice.extent] = np.arange(cu.size)
    cells = np.concatenate([lattice.cells_of(t) for t in lattice.spec.input_types])
    cols = col_of[lattice.u[cells] + lattice.extent, lattice.v[cells] + lattice.extent]
    return cells, cols


def build(
    lattice: Lattice,
    params: TypeParams,
    dt_ms: float,
    *,
    dtype=jnp.float32,
    sparse: bool = True,
    weights=None,
) -> VisualNetwork:
    """The network of ``lattice`` with ``params`` (flyvis's dynamics: explicit Euler, relu
    transfer, tau clamped at dt). ``sparse=False`` uses the plain segment-sum synapses (the
    reference form); ``weights`` overrides the connection weights (a fit's traced ones)."""
    tau_ms, v_rest = cell_values(lattice, params, dt_ms / 1000.0)
    model = Graded(
        tau_ms=tau_ms, v_rest_mv=v_rest, w_syn=1.0, transfer="relu", integrator="euler",
        dt_ms=dt_ms,
    )
    w = connection_weights(lattice, params) if weights is None else weights
    w = jnp.asarray(w, dtype)
    if sparse:
        syn = SparseGradedChemical.from_connections(lattice.pre, lattice.post, w, lattice.n_cells)
    else:
        syn = GradedChemical(
            jnp.asarray(lattice.pre, jnp.int32), jnp.asarray(lattice.post, jnp.int32), w
        )
    cells, cols = input_map(lattice)
    return VisualNetwork(
        model=model,
        aux=model.prepare(lattice.n_cells, dtype),
        synapses=syn,
        input_cells=jnp.asarray(cells, jnp.int32),
        input_columns=jnp.asarray(cols, jnp.int32),
        n_columns=int(columns(lattice.extent)[0].size),
        n_cells=lattice.n_cells,
    )


def step(net: VisualNetwork, v: Float[Array, "b n"], frame: Float[Array, "b columns"]):
    """One Euler step from voltages ``v`` with one frame of column intensities."""
    out = net.model.output(GradedState(v))
    current = net.synapses.deliver(None, 0, out)
    current = current.at[:, net.input_cells].add(frame[:, net.input_columns].astype(v.dtype))
    inputs = NeuronInput(current=current, arrivals=0.0, events=0.0, gap=0.0)
    state, _ = net.model.advance(net.aux, GradedState(v), inputs)
    return state.v


@eqx.filter_jit
def integrate(
    net: VisualNetwork,
    v0: Float[Array, "b n"],
    frames: Float[Array, "steps b columns"],
    record: Int[Array, " recorded"],
):
    """Step through ``frames``: (final voltages, voltages of ``record`` after each frame
    [steps, b, recorded])."""

    def body(v, frame):
        v = step(net, v, frame)
        return v, v[:, record]

    return jax.lax.scan(body, v0, frames)


def resting(net: VisualNetwork, n: int) -> Float[Array, "b n"]:
    """flyvis's initial state: every cell at its bias."""
    return net.model.init_state(n, net.n_cells, net.aux.v_rest.dtype).v


def steady_state(net: VisualNetwork, n: int, seconds: float = 1.0, value: float = GREY):
    """flyvis's ``steady_state``: from rest, ``seconds`` of a uniform ``value`` frame."""
    steps = int(round(seconds * 1000.0 / net.model.dt_ms))
    v = resting(net, n)
    if steps <= 0:
        return v
    frames = jnp.full((steps, n, net.n_columns), value, v.dtype)
    v, _ = integrate(net, v, frames, jnp.zeros(0, jnp.int32))
    return v
