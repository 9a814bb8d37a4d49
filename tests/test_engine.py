"""Engine behaviour: determinism, trial independence, silencing, chunking, errors."""

import numpy as np
import pytest
from conftest import make_connectome, random_connectome

from brainsim.models import LIF
from brainsim.sim import Protocol, simulate


def test_same_seed_same_spikes_and_trials_independent():
    conn = random_connectome(80, 0.1, seed=2)
    proto = Protocol.build(2, 80, poisson=[(np.arange(8), 120.0)])
    a = simulate(conn, proto, duration_ms=50.0, seed=4)
    b = simulate(conn, proto, duration_ms=50.0, seed=4, chunk_ms=7.2)  # other chunking
    c = simulate(conn, proto, duration_ms=50.0, seed=5)
    assert np.array_equal(a.step, b.step) and np.array_equal(a.neuron, b.neuron)
    assert not (a.n_spikes == c.n_spikes and np.array_equal(a.step, c.step))
    t0 = set(zip(a.step[a.trial == 0], a.neuron[a.trial == 0], strict=True))
    t1 = set(zip(a.step[a.trial == 1], a.neuron[a.trial == 1], strict=True))
    assert t0 and t1 and t0 != t1


@pytest.mark.parametrize("kernel", ["windowed", "reference"])
def test_short_last_chunk_runs_as_a_full_one_with_the_same_result(kernel):
    """50 ms in chunks of 9 ms: the last chunk (5 ms) reuses the full chunk's program, its
    extra steps discarded; spikes and traces equal a run in one chunk."""
    conn = random_connectome(80, 0.1, seed=2)
    proto = Protocol.build(2, 80, poisson=[(np.arange(8), 150.0)])
    kw = dict(duration_ms=50.0, seed=4, kernel=kernel, record=[3, 40, 79])
    whole = simulate(conn, proto, chunk_ms=50.0, **kw)
    padded = simulate(conn, proto, chunk_ms=9.0, **kw)
    assert whole.n_spikes > 20
    for f in ("trial", "step", "neuron"):
        assert np.array_equal(getattr(whole, f), getattr(padded, f))
    assert padded.v_rec.shape == whole.v_rec.shape == (500, 2, 3)
    np.testing.assert_allclose(padded.v_rec, whole.v_rec, rtol=1e-6, atol=1e-5)
    if kernel == "windowed":  # 28 windows of 1.8 ms: 5 of 5 each, the last padded
        assert padded.stats["chunk_windows"] == [5]
        assert whole.stats["chunk_windows"] == [28]


def test_poisson_rate_matches_request():
    # an isolated input neuron fires once per event (f_poi x w_syn >> threshold): its rate
    # estimates the Poisson rate; 8 trials x 2 s at 100 Hz gives 1600 expected spikes
    conn = make_connectome(1, [], [], [])
    proto = Protocol.build(8, 1, poisson=[([0], 100.0)])
    r = simulate(conn, proto, duration_ms=2000.0)
    assert abs(r.n_spikes - 1600) < 4 * np.sqrt(1600)


def test_silencing_the_only_path_silences_the_target():
    # 0 drives 1 strongly; 1 drives 2 strongly: silencing 1 leaves 2 silent, 1 still fires
    conn = make_connectome(3, [0, 1], [1, 2], [300, 300])
    on = Protocol.build(1, 3, poisson=[([0], 100.0)])
    off = Protocol.build(1, 3, poisson=[([0], 100.0)], silence=np.array([False, True, False]))
    r_on = simulate(conn, on, duration_ms=200.0)
    r_off = simulate(conn, off, duration_ms=200.0)
    assert (r_on.neuron == 2).sum() > 5
    assert (r_off.neuron == 2).sum() == 0
    assert (r_off.neuron == 1).sum() == (r_on.neuron == 1).sum()


def test_bad_arguments_are_named():
    conn = make_connectome(2, [0], [1], [1])
    proto = Protocol.build(1, 2)
    with pytest.raises(ValueError, match="duration_ms"):
        simulate(conn, proto, duration_ms=-1.0)
    with pytest.raises(ValueError, match="kernel"):
        simulate(conn, proto, duration_ms=1.0, kernel="magic")
    with pytest.raises(ValueError, match="protocol is for 3 neurons"):
        simulate(conn, Protocol.build(1, 3), duration_ms=1.0)
    with pytest.raises(ValueError, match="rates"):
        Protocol.build(1, 2, poisson=[([0], float("nan"))])
    with pytest.raises(ValueError, match="dense_window kernel runs on one device"):
        simulate(conn, Protocol.build(2, 2), duration_ms=1.0, kernel="dense_window", devices=2)
    with pytest.raises(ValueError, match="scalar time constants"):
        LIF(tau_m_ms=np.array([10.0, 20.0])).propagator_table(np.arange(3), np.float64)


