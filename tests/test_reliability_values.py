"""Reliability: values are never silently wrong. Seeds keep all their bits, absurd
refractory periods mean what they say, non-finite numbers are refused in configs and
stop runs and fits, and result files hold valid JSON.

One section per class of the reliability issue; each test holds one rule."""

import itertools
import json

import jax
import numpy as np
import pytest
from conftest import random_connectome

from brainsim import cli
from brainsim.experiments import ConfigError, load_config
from brainsim.experiments._run import batch_seed
from brainsim.sim import Protocol, seed_key, simulate

SPEC = "synthetic:seed=0,scale=0.005"

BASE = f"""
[connectome]
format = "synthetic"
path = "{SPEC}"
cache = false
[simulation]
duration_ms = 30.0
trials = 1
seed = 1
[[stimulus]]
kind = "poisson"
neurons = {{ cell_type = "sugar_like_GRN" }}
rate_hz = 150.0
"""


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSIM_CACHE", str(tmp_path / "cache"))


def config(tmp_path, text=BASE, name="run.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def spikes(r):
    return r.trial, r.step, r.neuron


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(spikes(a), spikes(b), strict=True))


# ------------------------------------------------------------------ 1. seeds keep every bit

SEEDS = [0, 2**32, -(2**32), 2**63 - 1, -1, 2**32 - 1, -(2**63)]


@pytest.mark.parametrize("x64", [False, True])
def test_every_64_bit_seed_is_its_own_key(x64):
    with jax.enable_x64(x64):
        keys = [tuple(np.asarray(jax.random.key_data(seed_key(s))).tolist()) for s in SEEDS]
        assert len(set(keys)) == len(SEEDS)
        # seeds in [0, 2**32) keep today's keys bit for bit (published spike counts)
        for s in (0, 5, 2**31, 2**32 - 1):
            np.testing.assert_array_equal(
                jax.random.key_data(seed_key(s)), jax.random.key_data(jax.random.PRNGKey(s))
            )
    for bad in (2**63, -(2**63) - 1):
        with pytest.raises(ValueError, match="seed"):
            seed_key(bad)


def test_seeds_beyond_32_bits_give_different_spikes_and_small_ones_the_same(monkeypatch):
    conn = random_connectome(60, 0.1, seed=2)
    proto = Protocol.build(1, 60, poisson=[(np.arange(6), 150.0)])
    with jax.enable_x64(False):  # as the CLI runs float32 (PRNGKey then keeps 32 bits)
        runs = {s: simulate(conn, proto, duration_ms=40.0, seed=s) for s in SEEDS[:4]}
        for a, b in itertools.combinations(SEEDS[:4], 2):
            assert not same(runs[a], runs[b]), (a, b)
        five = simulate(conn, proto, duration_ms=40.0, seed=5)
        monkeypatch.setattr("brainsim.sim._simulate.seed_key", jax.random.PRNGKey)
        assert same(five, simulate(conn, proto, duration_ms=40.0, seed=5))
    assert all(r.n_spikes for r in runs.values())


