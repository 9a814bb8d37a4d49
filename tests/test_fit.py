"""brainsim.fit: surrogates, the differentiable run, parameter groups and gradient checks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_connectome, random_connectome

from brainsim.connectome import load
from brainsim.fit import (
    SURROGATES,
    RateTargets,
    Surrogate,
    build_params,
    condition_rates,
    differentiable_run,
    first_crossing_ms,
    partition,
    plain_model,
    rate_loss,
    values_by_name,
    van_rossum,
)
from brainsim.models import LIF
from brainsim.sim import Network, Protocol, simulate

SMALL_SYNTHETIC = (
    "synthetic:seed=0,n_neurons=300,n_inputs=10,layer_sizes=20:40:60,mean_out_degree=10"
)
PATHWAY = ("sugar_like_L1", "sugar_like_L2", "sugar_like_L3", "MN9_like")


def _run(params, conn, proto, n_steps, dtype=jnp.float32, key=0, **kw):
    base = kw.pop("base", LIF())
    net = Network.from_connectome(conn, dtype, with_pre=True)
    rfc = jnp.asarray(proto.refractory_steps(base.refractory_steps(conn.n_neurons)))
    replay = jnp.asarray(proto.replay_dense(0, n_steps), dtype)
    return differentiable_run(
        params,
        base,
        net,
        proto.device(dtype, dt_ms=base.dt_ms, block_steps=base.delay_steps),
        rfc,
        jax.random.PRNGKey(key),
        n_steps,
        replay=replay,
        **{"surrogate": Surrogate(scale=0.005), **kw},
    )


# ---------------------------------------------------------------------------- surrogates
@pytest.mark.parametrize("kind", SURROGATES)
def test_surrogate_forward_is_the_threshold_and_derivative_a_unit_bump(kind):
    s = Surrogate(kind, slope=2.0)
    x = jnp.array([-3.0, -1e-6, 0.0, 1e-6, 3.0], jnp.float32)
    assert np.array_equal(np.asarray(s(x)), [0, 0, 0, 1, 1])
    assert s(x).dtype == jnp.float32
    grad = jax.vmap(jax.grad(lambda v: s(v)))(x)
    assert np.allclose(grad, s.derivative(x))
    assert float(jax.grad(s)(jnp.float32(0.0))) == pytest.approx(1.0)  # slope / 2
    xs = np.linspace(-2000, 2000, 2_000_001)
    area = np.trapezoid(np.asarray(s.derivative(jnp.asarray(xs))), xs)
    assert area == pytest.approx(1.0, abs=2e-3)
    assert float(Surrogate(kind, 2.0, scale=0.1).derivative(0.0)) == pytest.approx(0.1)


def test_surrogate_rejects_bad_settings():
    with pytest.raises(ValueError, match="kind"):
        Surrogate("sigmoidish")
    with pytest.raises(ValueError, match="slope"):
        Surrogate("arctan", slope=0.0)
    with pytest.raises(ValueError, match="scale"):
        Surrogate("arctan", scale=-1.0)


# ---------------------------------------------------------------- same spikes as a plain run
@pytest.mark.parametrize(
    "precision, propagation", [("float32", "csr"), ("float64", "csr"), ("float64", "matrix")]
)
def test_differentiable_run_gives_the_reference_kernels_spikes(precision, propagation):
    conn = random_connectome(90, 0.12, seed=3)
    n, b, n_steps = conn.n_neurons, 3, 800
    silence = np.zeros((b, n), bool)
    silence[1, [20, 21, 22]] = True  # per-trial silencing
    remove = np.isin(np.arange(n), [40])
    rng = np.random.default_rng(0)
    replay = (rng.integers(0, b, 30), rng.integers(0, n_steps, 30), rng.integers(60, 64, 30))
    proto = Protocol.build(
        b,
        n,
        poisson=[(np.arange(10), np.array([120.0, 150.0, 180.0]))],
        replay=replay,
        current=[(np.array([70, 71]), 9.0, 100, 600)],
        silence=silence,
        remove=remove,
    )
    dtype = jnp.float64 if precision == "float64" else jnp.float32
    scales = dict(zip(conn.ids.tolist(), rng.uniform(0.7, 1.4, n).tolist(), strict=True))
    params, _ = build_params(
        LIF(), conn, ["w_syn_mv", "syn_scale_by_neuron", "v_th_mv_by_neuron"],
        init={"w_syn_mv": 0.3, "syn_scale_by_neuron": scales, "v_th_mv_by_neuron": -46.0},
        dtype=dtype,
    )  # fmt: skip
    res = _run(params, conn, proto, n_steps, dtype, key=7, propagation=propagation,
               record_spikes=True, checkpoint_steps=64)  # fmt: skip
    model, net, _ = plain_model(params, LIF(), Network.from_connectome(conn, dtype, with_pre=True))
    ref = simulate(net, proto, model=model, duration_ms=80.0, seed=7, kernel="reference",
                   precision=precision)  # fmt: skip
    step, trial, neuron = np.nonzero(np.asarray(res.spikes))
    assert ref.n_spikes > 300
    got = np.sort((step * b + trial) * n + neuron)
    want = np.sort((ref.step * b + ref.trial) * n + ref.neuron)
    assert np.array_equal(got, want)
    assert np.array_equal(np.asarray(res.counts), ref.spike_counts())


# ------------------------------------------------------------------------ parameter groups
def test_scales_keep_the_transmitter_sign_and_positive_values_stay_positive():
    conn = random_connectome(40, 0.2, seed=1)
    params, info = build_params(
        LIF(), conn, ["syn_scale_by_neuron", "tau_m_ms_by_neuron", "v_th_mv"],
        init={"tau_m_ms_by_neuron": 15.0},
    )  # fmt: skip
    trainable, frozen = partition(params)
    leaves = jax.tree_util.tree_leaves(trainable)
    assert len(leaves) == 3  # only the raw values train; groups and priors are frozen
    assert trainable.syn_scale.group is None and frozen.syn_scale.group is not None
    # a huge step toward negative values: scales and time constants stay positive
    step = jax.tree_util.tree_map(lambda x: -50.0 * jnp.ones_like(x), trainable)
    moved = eqx.combine(eqx.apply_updates(trainable, step), frozen)
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    w = np.asarray(moved.weights(LIF(), net.pre, net.counts))
    counts = np.asarray(net.counts)
    assert np.all(np.sign(w[counts != 0]) == np.sign(counts[counts != 0]))
    assert np.all(np.asarray(moved.tau_m_ms.values()) > 0)
    vals = values_by_name(params, info)
    assert vals["v_th_mv"] == pytest.approx(-45.0)
    assert set(vals["tau_m_ms_by_neuron"]) == {str(i) for i in conn.ids}
    assert all(v == pytest.approx(15.0) for v in vals["tau_m_ms_by_neuron"].values())
    # the prior is the base model: regularisation is zero there and grows away from it
    prior_params, _ = build_params(LIF(), conn, ["tau_m_ms_by_neuron"])
    assert float(prior_params.penalty()) == 0.0
    assert float(params.penalty()) == pytest.approx(40 * np.log(20 / 15) ** 2, rel=1e-5)


def test_grouping_by_type_and_errors():
    conn = make_connectome(4, [0, 1, 2], [1, 2, 3], [5, -3, 2], cell_type=["a", "b", "a", None])
    params, info = build_params(
        LIF(), conn, ["syn_scale_by_type"], init={"syn_scale_by_type": {"a": 2.0}}
    )
    assert list(info.labels["syn_scale"]) == ["<none>", "a", "b"]
    assert values_by_name(params, info)["syn_scale_by_type"] == {"<none>": 1.0, "a": 2.0, "b": 1.0}
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    w = np.asarray(params.weights(LIF(w_syn_mv=0.5), net.pre, net.counts))[:3]
    assert np.allclose(w, [5 * 0.5 * 2, -3 * 0.5, 2 * 0.5 * 2])
    with pytest.raises(ValueError, match="unknown quantity"):
        build_params(LIF(), conn, ["w_syn_by_type"])
    with pytest.raises(ValueError, match="no such column"):
        build_params(LIF(), conn, ["v_th_mv_by_colour"])
    with pytest.raises(ValueError, match="already trainable"):
        build_params(LIF(), conn, ["v_th_mv", "v_th_mv_by_neuron"])
    with pytest.raises(ValueError, match="no group named"):
        build_params(LIF(), conn, ["syn_scale_by_type"], init={"syn_scale_by_type": {"c": 1}})
    with pytest.raises(ValueError, match="> 0"):
        build_params(LIF(), conn, ["w_syn_mv"], init={"w_syn_mv": -0.1})
    with pytest.raises(ValueError, match="not one of the trainable"):
        build_params(LIF(), conn, ["w_syn_mv"], init={"v_th_mv": -50.0})


def test_losses():
    counts = jnp.array([[2.0, 0.0], [4.0, 2.0], [1.0, 1.0], [3.0, 1.0]])  # 2 conditions x 2
    rates = condition_rates(counts, 2, duration_ms=100.0)
    assert np.allclose(rates, [[30.0, 10.0], [20.0, 10.0]])
    t = RateTargets.from_arrays([0, 1], [1, 0], [20.0, 20.0])
    assert float(rate_loss(rates, t)) == pytest.approx((10.0**2 + 0.0) / 2)
    assert float(rate_loss(rates, RateTargets.from_arrays(0, [], []))) == 0.0
    with pytest.raises(ValueError, match="rates"):
        RateTargets.from_arrays(0, [1], [-1.0])
    s = jnp.zeros((500, 2)).at[10, 0].set(1.0)  # one spike, then 49 ms of decay
    assert float(van_rossum(s, s, 5.0, 0.1)) == 0.0
    assert float(van_rossum(s, jnp.zeros_like(s), 5.0, 0.1)) == pytest.approx(0.5, rel=0.05)


# ------------------------------------------------------------------------ gradient checks
@pytest.mark.parametrize("kind", SURROGATES)
def test_first_spike_time_gradient_matches_analytic(kind):
    # one neuron from rest under a constant drive I (bias_mv): v(t) = v_0 + I (1 - e^{-t/tau})
    # crosses v_th at t* = -tau ln(1 - a / I), a = v_th - v_0, so that
    # dt*/dI = -tau a / (I (I - a)), dt*/dv_th = tau / (I - a), dt*/dlog(tau) = t*
    conn = make_connectome(1, [], [], [])
    proto = Protocol.build(1, 1)
    params, _ = build_params(
        LIF(), conn, ["bias_mv", "v_th_mv", "tau_m_ms"], init={"bias_mv": 10.0}, dtype=jnp.float64
    )
    base = LIF()

    def t_star(p):
        res = _run(p, conn, proto, 400, jnp.float64, record=jnp.array([0]),
                   surrogate=Surrogate(kind, 1.0, 0.005))  # fmt: skip
        v_th = p.v_th_mv.values()[0]
        return first_crossing_ms(res.rec_margin[:, 0, 0], base.v_0_mv - v_th, base.dt_ms)

    trainable, frozen = partition(params)
    t, grads = jax.value_and_grad(lambda tr: t_star(eqx.combine(tr, frozen)))(trainable)
    tau, big_i, a = 20.0, 10.0, 7.0
    t_exact = -tau * np.log(1 - a / big_i)
    assert float(t) == pytest.approx(t_exact, abs=1e-3)
    assert float(grads.bias_mv.raw[0]) == pytest.approx(-tau * a / (big_i * (big_i - a)), rel=3e-3)
    assert float(grads.v_th_mv.raw[0]) == pytest.approx(tau / (big_i - a), rel=3e-3)
    assert float(grads.tau_m_ms.raw[0]) == pytest.approx(t_exact, rel=3e-3)


@pytest.fixture(scope="module")
def small_synthetic():
    return load(SMALL_SYNTHETIC, "synthetic")


FD_PATHS = {
    "matrix": {"propagation": "matrix", "remat_steps": False},
    # the path that follows the spikes, in C++ on the CPU (a compact surrogate)
    "events": {
        "propagation": "events",
        "native": True,
        "surrogate": Surrogate("straight_through", 0.5, 0.005),
    },
}


@pytest.mark.parametrize(
    "name, h, path",
    [("w_syn_mv", 0.05, "matrix"), ("v_th_mv", 0.5, "matrix"), ("w_syn_mv", 0.05, "events")],
)
def test_rate_gradient_agrees_with_finite_differences(small_synthetic, name, h, path):
    # the sugar-like pathway driven at 150 Hz: graded rates (20-80 Hz), a smooth regime.
    # Surrogate gradient of the mean pathway rate vs central differences of the same
    # mean over 32 trials of 100 ms (same input noise on both sides)
    conn = small_synthetic
    ct = np.array(conn.neurons.column("cell_type").to_pylist())
    grn = np.nonzero(ct == "sugar_like_GRN")[0]
    readout = jnp.asarray(np.nonzero(np.isin(ct, PATHWAY))[0])
    proto = Protocol.build(32, conn.n_neurons, poisson=[(grn, 150.0)])
    params, _ = build_params(LIF(), conn, [name])
    group = name.partition("_by_")[0]

    def mean_rate(p):
        res = _run(p, conn, proto, 1000, key=5, **FD_PATHS[path])
        return res.counts[:, readout].mean() / 0.1

    trainable, frozen = partition(params)
    rate, grad = eqx.filter_jit(
        eqx.filter_value_and_grad(lambda tr: mean_rate(eqx.combine(tr, frozen)))
    )(trainable)
    raw = getattr(params, group).raw
    f = eqx.filter_jit(mean_rate)
    up = f(eqx.tree_at(lambda p: getattr(p, group).raw, params, raw + h))
    down = f(eqx.tree_at(lambda p: getattr(p, group).raw, params, raw - h))
    fd = float(up - down) / (2 * h)
    g = float(getattr(grad, group).raw[0])
    assert 20 < float(rate) < 80
    assert np.sign(g) == np.sign(fd) and abs(fd) > 1.0
    # same order of magnitude (measured: 0.23 and 0.23 on the matrix path, 0.18 on events)
    assert 0.1 < g / fd < 10, (g, fd)
