"""Poisson stream 2 (geometric gaps, brainsim/kernels/_poisson.py): its generator against
JAX's, its thresholds against their closed form, its law against independent Bernoulli steps,
and its keying (per trial and neuron, whatever the batch)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brainsim.kernels import stream_keys, threefry2x32, window_block, window_thresholds
from conftest import random_connectome
from jax.extend.random import threefry_2x32

from brainsim.sim import Protocol, simulate


def test_threefry_equals_jax_threefry():
    rng = np.random.default_rng(0)
    for _ in range(3):
        key = rng.integers(0, 2**32, 2, dtype=np.uint32)
        x = rng.integers(0, 2**32, (2, 257), dtype=np.uint32)
        # JAX's function hashes the first half of its counts with the second
        want = np.asarray(threefry_2x32(jnp.asarray(key), jnp.asarray(x.reshape(-1))))
        y0, y1 = threefry2x32(key[0], key[1], x[0], x[1])
        np.testing.assert_array_equal(np.concatenate([y0, y1]), want)


def test_thresholds_are_the_closed_form_and_rates_share_rows():
    rate = np.array([[10.0, 0.0, 10.0], [2000.0, 10.0, 2000.0]])
    levels, table = window_thresholds(rate, 0.1, 18)
    assert table.shape == (4, 18) and table.dtype == np.uint32  # 3 distinct rates -> 4 rows
    assert levels[0, 0] == levels[0, 2] == levels[1, 1]  # equal rates, one row
    np.testing.assert_array_equal(table[levels[0, 1]], 0)  # 0 Hz: never an event
    np.testing.assert_array_equal(table[3], 0)  # padding row
    _, saturated = window_thresholds(np.array([[1e6]]), 0.1, 18)  # p >= 1: every step
    np.testing.assert_array_equal(saturated, 2**32 - 1)
    for r in (10.0, 2000.0):
        p = r * 1e-4
        within = 1 - (1 - p) ** np.arange(1, 19)  # an event within k + 1 steps
        row = table[levels[rate == r][0]].astype(np.float64) / 2**32
        np.testing.assert_allclose(row, within, rtol=1e-9, atol=2**-32)
        assert np.all(np.diff(row) > 0)


def _events(rate_hz, trials, inputs, windows, d=18, seed=0, trial_ids=None, neurons=None):
    trial_ids = jnp.arange(trials, dtype=jnp.int32) if trial_ids is None else trial_ids
    neurons = jnp.arange(inputs, dtype=jnp.int32) if neurons is None else neurons
    keys = stream_keys(jax.random.PRNGKey(seed), trial_ids, d)
    levels, table = window_thresholds(np.full((trials, inputs), rate_hz), 0.1, d)
    block = jax.jit(window_block)
    return np.stack(
        [
            np.asarray(block(keys, neurons, jnp.int32(w), jnp.asarray(levels), jnp.asarray(table)))
            for w in range(windows)
        ]
    )  # [windows, d, trials, inputs]


@pytest.mark.parametrize("rate_hz", [50.0, 2000.0])
def test_events_have_the_law_of_independent_bernoulli_steps(rate_hz):
    p = rate_hz * 1e-4
    ev = _events(rate_hz, 40, 500, 12)  # 240,000 windows of 18 steps
    assert set(np.unique(ev)) <= {0.0, 1.0}
    # every step of the window has probability p, whatever its place in the window
    per_step = ev.sum(axis=(0, 2, 3))
    n = ev.shape[0] * ev.shape[2] * ev.shape[3]
    z = (per_step - n * p) / np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(z) < 4.5), z
    # events per window: Binomial(18, p), each count within 4.5 sd of its expectation
    counts = ev.sum(axis=1).reshape(-1).astype(int)
    pmf = np.array([math.comb(18, k) * p**k * (1 - p) ** (18 - k) for k in range(19)])
    expected = pmf * counts.size
    observed = np.bincount(counts, minlength=19)
    sd = np.sqrt(counts.size * pmf * (1 - pmf))
    assert np.all(np.abs(observed - expected) <= 4.5 * sd + 1), (observed, expected)
    # no correlation between a step and the next, within or across windows
    train = ev.transpose(2, 3, 0, 1).reshape(-1, ev.shape[0] * ev.shape[1])
    r = np.corrcoef(train[:, :-1].ravel(), train[:, 1:].ravel())[0, 1]
    assert abs(r) < 4.5 / np.sqrt(train[:, 1:].size)


def test_a_trial_and_a_neuron_draw_the_same_events_in_any_batch():
    ev = _events(2000.0, 3, 5, 2, trial_ids=jnp.asarray([0, 7, 2], jnp.int32))
    alone = _events(
        2000.0,
        1,
        2,
        2,
        trial_ids=jnp.asarray([7], jnp.int32),
        neurons=jnp.asarray([3, 1], jnp.int32),
    )
    np.testing.assert_array_equal(alone[:, :, 0, 0], ev[:, :, 1, 3])
    np.testing.assert_array_equal(alone[:, :, 0, 1], ev[:, :, 1, 1])
    assert ev.sum() > 0
    other_seed = _events(2000.0, 3, 5, 2, seed=1, trial_ids=jnp.asarray([0, 7, 2], jnp.int32))
    assert not np.array_equal(ev, other_seed)


def test_step_by_step_inputs_are_the_rows_of_the_block():
    proto = Protocol.build(2, 6, poisson=[(np.arange(6), 3000.0)])
    drive = proto.device(jnp.float32, dt_ms=0.1, block_steps=18)
    key = jax.random.PRNGKey(3)
    block, _ = drive.block_inputs(key, jnp.int32(4), jnp.zeros((18, 2, 1)), 0.1, 18)
    for k in (0, 5, 17):
        events, _ = drive.inputs_at(key, jnp.int32(4 * 18 + k), jnp.zeros((2, 1)), 0.1, 18)
        np.testing.assert_array_equal(np.asarray(events), np.asarray(block[k]))
    with pytest.raises(ValueError, match="thresholds were made for 18"):
        drive.block_inputs(key, jnp.int32(0), jnp.zeros((10, 2, 1)), 0.1, 10)
    with pytest.raises(ValueError, match="poisson_stream must be one of"):
        proto.device(jnp.float32, dt_ms=0.1, block_steps=18, stream=3)


@pytest.mark.parametrize("stream", [1, 2])
def test_both_streams_give_the_same_spikes_on_every_stepper(stream):
    """Each stream is one input for all steppers (reference, windowed, dense window);
    the two streams differ from each other, at the same rate."""
    n = 60
    conn = random_connectome(n, 0.1, seed=3)
    proto = Protocol.build(2, n, poisson=[(np.arange(10), 300.0)])
    kw = dict(duration_ms=60.0, seed=2, poisson_stream=stream)
    runs = [simulate(conn, proto, kernel=k, **kw) for k in ("reference", "windowed")]
    runs.append(simulate(conn, proto, kernel="dense_window", **kw))
    assert all(r.stats["poisson_stream"] == stream for r in runs)
    for r in runs[1:]:
        assert np.array_equal(r.step, runs[0].step) and np.array_equal(r.neuron, runs[0].neuron)
    other = simulate(conn, proto, kernel="reference", **{**kw, "poisson_stream": 3 - stream})
    assert not np.array_equal(other.step, runs[0].step) or other.n_spikes != runs[0].n_spikes
