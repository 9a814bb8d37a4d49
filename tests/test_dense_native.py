"""The dense-window stepper's native chunk (kernels/native/dense_lif.cc) against its JAX
twin (the same stepper with the model's step in JAX and the native delivery, which sums
each target's arrivals in the same order): spikes and every recorded value bit for bit,
and spikes equal to the reference stepper's."""

import numpy as np
import pytest
from conftest import assert_identical, random_connectome, same_spikes

import brainsim.sim._simulate as engine
from brainsim.connectome import load
from brainsim.models import LIF
from brainsim.sim import Budgets, Protocol, simulate


def _twin(monkeypatch, conn, proto, **kw):
    """(native chunk, JAX twin) runs of the dense-window stepper."""
    fused = simulate(conn, proto, kernel="dense_window", native=True, **kw)
    with monkeypatch.context() as m:
        m.setattr(engine, "fused_supported", lambda *a: False)
        twin = simulate(conn, proto, kernel="dense_window", native=True, **kw)
    assert fused.stats["native_chunk"] and not twin.stats["native_chunk"]
    return fused, twin


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_native_chunk_equals_its_jax_twin_with_every_kind_of_drive(monkeypatch, precision):
    n = 150
    conn = random_connectome(n, 0.08, seed=11, max_count=60)
    rng = np.random.default_rng(11)
    silenced = np.zeros((3, n), bool)
    silenced[1, rng.choice(n, 5, replace=False)] = True  # per trial
    removed = np.zeros(n, bool)
    removed[rng.choice(n, 4, replace=False)] = True
    steps = 600
    replay = [rng.integers(0, 3, 40), rng.integers(0, steps, 40), rng.choice(n, 40)]
    replay = tuple(np.append(x, x[:2]) for x in replay)  # two events twice: counts of 2
    proto = Protocol.build(
        3,
        n,
        poisson=[(np.arange(0, n, 2), 25.0), (np.arange(1, 40, 2), [5.0, 80.0, 0.0])],
        replay=replay,
        current=[(np.arange(50, 60), [3.0, 9.0, -2.0], 100, 350), ([55], 4.0, 200, 700)],
        silence=silenced,
        remove=removed,
        trial_ids=np.array([4, 0, 9]),
    )
    # per-neuron thresholds and w_syn (the native chunk reads them per neuron)
    model = LIF(v_th_mv=-45.0 + rng.uniform(-1, 1, n), w_syn_mv=0.275 + 0.05 * rng.random(n))
    rec = [3, 77, 3, 149, 55]  # a neuron recorded twice, the last neuron, a driven one
    kw = dict(model=model, duration_ms=steps * 0.1, precision=precision, seed=5, record=rec)
    fused, twin = _twin(monkeypatch, conn, proto, budgets=Budgets(8, 8, 4, 8, 8), **kw)
    assert fused.n_spikes > 300 and fused.stats["reruns"] > 0
    assert_identical(fused, twin)
    ref = simulate(conn, proto, kernel="reference", **kw)
    assert same_spikes(fused, ref)


def test_native_chunk_splits_one_trial_over_workers_alike(monkeypatch):
    """One trial of 5,000 neurons: its neurons are split over the workers (one window's
    delivery filtered by target), with the same results as one worker."""
    conn = load("synthetic:seed=1,n_neurons=5000", "synthetic")
    proto = Protocol.build(1, conn.n_neurons, poisson=[(np.arange(conn.n_neurons), 12.0)])
    kw = dict(duration_ms=20.0, record=[0, 2500, 4999])
    runs = {}
    for workers in ("1", "2", "3"):
        monkeypatch.setenv("BRAINSIM_NATIVE_THREADS", workers)
        runs[workers] = simulate(conn, proto, kernel="dense_window", native=True, **kw)
    assert runs["1"].n_spikes > 500
    assert_identical(runs["1"], runs["2"])
    assert_identical(runs["1"], runs["3"])
    monkeypatch.delenv("BRAINSIM_NATIVE_THREADS")
    fused, twin = _twin(monkeypatch, conn, proto, **kw)
    assert_identical(fused, twin)


def test_native_chunk_only_for_what_it_covers(monkeypatch):
    conn = random_connectome(40, 0.1, seed=2)
    proto = Protocol.build(1, 40, poisson=[(np.arange(40), 50.0)])
    kw = dict(kernel="dense_window", duration_ms=5.0, native=True)
    assert simulate(conn, proto, **kw).stats["native_chunk"]
    # stream 1, per-neuron time constants: the native delivery with the JAX step
    assert not simulate(conn, proto, poisson_stream=1, **kw).stats["native_chunk"]
    tau = LIF(tau_m_ms=np.full(40, 20.0))
    assert not simulate(conn, proto, model=tau, **kw).stats["native_chunk"]
    sparse = Protocol.build(1, 40, poisson=[([0, 1], 50.0)])  # windowed: not a dense run
    windowed = simulate(conn, sparse, duration_ms=5.0).stats
    assert windowed["kernel"] == "windowed" and windowed["native_chunk"]  # its own chunk


def test_native_chunk_equals_its_jax_twin_with_a_rate_per_input(monkeypatch):
    """More distinct rates than the JAX form selects among (its threshold rows then
    gathered per input): the same events as the native chunk's."""
    n = 120
    conn = random_connectome(n, 0.08, seed=4, max_count=60)
    rates = np.random.default_rng(4).uniform(20.0, 60.0, n)
    proto = Protocol.build(2, n, poisson=[([i], r) for i, r in enumerate(rates)])
    fused, twin = _twin(monkeypatch, conn, proto, duration_ms=50.0, seed=3, record=[7])
    assert fused.n_spikes > 200
    assert_identical(fused, twin)