def test_predicted_budgets_follow_the_drive_and_the_out_degrees():
    """The first budgets scale with the inputs' spikes per window times their out-degree,
    replayed events count as a Poisson rate of the same mean, and no neuron list exceeds
    one slot per (trial, neuron)."""
    from brainsim.sim._network import Network
    from brainsim.sim._simulate import PREDICTED_EVENT_AMPLIFICATION, predicted_budgets

    n = 3000
    conn = random_connectome(n, 0.02, seed=3)
    net = Network.from_connectome(conn, np.float32)
    lif = LIF()
    hubs = np.argsort(np.asarray(conn.out_degree()))[-10:]
    n_steps = 10_000
    window_s = lif.delay_steps * lif.dt_ms / 1000
    by_rate = {}
    for rate in (100.0, 400.0):
        proto = Protocol.build(4, n, poisson=[(hubs, rate)])
        by_rate[rate] = predicted_budgets(net, proto, lif, 4, 0, n_steps)
    expected = PREDICTED_EVENT_AMPLIFICATION * 4 * 400.0 * window_s
    expected *= np.asarray(conn.out_degree())[hubs].sum()
    assert by_rate[400.0].events >= expected > 2 * by_rate[100.0].events
    assert by_rate[400.0].events <= 1.25 * expected  # eighth-of-a-power-of-two steps
    # the same mean rate as replayed events: 400 Hz x 1 s per hub and trial
    rng = np.random.default_rng(0)
    k = 400
    trial = np.repeat(np.arange(4), len(hubs) * k)
    neuron = np.tile(np.repeat(hubs, k), 4)
    step = rng.integers(0, n_steps, trial.size)
    replayed = predicted_budgets(
        net, Protocol.build(4, n, replay=(trial, step, neuron)), lif, 4, 0, n_steps
    )
    assert replayed == by_rate[400.0]
    for f in ("active", "stepped", "awake"):
        assert getattr(by_rate[400.0], f) <= 4 * n


def test_drive_values_reuse_the_compiled_program():
    """Two runs that differ only in their Poisson rates (and seed) compile nothing the
    second time: the predicted sizes of the native kernel's lists do not follow the rates."""
    import jax

    conn = random_connectome(400, 0.03, seed=5)
    inputs = np.arange(0, 400, 20)
    compiles = []

    def count(name, *_, **__):
        if "backend_compile" in name:
            compiles.append(name)

    kw = dict(duration_ms=30.0, kernel="windowed", native=True)
    first = simulate(conn, Protocol.build(2, 400, poisson=[(inputs, 90.0)]), seed=1, **kw)
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        second = simulate(conn, Protocol.build(2, 400, poisson=[(inputs, 170.0)]), seed=2, **kw)
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert first.stats["reruns"] == second.stats["reruns"] == 0
    assert second.n_spikes > first.n_spikes > 0
    assert compiles == []


def test_budgets_larger_than_the_lists_can_hold_are_capped():
    """Sizes remembered for more trials per device (or given by hand) are cut to one slot
    per (trial, neuron); the run equals one from the predicted sizes."""
    from brainsim.sim import Budgets

    conn = random_connectome(80, 0.1, seed=2)
    proto = Protocol.build(2, 80, poisson=[(np.arange(8), 150.0)])
    kw = dict(duration_ms=30.0, seed=3, kernel="windowed")
    big = simulate(conn, proto, budgets=Budgets(5000, 5000, 64, 4096, 5000), **kw)
    plain = simulate(conn, proto, **kw)
    assert big.stats["budgets_used"]["awake"] == big.stats["budgets_used"]["active"] == 160
    assert plain.n_spikes > 0 and np.array_equal(big.neuron, plain.neuron)
    assert np.array_equal(big.step, plain.step)


def test_a_padded_chunk_whose_state_fails_is_run_again_at_its_own_length(monkeypatch):
    """When the state after a padded last chunk is not finite, the failure may lie in the
    extra windows past the run's end: the chunk runs again at its true length (the padded
    state is reported non-finite once here), with the same result."""
    import brainsim.sim._simulate as engine

    conn = random_connectome(80, 0.1, seed=2)
    proto = Protocol.build(2, 80, poisson=[(np.arange(8), 150.0)])
    kw = dict(duration_ms=50.0, seed=4, kernel="windowed", chunk_ms=9.0)
    plain = simulate(conn, proto, **kw)
    import sys

    real, calls = engine._chunk_finite, []

    def once_false(out, **kw):
        # the padded chunk's check (padded_or_exact -> its `finite`)
        if sys._getframe(1).f_code.co_name == "padded_or_exact":
            calls.append(1)
            return real(out, **kw) and len(calls) > 1
        return real(out, **kw)

    monkeypatch.setattr(engine, "_chunk_finite", once_false)
    again = simulate(conn, proto, **kw)
    assert plain.stats["chunk_windows"] == [5] and again.stats["chunk_windows"] == [5, 3]
    assert plain.n_spikes > 20
    assert np.array_equal(plain.step, again.step) and np.array_equal(plain.neuron, again.neuron)
    assert calls == [1]
