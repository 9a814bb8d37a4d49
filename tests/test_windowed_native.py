"""The windowed stepper's native chunk (kernels/native/windowed_lif.cc) against its JAX
twin (the same stepper with the native delivery per window and the listed neurons stepped
in JAX): spikes, every recorded value and the final state bit for bit, and spikes equal to
the reference stepper's."""

import numpy as np
import pytest
from conftest import assert_identical, random_connectome, same_spikes

import brainsim.sim._simulate as engine
from brainsim.models import LIF
from brainsim.sim import Budgets, Protocol, Windowed, simulate

# the windowed stepper, kept windowed however many neurons are driven
WINDOWED = Windowed(native=True, dense_fraction=None)


def _twin(monkeypatch, conn, proto, **kw):
    """(native chunk, JAX twin) runs of the windowed stepper."""
    kw = {"stepper": WINDOWED, **kw}
    chunk = simulate(conn, proto, **kw)
    with monkeypatch.context() as m:
        m.setattr(engine, "native_chunk_supported", lambda drive: False)
        twin = simulate(conn, proto, **kw)
    assert chunk.stats["native_chunk"] and not twin.stats["native_chunk"]
    assert chunk.stats["kernel"] == twin.stats["kernel"] == "windowed"
    return chunk, twin


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_native_chunk_equals_its_jax_twin_with_every_kind_of_drive(monkeypatch, precision):
    n = 160
    conn = random_connectome(n, 0.08, seed=12, max_count=60)
    rng = np.random.default_rng(12)
    silenced = np.zeros((3, n), bool)
    silenced[2, rng.choice(n, 5, replace=False)] = True
    removed = np.zeros(n, bool)
    removed[rng.choice(n, 4, replace=False)] = True
    steps = 700
    replay = [rng.integers(0, 3, 30), rng.integers(0, steps, 30), rng.choice(20, 30) + 40]
    replay = tuple(np.append(x, x[:2]) for x in replay)  # two events twice: counts of 2
    proto = Protocol.build(
        3,
        n,
        poisson=[(np.arange(0, 12), 180.0), (np.arange(12, 18), [20.0, 300.0, 0.0])],
        replay=replay,
        current=[(np.arange(60, 64), [4.0, 9.0, -2.0], 100, 350), ([62], 5.0, 200, 650)],
        silence=silenced,
        remove=removed,
        trial_ids=np.array([3, 0, 8]),
    )
    model = LIF(w_syn_mv=0.275 + 0.05 * rng.random(n))  # per-neuron w_syn: kicks per neuron
    rec = [3, 77, 3, 159, 61]  # a neuron recorded twice, the last neuron, a current-driven one
    kw = dict(model=model, duration_ms=steps * 0.1, precision=precision, seed=5, record=rec)
    small = Windowed(native=True, budgets=Budgets(8, 8, 4, 8, 8), dense_fraction=None)
    chunk, twin = _twin(monkeypatch, conn, proto, stepper=small, **kw)
    assert chunk.n_spikes > 300 and chunk.stats["reruns"] > 0
    assert_identical(chunk, twin)
    ref = simulate(conn, proto, kernel="reference", **kw)
    assert same_spikes(chunk, ref)


def test_native_chunk_results_do_not_depend_on_the_worker_count(monkeypatch):
    """Enough stepped neurons (every neuron driven, half of them strongly) that a window's
    stepping is split over the workers, and 5 trials over 3 workers for the delivery."""
    n = 3000
    conn = random_connectome(n, 0.004, seed=13, max_count=40)
    proto = Protocol.build(5, n, poisson=[(np.arange(0, n, 2), 200.0)])
    kw = dict(duration_ms=20.0, seed=2, record=[0, 2999], stepper=WINDOWED)
    runs = []
    for workers in ("1", "2", "3"):
        monkeypatch.setenv("BRAINSIM_NATIVE_THREADS", workers)
        runs.append(simulate(conn, proto, **kw))
    assert runs[0].stats["native_chunk"] and runs[0].n_spikes > 1000
    assert max(r.stats["budgets"]["stepped"] for r in runs) > 4096  # the stepping split
    assert_identical(runs[0], runs[1])
    assert_identical(runs[0], runs[2])
    monkeypatch.delenv("BRAINSIM_NATIVE_THREADS")
    chunk, twin = _twin(monkeypatch, conn, proto, **kw)
    assert_identical(chunk, twin)


def test_native_chunk_only_for_what_it_covers():
    conn = random_connectome(40, 0.1, seed=2)
    proto = Protocol.build(2, 40, poisson=[([0, 1], 100.0)])
    kw = dict(kernel="windowed", duration_ms=5.0, native=True)
    assert simulate(conn, proto, **kw).stats["native_chunk"]
    assert not simulate(conn, proto, poisson_stream=1, **kw).stats["native_chunk"]
    assert not simulate(conn, proto, **{**kw, "native": False}).stats["native_chunk"]
