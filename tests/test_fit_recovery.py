"""Teacher-student recovery: rates simulated with known parameters are the targets; a fit
from another start, with other input noise, finds the parameters again."""

import jax.numpy as jnp
import numpy as np
import pytest

from brainsim.connectome import load
from brainsim.fit import (
    RateTargets,
    Surrogate,
    build_params,
    build_task,
    fit,
    make_optimizer,
    plain_model,
    values_by_name,
)
from brainsim.models import LIF
from brainsim.sim import Network, Protocol, simulate

SMALL_SYNTHETIC = (
    "synthetic:seed=0,n_neurons=300,n_inputs=10,layer_sizes=20:40:60,mean_out_degree=10"
)
DURATION_MS = 200.0


@pytest.fixture(scope="module")
def network():
    conn = load(SMALL_SYNTHETIC, "synthetic")
    ct = np.array(conn.neurons.column("cell_type").to_pylist())
    grn = np.nonzero(ct == "sugar_like_GRN")[0]
    return conn, grn


def _teacher_targets(conn, grn, teacher, base):
    """Mean rates of a plain run (16 trials, seed 123) of the teacher's parameters, for
    every neuron that fired and is not a Poisson-driven input."""
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    model, net, _ = plain_model(teacher, base, net)
    proto = Protocol.build(16, conn.n_neurons, poisson=[(grn, 150.0)])
    r = simulate(net, proto, model=model, duration_ms=DURATION_MS, seed=123)
    rates = r.rates_hz().mean(axis=0)
    idx = np.nonzero((rates > 0) & ~np.isin(np.arange(conn.n_neurons), grn))[0]
    return RateTargets.from_arrays(0, idx, rates[idx])


def _fit(conn, grn, base, targets, trainable, init=None, steps=60, lr=0.05):
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    proto = Protocol.build(8, conn.n_neurons, poisson=[(grn, 150.0)])
    task = build_task(
        net,
        proto,
        base,
        {"rates": targets},
        duration_ms=DURATION_MS,
        surrogate=Surrogate("fast_sigmoid", 1.0, base.dt_ms / base.tau_m_ms),
    )
    params, info = build_params(base, conn, trainable, init=init)
    fitted, history = fit(params, task, steps=steps, optimizer=make_optimizer("adam", lr), seed=1)
    return values_by_name(fitted, info), history


def test_recovers_w_syn_within_5_percent(network):
    conn, grn = network
    teacher, _ = build_params(LIF(), conn, ["w_syn_mv"], init={"w_syn_mv": 0.35})
    targets = _teacher_targets(conn, grn, teacher, LIF())
    assert targets.n_rows > 100
    vals, history = _fit(conn, grn, LIF(), targets, ["w_syn_mv"], init={"w_syn_mv": 0.25})
    assert vals["w_syn_mv"] == pytest.approx(0.35, rel=0.05)
    assert np.mean([h["loss"] for h in history[-10:]]) < 0.05 * history[0]["loss"]


def test_recovers_per_type_synaptic_scales_within_15_percent(network):
    # w_syn_mv = 0.35 known; the scale of each pathway type's outgoing synapses is fitted
    # from 1 (the prior) together with the scales of every other cell type
    conn, grn = network
    truth = {
        "sugar_like_GRN": 1.3,
        "sugar_like_L1": 0.8,
        "sugar_like_L2": 1.2,
        "sugar_like_L3": 0.85,
    }
    base = LIF(w_syn_mv=0.35)
    teacher, _ = build_params(base, conn, ["syn_scale_by_type"], init={"syn_scale_by_type": truth})
    targets = _teacher_targets(conn, grn, teacher, base)
    vals, _ = _fit(conn, grn, base, targets, ["syn_scale_by_type"], steps=80)
    got = vals["syn_scale_by_type"]
    for cell_type, value in truth.items():
        assert got[cell_type] == pytest.approx(value, rel=0.15), (cell_type, got[cell_type])


def test_pqn_synaptic_scale_is_recovered_through_the_model_interface(network):
    """The differentiable run drives any spiking model through ``advance``: a PQN
    teacher's synaptic scale (1.4) is found again from 1 (the prior)."""
    from brainsim.models import PQN

    conn, grn = network
    base = PQN.preset("class2", w_syn=0.1, f_poi=50.0)
    teacher, _ = build_params(base, conn, ["syn_scale"], init={"syn_scale": 1.4})
    targets = _teacher_targets(conn, grn, teacher, base)
    assert targets.n_rows > 30
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    proto = Protocol.build(8, conn.n_neurons, poisson=[(grn, 150.0)])
    task = build_task(net, proto, base, {"rates": targets}, duration_ms=DURATION_MS)
    params, info = build_params(base, conn, ["syn_scale"])
    fitted, history = fit(params, task, steps=60, optimizer=make_optimizer("adam", 0.05), seed=1)
    assert values_by_name(fitted, info)["syn_scale"] == pytest.approx(1.4, rel=0.1)
    assert history[-1]["loss"] < 0.2 * history[0]["loss"]