def test_batch_seeds_of_negative_seeds_and_the_manifest_seed(tmp_path):
    assert len({batch_seed(s, 1) for s in SEEDS}) == len(SEEDS)
    assert batch_seed(-5, 0) == -5
    out = tmp_path / "out"
    text = BASE.replace("seed = 1", f"seed = {-(2**32)}")
    assert cli.main(["run", str(config(tmp_path, text)), "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == -(2**32)


def test_seed_outside_64_bits_is_a_config_error(tmp_path):
    text = BASE.replace("seed = 1", f"seed = {2**63}")
    with pytest.raises(ConfigError, match=r"run.toml: \[simulation\] seed"):
        load_config(config(tmp_path, text))


def test_fit_seed_default_stays_in_64_bits(tmp_path):
    from brainsim.fit import load_fit_config

    fit = '\n[fit]\ntargets = "targets.parquet"\ntrainable = ["w_syn_mv"]\n'
    text = BASE.replace("seed = 1", f"seed = {2**63 - 1}") + fit
    assert load_fit_config(config(tmp_path, text, "fit.toml")).seed == -(2**63)
    assert load_fit_config(config(tmp_path, BASE + fit, "fit.toml")).seed == 2
    with pytest.raises(ConfigError, match=r"fit.toml: \[fit\] seed"):
        load_fit_config(config(tmp_path, BASE + fit + f"seed = {-(2**63) - 1}\n", "fit.toml"))


# ------------------------------------------------------------------ 2. refractory periods

KERNEL_RUNS = [
    ("reference", None),
    ("windowed", False),
    ("windowed", True),
    ("dense_window", None),
]


def _driven_run(refractory_ms, kernel, native, duration_ms=20.0):
    """Neurons 0-2 of a 20-neuron network under a current strong enough to fire them on
    every step they are free (from step 0)."""
    from brainsim.kernels import native_kernels

    from brainsim.models import LIF

    if native and not native_kernels()[0]:
        pytest.skip(native_kernels()[1])
    conn = random_connectome(20, 0.15, seed=1)
    proto = Protocol.build(1, 20, current=[(np.arange(3), 5000.0, 0, 10**6)])
    model = LIF(refractory_ms=refractory_ms)
    return simulate(conn, proto, model=model, duration_ms=duration_ms, kernel=kernel, native=native)


@pytest.mark.parametrize(("kernel", "native"), KERNEL_RUNS)
def test_refractory_longer_than_the_run_means_one_spike_each(kernel, native):
    for ref in (1e9, 20.0, float("inf")):  # 20 ms: exactly the run, 200 steps
        r = _driven_run(ref, kernel, native)
        counts = r.spike_counts()[0]
        assert counts.max() == 1, (ref, counts)
        np.testing.assert_array_equal(r.step[r.neuron < 3], [0, 0, 0])


@pytest.mark.parametrize(("kernel", "native"), KERNEL_RUNS)
def test_refractory_just_below_the_run_frees_on_its_last_step(kernel, native):
    r = _driven_run(19.9, kernel, native)  # 199 steps: free again at step 199 of 0..199
    for i in range(3):
        np.testing.assert_array_equal(r.step[r.neuron == i], [0, 199])
    assert r.spike_counts()[0].max() == 2


def test_refractory_steps_saturate_instead_of_wrapping():
    from brainsim.experiments import _config
    from brainsim.models import LIF, MAX_RUN_STEPS, SINCE_MAX

    steps = LIF(refractory_ms=np.array([2.2, 1e9, 1e30, np.inf])).refractory_steps(4)
    np.testing.assert_array_equal(steps, [22, SINCE_MAX, SINCE_MAX, SINCE_MAX])
    assert _config.MAX_RUN_STEPS == MAX_RUN_STEPS < SINCE_MAX
    with pytest.raises(ValueError, match="refractory_ms"):
        LIF(refractory_ms=float("nan"))
    with pytest.raises(ValueError, match="at most"):
        _driven_run(2.2, "reference", None, duration_ms=(MAX_RUN_STEPS + 1) * 0.1)


def test_refractory_1e9_in_a_config_and_runs_longer_than_the_counters(tmp_path):
    import pyarrow.parquet as pq

    # (Poisson-driven neurons have no refractory period: a current drives these)
    text = BASE.split("[[stimulus]]")[0] + "[model]\nrefractory_ms = 1e9\n"
    text += '[[stimulus]]\nkind = "current"\n'
    text += 'neurons = { cell_type = "sugar_like_GRN" }\namplitude_mv = 5000.0\n'
    out = tmp_path / "out"
    assert cli.main(["run", str(config(tmp_path, text)), "--out", str(out), "--quiet"]) == 0
    sp = pq.read_table(out / "spikes.parquet").to_pandas()
    assert len(sp) and sp.groupby("neuron_id").size().max() == 1
    long = BASE.replace("duration_ms = 30.0", "duration_ms = 1e8")
    with pytest.raises(ConfigError, match=r"run.toml: \[simulation\] duration_ms"):
        load_config(config(tmp_path, long))
