"""Single-neuron dynamics against closed-form solutions (float64, both kernels)."""

import math

import numpy as np
import pytest
from conftest import make_connectome

from brainsim.models import LIF
from brainsim.sim import Protocol, simulate

KERNELS = ["windowed", "reference"]
M = LIF()
A = math.exp(-0.1 / 20.0)
B = math.exp(-0.1 / 5.0)
KAPPA = 5.0 / (5.0 - 20.0)


@pytest.mark.parametrize("kernel", KERNELS)
def test_subthreshold_response_and_delay(kernel):
    # neuron 0 gets one replayed event at step 0, spikes at step 1; its 3 synapses reach
    # neuron 1 at step 1 + 18, where g jumps by 3 x 0.275 mV and v follows the exact solution
    conn = make_connectome(2, [0], [1], [3])
    proto = Protocol.build(1, 2, replay=([0], [0], [0]))
    r = simulate(conn, proto, duration_ms=10.0, kernel=kernel, precision="float64", record=[1])
    assert list(zip(r.step, r.neuron, strict=True)) == [(1, 0)]
    g, v = r.g_rec[:, 0, 0], r.v_rec[:, 0, 0]
    arrive = 1 + M.delay_steps
    assert np.all(g[:arrive] == 0) and np.all(v[:arrive] == -52.0)
    w = 3 * 0.275
    k = np.arange(0, len(g) - arrive)
    np.testing.assert_allclose(g[arrive:], w * B**k, rtol=1e-12)
    np.testing.assert_allclose(v[arrive:] + 52.0, w * KAPPA * (B**k - A**k), rtol=1e-9, atol=1e-13)


def first_crossing(i_mv: float) -> int:
    """Smallest j >= 1 with i (1 - a^j) > 7 mV: integrations needed to reach threshold."""
    j = 1
    while i_mv * (1 - A**j) <= 7.0:
        j += 1
    return j


@pytest.mark.parametrize("kernel", KERNELS)
def test_time_to_first_spike_and_refractory_period(kernel):
    # a constant drive of 12 mV: u(t) = i (1 - exp(-t / tau_m)) from rest; the neuron is
    # frozen for 22 steps after each spike and then integrates again from v_reset
    conn = make_connectome(1, [], [], [])
    i_mv = 12.0
    proto = Protocol.build(1, 1, current=[([0], i_mv, 0, 10_000)])
    r = simulate(conn, proto, duration_ms=30.0, kernel=kernel, precision="float64", record=[0])
    j = first_crossing(i_mv)
    first = j - 1  # the first integration happens at step 0
    assert r.step[0] == first
    assert np.all(np.diff(r.step) == 21 + j)
    v = r.v_rec[:, 0, 0]
    # frozen at v_reset while refractory
    assert np.all(v[first : first + 22] == -52.0)
    assert v[first + 22] > -52.0


@pytest.mark.parametrize("kernel", KERNELS)
def test_input_lost_while_refractory(kernel):
    # 0 -> 1 strong enough to make 1 spike; 2 -> 1 arrives 5 steps after that spike:
    # Brian2's "unless refractory" drops it, so neuron 1's g stays 0 through refractoriness
    conn = make_connectome(3, [0, 2], [1, 1], [400, 5])
    d = M.delay_steps

    def run(t2):
        proto = Protocol.build(1, 3, replay=([0, 0], [0, t2], [0, 2]))
        return simulate(
            conn, proto, duration_ms=8.0, kernel=kernel, precision="float64", record=[1]
        )

    r = run(0)
    spikes1 = r.step[r.neuron == 1]
    assert spikes1.size == 1
    s1 = spikes1[0]
    # event from neuron 2 arrives at (t2 + 1) + d; choose t2 so that it lands 5 steps after s1
    t2 = s1 + 5 - 1 - d
    lost = run(t2)
    assert np.all(lost.g_rec[s1:, 0, 0] == 0.0)
    # the same event after the refractory period is not lost
    kept = run(s1 + 25 - 1 - d)
    assert kept.g_rec[s1 + 25, 0, 0] == pytest.approx(5 * 0.275)


@pytest.mark.parametrize("kernel", KERNELS)
def test_poisson_inputs_have_no_refractory_period(kernel):
    # an input neuron driven at a high rate fires at step e+1 for each event e, except that an
    # event in the step of its own spike is lost (the thresholder makes it refractory at once)
    conn = make_connectome(1, [], [], [])
    steps = np.arange(0, 200, 2)
    proto = Protocol.build(1, 1, replay=(np.zeros_like(steps), steps, np.zeros_like(steps)))
    r = simulate(conn, proto, duration_ms=25.0, kernel=kernel, precision="float64")
    np.testing.assert_array_equal(r.step, steps + 1)
