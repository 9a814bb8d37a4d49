"""Fast paths against the plain references."""

import jax.numpy as jnp
import numpy as np
import pytest
from brainsim.kernels import propagate_dense, propagate_events
from conftest import random_connectome

from brainsim.sim import Budgets, Protocol, simulate


def test_event_propagation_equals_dense_including_overflow():
    conn = random_connectome(60, 0.2, seed=3)
    rng = np.random.default_rng(0)
    spikes = rng.random((2, 60)) < 0.3
    w = jnp.asarray(conn.counts * 0.275, jnp.float64)
    dense = propagate_dense(
        jnp.asarray(spikes, jnp.float64),
        jnp.asarray(conn.pre_indices()),
        jnp.asarray(conn.indices),
        w,
    )
    b, i = np.nonzero(spikes)
    need = int(np.diff(conn.indptr)[i].sum())
    for budget, complete in ((need, True), (need // 2, False)):
        post, src, wt, total = propagate_events(
            jnp.asarray(i),
            jnp.ones(i.size, bool),
            jnp.asarray(conn.indptr),
            jnp.asarray(conn.indices),
            w,
            budget,
        )
        assert int(total) == need  # the true count is reported even when it overflows
        ev = np.zeros((2, 60))
        live = np.asarray(src) >= 0
        np.add.at(ev, (b[np.asarray(src)[live]], np.asarray(post)[live]), np.asarray(wt)[live])
        assert np.allclose(ev, np.asarray(dense)) == complete


def same_spikes(a, b):
    return (
        np.array_equal(a.trial, b.trial)
        and np.array_equal(a.step, b.step)
        and np.array_equal(a.neuron, b.neuron)
    )


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("seed", [0, 1])
def test_windowed_equals_reference_on_random_networks(precision, seed):
    conn = random_connectome(150, 0.08, seed=seed, max_count=60)
    rng = np.random.default_rng(seed)
    inputs = rng.choice(150, 12, replace=False)
    silenced = np.zeros(150, bool)
    silenced[rng.choice(150, 5, replace=False)] = True
    proto = Protocol.build(
        3, 150, poisson=[(inputs, np.array([80.0, 150.0, 200.0]))], silence=silenced
    )
    kw = dict(duration_ms=60.0, precision=precision, seed=seed, record=[int(inputs[0]), 7])
    ref = simulate(conn, proto, kernel="reference", **kw)
    # tiny initial budgets force overflow: the engine must grow them and re-run, losing nothing
    fast = simulate(conn, proto, kernel="windowed", budgets=Budgets(8, 8, 4, 8), **kw)
    assert fast.stats["reruns"] > 0
    assert ref.n_spikes > 50
    assert same_spikes(ref, fast)
    tol = 1e-9 if precision == "float64" else 1e-3
    np.testing.assert_allclose(fast.v_rec, ref.v_rec, atol=tol)


def test_removal_cuts_incoming_and_outgoing():
    conn = random_connectome(100, 0.1, seed=5)
    proto_kw = dict(poisson=[(np.arange(10), 150.0)])
    removed = np.zeros(100, bool)
    removed[50:60] = True
    proto = Protocol.build(2, 100, remove=removed, **proto_kw)
    ref = simulate(conn, proto, kernel="reference", duration_ms=40.0, precision="float64")
    fast = simulate(conn, proto, kernel="windowed", duration_ms=40.0, precision="float64")
    assert same_spikes(ref, fast)
    # removed neurons get no synaptic input, so (not being inputs) they never fire
    assert not np.isin(fast.neuron, np.arange(50, 60)).any()
