"""``propagation = "events"``: the differentiable run whose forward and backward follow the
spikes and the near-threshold neurons, held to the dense paths (same surrogate)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_connectome

from brainsim.connectome import load
from brainsim.fit import Surrogate, build_params, differentiable_run, partition
from brainsim.fit._events import (
    EventCapacity,
    native_events_choice,
    propagate_events,
    propagate_events_native,
)
from brainsim.models import LIF
from brainsim.sim import Network, Protocol

SMALL = "synthetic:seed=1,n_neurons=400,n_inputs=10,layer_sizes=20:40:60,mean_out_degree=12"
ST = Surrogate("straight_through", slope=0.5, scale=0.02)


def run(params, conn, proto, n_steps, **kw):
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    rfc = jnp.asarray(proto.refractory_steps(LIF().refractory_steps(conn.n_neurons)))
    key = jax.random.PRNGKey(3)
    kw = {"surrogate": ST, **kw}
    drive = proto.device(jnp.float32, dt_ms=LIF().dt_ms, block_steps=LIF().delay_steps)
    return differentiable_run(params, LIF(), net, drive, rfc, key, n_steps, **kw)


def test_propagation_and_its_gradients_equal_a_dense_matrix_product():
    """One step's propagation: value, weight gradient, and output gradient at the near
    rows equal the dense [trials, n] x [n, n] product's; elsewhere the output gradient is 0."""
    conn = random_connectome(50, 0.2, seed=2)
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    rng = np.random.default_rng(0)
    out = jnp.asarray((rng.random((3, 50)) < 0.1).astype(np.float32))
    near = jnp.asarray(rng.random((3, 50)) < 0.3)
    w = jnp.asarray(rng.normal(size=net.counts.shape).astype(np.float32)).at[-1].set(0.0)
    g = jnp.asarray(rng.normal(size=(3, 50)).astype(np.float32))
    cap = EventCapacity(20, 2000, 60, 4000)

    def dense(o, wt):
        m = jnp.zeros((50, 50), jnp.float32).at[net.pre, net.indices].add(wt)
        return o @ m

    def events(o, wt):
        return propagate_events(o, near, wt, net.indptr, net.indices, cap)

    np.testing.assert_allclose(events(out, w), dense(out, w), rtol=1e-5, atol=1e-5)
    _, vjp_d = jax.vjp(dense, out, w)
    _, vjp_e = jax.vjp(events, out, w)
    (do_d, dw_d), (do_e, dw_e) = vjp_d(g), vjp_e(g)
    np.testing.assert_allclose(dw_e[:-1], dw_d[:-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.where(near, do_d, 0), do_e, rtol=1e-5, atol=1e-5)
    assert np.abs(np.asarray(do_e))[~np.asarray(near)].max() == 0


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_native_propagation_equals_the_jax_form(index_dtype):
    """The C++ propagation (forward, weight and output gradients) against the JAX form,
    with rows that send nothing, several spikes per row, outputs that are not 0/1, and a
    wide indptr."""
    conn = random_connectome(80, 0.15, seed=5)
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    indptr = jnp.asarray(np.asarray(net.indptr).astype(index_dtype))
    rng = np.random.default_rng(5)
    out = rng.random((7, 80)) * (rng.random((7, 80)) < 0.2)
    out[3] = 0.0  # a row without a spike
    out = jnp.asarray(out.astype(np.float32))
    near = jnp.asarray(rng.random((7, 80)) < 0.3).at[3].set(True)
    w = jnp.asarray(rng.normal(size=net.counts.shape).astype(np.float32)).at[-1].set(0.0)
    g = jnp.asarray(rng.normal(size=(7, 80)).astype(np.float32))
    cap = EventCapacity(200, 20000, 600, 60000)

    def jax_form(o, wt):
        return propagate_events(o, near, wt, net.indptr, net.indices, cap)

    def native_form(o, wt):
        return propagate_events_native(o, near, wt, indptr, net.indices)

    y_j, vjp_j = jax.vjp(jax_form, out, w)
    y_n, vjp_n = jax.vjp(native_form, out, w)
    np.testing.assert_array_equal(jax.jit(native_form)(out, w), y_n)  # (also compiled)
    assert float(jnp.abs(y_j).max()) > 0
    np.testing.assert_allclose(y_n, y_j, rtol=1e-6, atol=1e-6)
    (do_j, dw_j), (do_n, dw_n) = vjp_j(g), vjp_n(g)
    assert float(jnp.abs(dw_j).max()) > 0 and float(jnp.abs(do_j).max()) > 0
    np.testing.assert_allclose(dw_n, dw_j, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(do_n, do_j, rtol=1e-6, atol=1e-6)
    assert np.abs(np.asarray(do_n))[~np.asarray(near)].max() == 0
    assert native_events_choice(None) and not native_events_choice(False)
    # under vmap (one call per element) and with a weight of another dtype (refused)
    stacked = jnp.stack([out, 2 * out])
    batched = jax.vmap(lambda o: native_form(o, w))(stacked)
    np.testing.assert_array_equal(batched[1], native_form(2 * out, w))
    with pytest.raises(ValueError, match="weight is float16"):
        native_form(out, w.astype(jnp.float16))


def _assert_same_gradients(got, want, rtol, atol):
    """Every gradient leaf of ``got`` near ``want``'s, and none of ``want`` all zero."""
    leaves_w = jax.tree_util.tree_leaves(eqx.filter(want, eqx.is_inexact_array))
    leaves_g = jax.tree_util.tree_leaves(eqx.filter(got, eqx.is_inexact_array))
    for a, b in zip(leaves_w, leaves_g, strict=True):
        assert np.abs(np.asarray(a)).max() > 0
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def network():
    conn = load(SMALL, "synthetic")
    ct = np.array(conn.neurons.column("cell_type").to_pylist())
    grn = np.nonzero(ct == "sugar_like_GRN")[0]
    proto = Protocol.build(4, conn.n_neurons, poisson=[(grn, 150.0)])
    return conn, proto, ct


@pytest.mark.parametrize("trainable", [["w_syn_mv"], ["w_syn_mv", "syn_scale_by_type", "v_th_mv"]])
def test_gradients_equal_the_dense_path(network, trainable):
    """Same spikes, same loss, and the same gradient as the CSR path with the same
    compact surrogate (the left-out entries are multiplied by exact zeros)."""
    conn, proto, ct = network
    params, _ = build_params(LIF(), conn, trainable, init={"w_syn_mv": 0.4})
    readout = jnp.asarray(np.nonzero(np.isin(ct, ["sugar_like_L2", "sugar_like_L3"]))[0])
    trainable_p, frozen = partition(params)

    def loss(tr, propagation):
        cap = EventCapacity(512, 16384, 8192, 262144)
        res = run(eqx.combine(tr, frozen), conn, proto, 600, propagation=propagation,
                  checkpoint_steps=50, capacity=cap)  # fmt: skip
        return (res.counts[:, readout].mean() - 5.0) ** 2, res

    (l_d, r_d), g_d = eqx.filter_value_and_grad(lambda t: loss(t, "csr"), has_aux=True)(trainable_p)
    (l_e, r_e), g_e = eqx.filter_value_and_grad(lambda t: loss(t, "events"), has_aux=True)(
        trainable_p
    )
    peaks = np.asarray(r_e.event_peaks)
    assert EventCapacity(512, 16384, 8192, 262144).holds(peaks) and peaks[0] > 0 and peaks[2] > 0
    assert np.array_equal(np.asarray(r_d.counts), np.asarray(r_e.counts))
    assert float(r_e.counts.sum()) > 100
    assert float(l_e) == float(l_d)
    _assert_same_gradients(g_e, g_d, rtol=2e-4, atol=1e-6)


def test_native_events_run_equals_the_jax_events_run(network):
    """A differentiable run with the C++ propagation: the same spikes and loss as the JAX
    form of ``"events"`` and the same gradients (w_syn, per-type scales, thresholds), and
    no event peaks (it has no capacity)."""
    conn, proto, ct = network
    trainable = ["w_syn_mv", "syn_scale_by_type", "v_th_mv"]
    params, _ = build_params(LIF(), conn, trainable, init={"w_syn_mv": 0.4})
    readout = jnp.asarray(np.nonzero(np.isin(ct, ["sugar_like_L2", "sugar_like_L3"]))[0])
    trainable_p, frozen = partition(params)

    def loss(tr, native):
        cap = EventCapacity(512, 16384, 8192, 262144)
        res = run(eqx.combine(tr, frozen), conn, proto, 600, propagation="events",
                  checkpoint_steps=50, capacity=cap, native=native)  # fmt: skip
        return (res.counts[:, readout].mean() - 5.0) ** 2, res

    (l_j, r_j), g_j = eqx.filter_value_and_grad(lambda t: loss(t, False), has_aux=True)(trainable_p)
    (l_n, r_n), g_n = eqx.filter_value_and_grad(lambda t: loss(t, True), has_aux=True)(trainable_p)
    assert r_n.event_peaks is None and r_j.event_peaks is not None
    assert np.array_equal(np.asarray(r_j.counts), np.asarray(r_n.counts))
    assert float(r_n.counts.sum()) > 100
    assert float(l_n) == float(l_j)
    _assert_same_gradients(g_n, g_j, rtol=1e-5, atol=1e-7)


def test_events_need_a_compact_surrogate(network):
    conn, proto, _ = network
    params, _ = build_params(LIF(), conn, ["w_syn_mv"])
    with pytest.raises(ValueError, match="straight_through"):
        run(params, conn, proto, 10, propagation="events", surrogate=Surrogate("fast_sigmoid"))


def test_brainsim_fit_with_event_gradients_takes_the_dense_steps(tmp_path):
    """``[fit] gradient = "events"`` in ``brainsim fit``: the same losses, gradient norms
    and fitted value as ``gradient = "dense"`` step by step; a surrogate without compact
    support is refused, naming the key."""
    import json

    import pyarrow.parquet as pq

    from brainsim import cli
    from brainsim.experiments import ConfigError

    head = f"""
[connectome]
format = "synthetic"
path = "{SMALL}"
cache = false
[simulation]
duration_ms = 100.0
trials = 8
seed = 2
[[stimulus]]
kind = "poisson"
neurons = {{ cell_type = "sugar_like_GRN" }}
rate_hz = 150.0
"""
    (tmp_path / "teacher.toml").write_text(head + "[model]\nw_syn_mv = 0.35\n")
    assert cli.main(["run", str(tmp_path / "teacher.toml"), "--out", str(tmp_path / "t"),
                     "--quiet"]) == 0  # fmt: skip
    hist = {}
    for gradient in ("dense", "events"):
        fit = f"""[fit]
targets = "{tmp_path / "t" / "rates.parquet"}"
trainable = ["w_syn_mv"]
init = {{ w_syn_mv = 0.25 }}
steps = 3
learning_rate = 0.02
gradient = "{gradient}"
surrogate = "straight_through"
surrogate_slope = 0.5
duration_ms = 60.0
"""
        p = tmp_path / f"{gradient}.toml"
        p.write_text(head + fit)
        assert cli.main(["fit", str(p), "--out", str(tmp_path / gradient), "--quiet"]) == 0
        hist[gradient] = pq.read_table(tmp_path / gradient / "loss.parquet").to_pydict()
        man = json.loads((tmp_path / gradient / "manifest.json").read_text())
        assert man["fit"]["gradient"] == gradient
        assert man["fit"]["native_events"] is (gradient == "events")  # (the CPU: C++ form)
    for col in ("loss", "grad_norm", "w_syn_mv"):
        np.testing.assert_allclose(hist["events"][col], hist["dense"][col], rtol=1e-4)
    assert min(hist["dense"]["grad_norm"]) > 0
    bad = tmp_path / "bad.toml"
    bad.write_text((tmp_path / "events.toml").read_text().replace("straight_through", "arctan"))
    with pytest.raises(ConfigError, match="gradient"):
        from brainsim.experiments._config import read_toml
        from brainsim.fit import parse_fit_config

        parse_fit_config(*read_toml(bad))


def test_native_events_only_where_they_apply(network):
    """``native=True`` with another propagation is refused; the event path is native by
    default on the CPU (over several devices it is not: tests/test_sharding.py)."""
    from brainsim.fit import RateTargets, build_task, split_trials

    conn, proto, _ = network
    net = Network.from_connectome(conn, jnp.float32, with_pre=True)
    rows = np.arange(10)
    targets = {"r": RateTargets.from_arrays(0 * rows, rows, 5.0 + 0 * rows, jnp.float32)}
    kw = {"duration_ms": 5.0, "surrogate": ST}
    with pytest.raises(ValueError, match='native=True is for propagation="events"'):
        build_task(net, proto, LIF(), targets, propagation="csr", native=True, **kw)
    task = build_task(net, proto, LIF(), targets, propagation="events", **kw)
    assert task.native and split_trials(task, 1).native
    assert not build_task(
        net, proto, LIF(), targets, propagation="events", native=False, **kw
    ).native


def test_the_native_event_kernels_check_their_arguments():
    """The C++ kernels refuse arrays they would misread (called directly, past the Python
    checks): a weight of another float type, an indptr of the wrong length or type."""
    from brainsim.kernels import events_backward, events_forward

    out = jnp.zeros((2, 4), jnp.float32).at[0, 1].set(1.0)
    indptr = jnp.asarray([0, 1, 2, 3, 4], jnp.int32)
    post = jnp.asarray([1, 2, 3, 0, 0], jnp.int32)  # 4 connections and the padding one
    w = jnp.ones(5, jnp.float32)
    assert float(events_forward(out, w, indptr, post).sum()) == 1.0
    bad = [
        ((out, w.astype(jnp.float16), indptr, post), "weight must have out's float type"),
        ((out, w, indptr[:-1], post), r"indptr must be \[n \+ 1\]"),
        ((out, w, indptr.astype(jnp.float32), post), "indptr: int32 or int64"),
        ((out, w, indptr, post[:-1]), "post and weight differ in length"),
    ]
    for args, why in bad:
        with pytest.raises(Exception, match=why):
            jax.block_until_ready(events_forward(*args))
    near = jnp.ones((2, 4), bool)
    with pytest.raises(Exception, match="g must have out's float type"):
        jax.block_until_ready(events_backward(out, near, w, indptr, post, out.astype(jnp.float16)))
